package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// The modes of NewFallback, spelled as the config's ratelimit.redis_failure.
const (
	// FailLocal decides by the fallback limiter, per instance, while the primary fails.
	FailLocal = "local"
	// FailOpen admits every request while the primary fails.
	FailOpen = "open"
	// FailClosed refuses every request while the primary fails.
	FailClosed = "closed"
)

const (
	// closedRetryAfter is what a refusal in FailClosed mode tells the caller: about
	// when to look again, as nothing better is known while Redis is away.
	closedRetryAfter = time.Second
	// probeEvery is how long the primary is left alone after it failed. Without a
	// pause a hung Redis would cost every request the full client timeout; with it,
	// one request per probeEvery pays it, and recovery is seen within probeEvery.
	probeEvery = time.Second
)

// fallback asks primary and, while primary fails, answers by mode.
type fallback struct {
	primary, fallback Limiter
	mode              string
	onFallback        func(error)

	now      func() time.Time
	base     time.Time // downUntil counts from here, on the monotonic clock
	cooldown time.Duration
	// downUntil is when (ns since base) the primary may be asked again after a
	// failure; 0 while it is healthy.
	downUntil atomic.Int64
}

var _ Limiter = (*fallback)(nil)

// NewFallback returns a Limiter that asks primary (the Redis limiter) and, when it
// fails, answers by mode: FailLocal asks fallback (a Local limiter), FailOpen admits,
// FailClosed refuses with a RetryAfter of one second; "" means FailLocal. After a
// failure the primary is left alone for a second and then tried by one request, so a
// hung Redis slows one request a second rather than all of them. onFallback, which may
// be nil, is called with the error each time the primary fails, at most about once a
// second while it stays down, for a log line and a metric.
//
// NewFallback panics on an unknown mode or a FailLocal without a fallback: config
// validation rejects both, so either is a bug in the caller.
func NewFallback(primary, fallback Limiter, mode string, onFallback func(error)) Limiter {
	switch mode {
	case "":
		mode = FailLocal
	case FailLocal, FailOpen, FailClosed:
	default:
		panic(fmt.Sprintf("ratelimit: unknown redis_failure mode %q", mode))
	}
	if mode == FailLocal && fallback == nil {
		panic("ratelimit: redis_failure mode local without a local limiter")
	}
	if onFallback == nil {
		onFallback = func(error) {}
	}
	return newFallback(primary, fallback, mode, onFallback, time.Now, probeEvery)
}

func newFallback(primary, fb Limiter, mode string, onFallback func(error), now func() time.Time, cooldown time.Duration) *fallback {
	return &fallback{
		primary: primary, fallback: fb, mode: mode, onFallback: onFallback,
		now: now, base: now(), cooldown: cooldown,
	}
}

// Allow asks the primary unless it failed within the last cooldown.
func (f *fallback) Allow(ctx context.Context, rule *Rule, key string) (Decision, error) {
	// An invalid rule is a bug, not an outage: say so rather than answer by mode.
	if err := rule.check(); err != nil {
		return Decision{}, err
	}
	if until := f.downUntil.Load(); until != 0 {
		now := f.elapsed()
		// The one caller that moves downUntil on probes the primary; the others, and
		// everyone before downUntil, do not wait on a Redis known to be failing.
		if now < until || !f.downUntil.CompareAndSwap(until, now+int64(f.cooldown)) {
			return f.degraded(ctx, rule, key)
		}
	}
	d, err := f.primary.Allow(ctx, rule, key)
	if err == nil {
		if f.downUntil.Load() != 0 { // a load, not a store, on the healthy hot path
			f.downUntil.Store(0)
		}
		return d, nil
	}
	// A caller that went away says nothing about Redis; its answer is not read anyway.
	if !errors.Is(ctx.Err(), context.Canceled) {
		f.downUntil.Store(f.elapsed() + int64(f.cooldown))
		f.onFallback(err)
	}
	return f.degraded(ctx, rule, key)
}

func (f *fallback) elapsed() int64 { return int64(f.now().Sub(f.base)) }

// degraded answers without the primary.
func (f *fallback) degraded(ctx context.Context, rule *Rule, key string) (Decision, error) {
	switch f.mode {
	case FailOpen:
		return Decision{Allowed: true, Limit: rule.limit(), Remaining: rule.burst()}, nil
	case FailClosed:
		return Decision{Limit: rule.limit(), Reset: closedRetryAfter, RetryAfter: closedRetryAfter}, nil
	}
	return f.fallback.Allow(ctx, rule, key)
}

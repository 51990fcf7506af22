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

var (
	_ Limiter = (*fallback)(nil)
	_ Decider = (*fallback)(nil)
)

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
func NewFallback(primary, fallback Limiter, mode string, onFallback func(error)) Decider {
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
	if f.down() {
		return f.degraded(ctx, rule, key)
	}
	d, err := f.primary.Allow(ctx, rule, key)
	if err == nil {
		f.up()
		return d, nil
	}
	f.failed(ctx, err)
	return f.degraded(ctx, rule, key)
}

// down reports whether the primary failed within the last cooldown. The one caller
// that moves downUntil on probes the primary; the others, and everyone before
// downUntil, do not wait on a Redis known to be failing.
func (f *fallback) down() bool {
	until := f.downUntil.Load()
	if until == 0 {
		return false
	}
	now := f.elapsed()
	return now < until || !f.downUntil.CompareAndSwap(until, now+int64(f.cooldown))
}

// up notes that the primary answered.
func (f *fallback) up() {
	if f.downUntil.Load() != 0 { // a load, not a store, on the healthy hot path
		f.downUntil.Store(0)
	}
}

// failed notes that the primary failed with err. A caller that went away says
// nothing about Redis; its answer is not read anyway.
func (f *fallback) failed(ctx context.Context, err error) {
	if !errors.Is(ctx.Err(), context.Canceled) {
		f.downUntil.Store(f.elapsed() + int64(f.cooldown))
		f.onFallback(err)
	}
}

// Decide asks the primary for every step, in one round trip when it is a Redis
// limiter, and answers the rule steps it could not decide by mode. Once steps have
// no answer without the primary: one it could not decide keeps its error, and the
// caller refuses the request (a replay check that cannot be made fails closed).
// While the primary is down the once steps are still asked of it, alone, and only
// when the stages before them passed.
func (f *fallback) Decide(ctx context.Context, steps []Step, out []Outcome) {
	pd, ok := f.primary.(Decider)
	if !ok {
		pd = Stepwise(f.primary, nil)
	}
	if f.down() {
		decideStaged(steps, out, func(i int) {
			if st := steps[i]; st.Rule == nil {
				pd.Decide(ctx, steps[i:i+1], out[i:i+1])
			} else {
				out[i] = f.degradedOutcome(ctx, st)
			}
		})
		return
	}
	pd.Decide(ctx, steps, out)
	var outage error
	answered := false
	for i, st := range steps {
		if st.Rule == nil || st.Rule.check() != nil {
			continue
		}
		switch {
		case out[i].Err != nil:
			outage = out[i].Err
		case out[i].Decided:
			answered = true
		}
	}
	if outage == nil {
		if answered {
			f.up()
		}
		return
	}
	f.failed(ctx, outage)
	// The rule steps Redis could not decide are answered by mode, in stage order:
	// a stage refused that way ends the request there, as Redis's own would.
	decideStaged(steps, out, func(i int) {
		if st := steps[i]; st.Rule != nil && out[i].Err != nil && st.Rule.check() == nil {
			out[i] = f.degradedOutcome(ctx, st)
		}
	})
}

// Known is the primary's, while it is up.
func (f *fallback) Known(step Step) (Decision, bool) {
	pd, ok := f.primary.(Decider)
	if !ok || f.downUntil.Load() != 0 {
		return Decision{}, false
	}
	return pd.Known(step)
}

func (f *fallback) degradedOutcome(ctx context.Context, st Step) Outcome {
	if err := st.Rule.check(); err != nil {
		return Outcome{Err: err}
	}
	d, err := f.degraded(ctx, st.Rule, st.Key)
	if err != nil {
		return Outcome{Err: err}
	}
	return Outcome{Decided: true, Decision: d}
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

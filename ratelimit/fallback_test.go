package ratelimit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// countingLimiter counts the calls made to the Limiter it wraps and the answers it gave.
type countingLimiter struct {
	Limiter
	calls, answers atomic.Int64
}

func (c *countingLimiter) Allow(ctx context.Context, r *Rule, key string) (Decision, error) {
	c.calls.Add(1)
	d, err := c.Limiter.Allow(ctx, r, key)
	if err == nil {
		c.answers.Add(1)
	}
	return d, err
}

// fallbackLog records what onFallback was called with.
type fallbackLog struct {
	mu   sync.Mutex
	errs []error
}

func (f *fallbackLog) record(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func (f *fallbackLog) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errs)
}

func TestFallbackWhileRedisIsStopped(t *testing.T) {
	srv := testredis.Start(t)
	store, err := state.NewRedis(state.RedisOptions{Addrs: []string{srv.Addr}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	r := rule("rate_limits[0]", 60, time.Hour, 3)
	tests := []struct {
		mode      string
		whileDown Decision
		fromLocal bool
	}{
		{FailLocal, Decision{Allowed: true, Limit: 60, Remaining: 2, Reset: time.Minute}, true},
		{FailOpen, Decision{Allowed: true, Limit: 60, Remaining: 3}, false},
		{FailClosed, Decision{Allowed: false, Limit: 60, Reset: time.Second, RetryAfter: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			primary := &countingLimiter{Limiter: NewRedis(store.Scripter(), RedisOptions{KeyPrefix: t.Name() + ":"})}
			local := &countingLimiter{Limiter: NewLocal(LocalOptions{Now: newFakeClock().Now})}
			var log fallbackLog
			f := newFallback(primary, local, tt.mode, log.record, time.Now, 50*time.Millisecond)

			// Redis up: it decides, and spends a token there.
			if d := allow(t, f, r, "client-a"); !d.Allowed || d.Remaining != 2 {
				t.Fatalf("Redis up: got %+v, want allowed with remaining 2", d)
			}
			if primary.answers.Load() != 1 || local.calls.Load() != 0 || log.count() != 0 {
				t.Fatalf("Redis up: primary answered %d, local asked %d, fallbacks %d; want 1, 0, 0",
					primary.answers.Load(), local.calls.Load(), log.count())
			}

			srv.Stop()
			if d := allow(t, f, r, "client-a"); d != tt.whileDown {
				t.Errorf("Redis stopped: got %+v, want %+v", d, tt.whileDown)
			}
			if got := local.calls.Load() == 1; got != tt.fromLocal {
				t.Errorf("Redis stopped: local limiter asked %d times", local.calls.Load())
			}
			if log.count() != 1 || !strings.HasPrefix(log.errs[0].Error(), "ratelimit: redis: ") {
				t.Errorf("Redis stopped: onFallback got %v, want one Redis error", log.errs)
			}

			srv.Restart()
			deadline := time.Now().Add(10 * time.Second)
			for primary.answers.Load() < 2 {
				if time.Now().After(deadline) {
					t.Fatal("Redis restarted, but the primary was not asked again within 10s")
				}
				time.Sleep(10 * time.Millisecond)
				allow(t, f, r, "client-a")
			}
		})
	}
}

func TestFallbackDoesNotQueueBehindAHungRedis(t *testing.T) {
	srv := testredis.Start(t)
	store, err := state.NewRedis(state.RedisOptions{Addrs: []string{srv.Addr}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	primary := &countingLimiter{Limiter: NewRedis(store.Scripter(), RedisOptions{})}
	var log fallbackLog
	f := NewFallback(primary, NewLocal(LocalOptions{}), FailLocal, log.record)
	r := rule("rate_limits[0]", 60, time.Hour, 100)
	allow(t, f, r, "client-a")

	srv.Pause()
	defer srv.Resume()
	start := time.Now()
	for range 20 {
		if d := allow(t, f, r, "client-a"); !d.Allowed {
			t.Fatalf("Redis hung: got %+v, want the local limiter's admission", d)
		}
	}
	// One request waits for the client's timeout; the others, within the cooldown,
	// do not ask Redis at all.
	if calls := primary.calls.Load(); calls != 2 {
		t.Errorf("Redis asked %d times, want 2: once up, once hung", calls)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("20 requests took %v with Redis hung", took)
	}
	if log.count() != 1 {
		t.Errorf("onFallback called %d times, want 1", log.count())
	}
}

// flakyLimiter fails until healed, and counts its calls.
type flakyLimiter struct {
	healed atomic.Bool
	calls  atomic.Int64
}

var errDown = errors.New("redis down")

func (f *flakyLimiter) Allow(ctx context.Context, _ *Rule, _ string) (Decision, error) {
	f.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	if !f.healed.Load() {
		return Decision{}, errDown
	}
	return Decision{Allowed: true}, nil
}

func TestFallbackAsksAFailingPrimaryOncePerCooldown(t *testing.T) {
	clock := newFakeClock()
	primary := &flakyLimiter{}
	var log fallbackLog
	f := newFallback(primary, NewLocal(LocalOptions{Now: clock.Now}), FailLocal, log.record, clock.Now, time.Second)
	r := rule("rate_limits[0]", 1000, time.Second, 1000)

	steps := []struct {
		name             string
		advance          time.Duration
		heal             bool
		requests         int
		wantPrimaryCalls int64
		wantFallbacks    int
	}{
		{"the first failure is noticed", 0, false, 1, 1, 1},
		{"within the cooldown the primary is left alone", 999 * time.Millisecond, false, 5, 1, 1},
		{"after the cooldown one request probes", time.Millisecond, false, 5, 2, 2},
		{"a failed probe starts another cooldown", 500 * time.Millisecond, false, 5, 2, 2},
		{"a probe that succeeds brings the primary back", 500 * time.Millisecond, true, 1, 3, 2},
		{"then every request asks it", 0, true, 5, 8, 2},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		primary.healed.Store(s.heal)
		for range s.requests {
			allow(t, f, r, "client-a")
		}
		if primary.calls.Load() != s.wantPrimaryCalls || log.count() != s.wantFallbacks {
			t.Fatalf("%s: primary asked %d times, onFallback called %d; want %d, %d",
				s.name, primary.calls.Load(), log.count(), s.wantPrimaryCalls, s.wantFallbacks)
		}
	}
	for _, err := range log.errs {
		if !errors.Is(err, errDown) {
			t.Errorf("onFallback got %v, want the primary's error", err)
		}
	}
}

func TestFallbackIgnoresCallersThatWentAway(t *testing.T) {
	primary := &flakyLimiter{}
	primary.healed.Store(true)
	var log fallbackLog
	f := NewFallback(primary, NewLocal(LocalOptions{}), FailLocal, log.record)
	r := rule("rate_limits[0]", 60, time.Hour, 3)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Allow(ctx, r, "client-a"); err != nil {
		t.Fatalf("cancelled caller: %v", err)
	}
	allow(t, f, r, "client-a")
	if log.count() != 0 || primary.calls.Load() != 2 {
		t.Fatalf("onFallback called %d times, primary asked %d; want 0, 2: a cancelled request is no outage",
			log.count(), primary.calls.Load())
	}
}

func TestNewFallbackRejectsWhatConfigValidationShould(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		fallback  Limiter
		wantPanic bool
	}{
		{"empty mode means local", "", NewLocal(LocalOptions{}), false},
		{"open needs no local limiter", FailOpen, nil, false},
		{"closed needs no local limiter", FailClosed, nil, false},
		{"unknown mode", "fail-open", nil, true},
		{"local without a local limiter", FailLocal, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if p := recover(); (p != nil) != tt.wantPanic {
					t.Fatalf("panic %v, want panic %v", p, tt.wantPanic)
				}
			}()
			NewFallback(&flakyLimiter{}, tt.fallback, tt.mode, nil)
		})
	}
}

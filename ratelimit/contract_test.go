package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// fakeClock is an injectable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// rule builds a Rule the way the config would for "count/period" with burst.
func rule(name string, count int, period time.Duration, burst int) *Rule {
	return &Rule{
		Name: name, Key: "client",
		Limit: float64(count) / period.Seconds(), Period: period, Count: count, Burst: burst,
	}
}

// backend opens fresh, isolated limiters of one kind.
type backend struct {
	name string
	// open returns a limiter no other test shares, and wait, which lets d pass as that
	// limiter sees it: Local's clock is advanced; Redis, which keeps its own time, is
	// waited for. Cases that wait on Redis use fast rates and short waits.
	open func(t *testing.T) (l Limiter, wait func(d time.Duration))
}

func localBackend() backend {
	return backend{name: "local", open: func(t *testing.T) (Limiter, func(time.Duration)) {
		clock := newFakeClock()
		return NewLocal(LocalOptions{Now: clock.Now}), clock.Advance
	}}
}

func redisBackend(srv *testredis.Server) backend {
	return backend{name: "redis", open: func(t *testing.T) (Limiter, func(time.Duration)) {
		store := openStore(t, srv)
		// A prefix per test keeps the cases apart on the one server.
		return NewRedis(store.Scripter(), RedisOptions{KeyPrefix: t.Name() + ":"}), time.Sleep
	}}
}

// openStore opens a state store on srv, the way the server builds the one the Redis
// limiter shares.
func openStore(t testing.TB, srv *testredis.Server) *state.Redis {
	t.Helper()
	s, err := state.NewRedis(state.RedisOptions{Addrs: []string{srv.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// allow calls l and fails the test on an error.
func allow(t *testing.T, l Limiter, r *Rule, key string) Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), r, key)
	if err != nil {
		t.Fatalf("Allow(%s, %q): %v", r.Name, key, err)
	}
	return d
}

// drain spends the whole burst of r for key, checking that each request is admitted.
func drain(t *testing.T, l Limiter, r *Rule, key string) {
	t.Helper()
	for i := range r.burst() {
		if d := allow(t, l, r, key); !d.Allowed {
			t.Fatalf("request %d of a burst of %d refused: %+v", i+1, r.burst(), d)
		}
	}
}

// within fails unless lo < got <= hi. Redis runs on the real clock, so its durations
// come out a little under the exact figure by the time the test took.
func within(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got <= lo || got > hi {
		t.Errorf("%s = %v, want in (%v, %v]", what, got, lo, hi)
	}
}

// slack is how far under an exact duration a Redis answer may come: the time the test
// took between requests, generously, for a loaded machine.
const slack = 5 * time.Second

var contractCases = []struct {
	name string
	run  func(t *testing.T, l Limiter, wait func(time.Duration))
}{
	{"burst is admitted, remaining counts down, the next is refused", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		r := rule("rate_limits[0]", 60, time.Hour, 5)
		for want := 4; want >= 0; want-- {
			d := allow(t, l, r, "client-a")
			if !d.Allowed || d.Remaining != want || d.Limit != 60 || d.RetryAfter != 0 {
				t.Fatalf("got %+v, want allowed with remaining %d, limit 60, no retry", d, want)
			}
		}
		if d := allow(t, l, r, "client-a"); d.Allowed || d.Remaining != 0 {
			t.Fatalf("request past the burst: got %+v, want refused with remaining 0", d)
		}
	}},
	{"retry-after is one interval once the burst is spent", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		r := rule("rate_limits[0]", 60, time.Hour, 3) // one a minute
		drain(t, l, r, "client-a")
		d := allow(t, l, r, "client-a")
		if d.Allowed {
			t.Fatalf("got %+v, want refused", d)
		}
		within(t, "RetryAfter", d.RetryAfter, time.Minute-slack, time.Minute)
	}},
	{"reset is the time until the bucket is full again", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		r := rule("rate_limits[0]", 60, time.Hour, 3)
		d := allow(t, l, r, "client-a")
		within(t, "Reset after one request", d.Reset, time.Minute-slack, time.Minute)
		allow(t, l, r, "client-a")
		d = allow(t, l, r, "client-a")
		within(t, "Reset after the whole burst", d.Reset, 3*time.Minute-slack, 3*time.Minute)
		d = allow(t, l, r, "client-a")
		within(t, "Reset when refused", d.Reset, 3*time.Minute-slack, 3*time.Minute)
	}},
	{"waiting retry-after admits exactly one more", func(t *testing.T, l Limiter, wait func(time.Duration)) {
		r := rule("rate_limits[0]", 2, time.Second, 2)
		drain(t, l, r, "client-a")
		d := allow(t, l, r, "client-a")
		if d.Allowed {
			t.Fatalf("got %+v, want refused", d)
		}
		wait(d.RetryAfter)
		if d := allow(t, l, r, "client-a"); !d.Allowed {
			t.Fatalf("after waiting RetryAfter: got %+v, want allowed", d)
		}
		if d := allow(t, l, r, "client-a"); d.Allowed {
			t.Fatalf("second request after one interval: got %+v, want refused", d)
		}
	}},
	{"waiting reset refills the whole burst", func(t *testing.T, l Limiter, wait func(time.Duration)) {
		r := rule("rate_limits[0]", 10, time.Second, 3)
		drain(t, l, r, "client-a")
		d := allow(t, l, r, "client-a")
		wait(d.Reset)
		drain(t, l, r, "client-a")
	}},
	{"keys have separate buckets", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		r := rule("rate_limits[0]", 60, time.Hour, 2)
		drain(t, l, r, "1.2.3.4")
		if d := allow(t, l, r, "5.6.7.8"); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("other key: got %+v, want allowed with remaining 1", d)
		}
		if d := allow(t, l, r, "1.2.3.4"); d.Allowed {
			t.Fatalf("drained key: got %+v, want refused", d)
		}
	}},
	{"rules have separate buckets for the same key", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		perClient := rule("rate_limits[1]", 60, time.Hour, 2)
		perRoute := rule("rate_limits[2]", 60, time.Hour, 2)
		drain(t, l, perClient, "client-a")
		if d := allow(t, l, perRoute, "client-a"); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("other rule: got %+v, want allowed with remaining 1", d)
		}
	}},
	{"burst left out means count at once", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		r := rule("rate_limits[0]", 3, time.Minute, 0)
		drain(t, l, r, "client-a") // three
		if d := allow(t, l, r, "client-a"); d.Allowed {
			t.Fatalf("fourth of 3/m: got %+v, want refused", d)
		}
	}},
	{"concurrent burst admits exactly the burst", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		r := rule("rate_limits[0]", 1, time.Minute, 10)
		if got := admitConcurrently(t, []Limiter{l}, r, "client-a", 40); got != 10 {
			t.Fatalf("admitted %d of 40, want 10", got)
		}
	}},
	{"a rule with no rate is an error, not a decision", func(t *testing.T, l Limiter, _ func(time.Duration)) {
		if _, err := l.Allow(context.Background(), &Rule{Name: "broken", Burst: 1}, "k"); err == nil {
			t.Fatal("no error for a rule with Limit 0")
		}
	}},
}

// admitConcurrently sends n requests at once, spread round-robin over limiters, and
// returns how many were admitted.
func admitConcurrently(t *testing.T, limiters []Limiter, r *Rule, key string, n int) int {
	t.Helper()
	var (
		admitted atomic.Int64
		start    = make(chan struct{})
		wg       sync.WaitGroup
		errs     = make(chan error, n)
	)
	for i := range n {
		l := limiters[i%len(limiters)]
		wg.Go(func() {
			<-start
			d, err := l.Allow(context.Background(), r, key)
			if err != nil {
				errs <- err
				return
			}
			if d.Allowed {
				admitted.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return int(admitted.Load())
}

func TestLimiterContract(t *testing.T) {
	srv := testredis.Start(t)
	for _, be := range []backend{localBackend(), redisBackend(srv)} {
		for _, tc := range contractCases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				l, wait := be.open(t)
				tc.run(t, l, wait)
			})
		}
	}
}

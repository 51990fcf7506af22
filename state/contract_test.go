package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
)

// store is the method set both implementations share. Consumers declare the subsets
// they use; this one exists so that the contract below holds both to all of it.
type store interface {
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	Get(ctx context.Context, key string) (string, bool, error)
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	Del(ctx context.Context, key string) error
	CompareAndDelete(ctx context.Context, key, value string) (bool, error)
	TTL(ctx context.Context, key string) (time.Duration, bool, error)
	Ping(ctx context.Context) error
	Close() error
}

var (
	_ store = (*Memory)(nil)
	_ store = (*Redis)(nil)
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

// backend opens fresh, isolated stores of one kind.
type backend struct {
	name string
	// open returns a store no other test sees, and wait, which lets d pass as that
	// store sees it: Memory's clock is advanced, Redis (which expires keys by its own
	// clock) is waited for.
	open func(t *testing.T) (s store, wait func(d time.Duration))
}

func memoryBackend() backend {
	return backend{name: "memory", open: func(t *testing.T) (store, func(time.Duration)) {
		clock := newFakeClock()
		return NewMemory(MemoryOptions{Now: clock.Now}), clock.Advance
	}}
}

func redisBackend(t *testing.T) backend {
	srv := testredis.Start(t)
	return backend{name: "redis", open: func(t *testing.T) (store, func(time.Duration)) {
		// A prefix per test keeps parallel tests on one server apart.
		return openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "contract:" + t.Name() + ":"}), time.Sleep
	}}
}

// openRedis opens a Redis store closed with the test. Unless a test is about timing, it
// gets a generous Timeout: on a CI box busy with fuzzers, the 500ms default can pass
// before a parallel test's first dial completes.
func openRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	r, err := NewRedis(o)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// shortTTL is long enough for Redis's millisecond clock and a loaded CI machine to
// agree on "not yet expired", and short enough to wait out; expired waits past it.
const (
	shortTTL = 100 * time.Millisecond
	expired  = shortTTL + 50*time.Millisecond
)

type contractCase struct {
	name string
	run  func(t *testing.T, s store, wait func(time.Duration))
}

var contract = []contractCase{
	{"nonce accepted once within its TTL", func(t *testing.T, s store, _ func(time.Duration)) {
		wantSetNX(t, s, "nonce", "first", time.Minute, true)
		wantSetNX(t, s, "nonce", "second", time.Minute, false)
		wantGet(t, s, "nonce", "first", true)
	}},
	{"nonce accepted again after its TTL", func(t *testing.T, s store, wait func(time.Duration)) {
		wantSetNX(t, s, "nonce", "first", shortTTL, true)
		wait(expired)
		wantSetNX(t, s, "nonce", "second", shortTTL, true)
		wantGet(t, s, "nonce", "second", true)
	}},
	{"missing key reads as absent", func(t *testing.T, s store, _ func(time.Duration)) {
		wantGet(t, s, "missing", "", false)
		wantTTL(t, s, "missing", 0, 0, false)
	}},
	{"set then get", func(t *testing.T, s store, _ func(time.Duration)) {
		for _, key := range []string{"token", "key with spaces", "中文键", "a:b:c"} {
			mustSet(t, s, key, "value of "+key, time.Minute)
			wantGet(t, s, key, "value of "+key, true)
		}
	}},
	{"empty value is present", func(t *testing.T, s store, _ func(time.Duration)) {
		mustSet(t, s, "empty", "", time.Minute)
		wantGet(t, s, "empty", "", true)
		wantSetNX(t, s, "empty", "x", time.Minute, false)
	}},
	{"set replaces value and TTL", func(t *testing.T, s store, _ func(time.Duration)) {
		mustSet(t, s, "token", "old", time.Minute)
		mustSet(t, s, "token", "new", 0)
		wantGet(t, s, "token", "new", true)
		wantTTL(t, s, "token", -1, -1, true)
	}},
	{"set value expires", func(t *testing.T, s store, wait func(time.Duration)) {
		mustSet(t, s, "token", "v", shortTTL)
		wait(expired)
		wantGet(t, s, "token", "", false)
		wantTTL(t, s, "token", 0, 0, false)
	}},
	{"TTL reports remaining life", func(t *testing.T, s store, _ func(time.Duration)) {
		mustSet(t, s, "token", "v", 10*time.Second)
		wantTTL(t, s, "token", 9*time.Second, 10*time.Second, true)
		wantSetNX(t, s, "nonce", "v", time.Hour, true)
		wantTTL(t, s, "nonce", 59*time.Minute, time.Hour, true)
	}},
	{"zero or negative TTL never expires", func(t *testing.T, s store, wait func(time.Duration)) {
		wantSetNX(t, s, "zero", "v", 0, true)
		mustSet(t, s, "negative", "v", -time.Second)
		wait(expired)
		wantTTL(t, s, "zero", -1, -1, true)
		wantTTL(t, s, "negative", -1, -1, true)
		wantGet(t, s, "negative", "v", true)
	}},
	{"del removes and tolerates absent keys", func(t *testing.T, s store, _ func(time.Duration)) {
		mustSet(t, s, "token", "v", time.Minute)
		mustDel(t, s, "token")
		wantGet(t, s, "token", "", false)
		mustDel(t, s, "token")
		wantSetNX(t, s, "token", "again", time.Minute, true)
	}},
	{"lock released by its owner", func(t *testing.T, s store, _ func(time.Duration)) {
		wantSetNX(t, s, "lock", "owner-a", time.Minute, true)
		wantCAD(t, s, "lock", "owner-a", true)
		wantGet(t, s, "lock", "", false)
		wantSetNX(t, s, "lock", "owner-b", time.Minute, true)
	}},
	{"lock not released by another owner", func(t *testing.T, s store, _ func(time.Duration)) {
		wantSetNX(t, s, "lock", "owner-a", time.Minute, true)
		wantCAD(t, s, "lock", "owner-b", false)
		wantGet(t, s, "lock", "owner-a", true)
	}},
	{"compare-and-delete of absent key", func(t *testing.T, s store, _ func(time.Duration)) {
		wantCAD(t, s, "lock", "owner-a", false)
	}},
	{"expired lock taken over is not released by its old owner", func(t *testing.T, s store, wait func(time.Duration)) {
		wantSetNX(t, s, "lock", "owner-a", shortTTL, true)
		wait(expired)
		wantSetNX(t, s, "lock", "owner-b", time.Minute, true)
		wantCAD(t, s, "lock", "owner-a", false)
		wantGet(t, s, "lock", "owner-b", true)
	}},
	{"50 concurrent SetNX of one key: exactly one wins", func(t *testing.T, s store, _ func(time.Duration)) {
		const n = 50
		var (
			wins  atomic.Int32
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make(chan error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				ok, err := s.SetNX(context.Background(), "nonce", fmt.Sprint("owner-", i), time.Minute)
				if err != nil {
					errs <- err
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("SetNX: %v", err)
		}
		if got := wins.Load(); got != 1 {
			t.Fatalf("%d goroutines won the SetNX race, want exactly 1", got)
		}
	}},
	{"canceled context is an error", func(t *testing.T, s store, _ func(time.Duration)) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.SetNX(ctx, "nonce", "v", time.Minute); !errors.Is(err, context.Canceled) {
			t.Fatalf("SetNX with a canceled context: err = %v, want context.Canceled", err)
		}
		wantGet(t, s, "nonce", "", false)
	}},
	{"ping", func(t *testing.T, s store, _ func(time.Duration)) {
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}

// TestContract runs the same cases against Memory and Redis: what auth and daojia
// rely on must not depend on whether the gateway was configured with Redis.
func TestContract(t *testing.T) {
	for _, b := range []backend{memoryBackend(), redisBackend(t)} {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range contract {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					s, wait := b.open(t)
					c.run(t, s, wait)
				})
			}
		})
	}
}

func wantSetNX(t *testing.T, s store, key, value string, ttl time.Duration, want bool) {
	t.Helper()
	got, err := s.SetNX(context.Background(), key, value, ttl)
	if err != nil {
		t.Fatalf("SetNX(%q, %q, %v): %v", key, value, ttl, err)
	}
	if got != want {
		t.Fatalf("SetNX(%q, %q, %v) = %v, want %v", key, value, ttl, got, want)
	}
}

func wantGet(t *testing.T, s store, key, want string, wantOK bool) {
	t.Helper()
	got, ok, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if got != want || ok != wantOK {
		t.Fatalf("Get(%q) = %q, %v; want %q, %v", key, got, ok, want, wantOK)
	}
}

// wantTTL checks that key's TTL lies in [lo, hi].
func wantTTL(t *testing.T, s store, key string, lo, hi time.Duration, wantOK bool) {
	t.Helper()
	got, ok, err := s.TTL(context.Background(), key)
	if err != nil {
		t.Fatalf("TTL(%q): %v", key, err)
	}
	if ok != wantOK || got < lo || got > hi {
		t.Fatalf("TTL(%q) = %v, %v; want [%v, %v], %v", key, got, ok, lo, hi, wantOK)
	}
}

func wantCAD(t *testing.T, s store, key, value string, want bool) {
	t.Helper()
	got, err := s.CompareAndDelete(context.Background(), key, value)
	if err != nil {
		t.Fatalf("CompareAndDelete(%q, %q): %v", key, value, err)
	}
	if got != want {
		t.Fatalf("CompareAndDelete(%q, %q) = %v, want %v", key, value, got, want)
	}
}

func mustSet(t *testing.T, s store, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Set(context.Background(), key, value, ttl); err != nil {
		t.Fatalf("Set(%q, %q, %v): %v", key, value, ttl, err)
	}
}

func mustDel(t *testing.T, s store, key string) {
	t.Helper()
	if err := s.Del(context.Background(), key); err != nil {
		t.Fatalf("Del(%q): %v", key, err)
	}
}

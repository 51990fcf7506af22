package cache

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
)

// tiers runs a test against the in-process tier alone and against Redis (a real
// redis-server; a missing one fails the test) with the in-process tier in front.
func tiers(t *testing.T, test func(t *testing.T, newCache func() *Cache)) {
	t.Run("memory", func(t *testing.T) {
		test(t, func() *Cache {
			return New(Options{MemoryBytes: 1 << 20, MaxEntryBytes: 1 << 16, LockTimeout: 2 * time.Second})
		})
	})
	t.Run("redis", func(t *testing.T) {
		rs := testredis.Start(t)
		test(t, func() *Cache { return newRedisCache(t, rs.Addr) })
	})
}

func newRedisCache(t testing.TB, addr string) *Cache {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	c := New(Options{MemoryBytes: 1 << 20, MaxEntryBytes: 1 << 16, LockTimeout: 2 * time.Second,
		Redis: client, KeyPrefix: "test:", Timeout: 200 * time.Millisecond})
	c.Start()
	t.Cleanup(c.Close)
	waitFor(t, "the purge subscription", c.subscribed.Load)
	return c
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var testPolicy = Policy{TTL: time.Minute, StaleWhileRevalidate: 0, StaleIfError: 0}

func testKey(t testing.TB, route, path string) Key {
	spec := &KeySpec{Route: route}
	k, err := spec.Key(&Request{Method: "GET", Path: path, View: "full"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func store(t *testing.T, c *Cache, route, path, body string, p Policy) {
	t.Helper()
	res := c.Get(context.Background(), testKey(t, route, path), Meta{route, path}, p, true)
	if res.Outcome != Miss {
		t.Fatalf("store %s %s: outcome %v, want Miss", route, path, res.Outcome)
	}
	if e := res.Fill.Store(context.Background(), 200, http.Header{"Content-Type": {"text/plain"}}, []byte(body), p.TTL, false); e == nil {
		t.Fatalf("store %s %s: not stored", route, path)
	}
}

func TestConcurrentMissesFillOnce(t *testing.T) {
	tiers(t, func(t *testing.T, newCache func() *Cache) {
		caches := []*Cache{newCache()}
		if caches[0].rt != nil {
			caches = append(caches, newCache()) // two instances on one Redis
		}
		k := testKey(t, "services", "/api/services")
		var misses, collapsed, hits atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 100 {
			c := caches[i%len(caches)]
			wg.Go(func() {
				<-start
				res := c.Get(context.Background(), k, Meta{"services", "/api/services"}, testPolicy, true)
				switch res.Outcome {
				case Miss:
					misses.Add(1)
					time.Sleep(100 * time.Millisecond) // the upstream
					res.Fill.Store(context.Background(), 200, http.Header{}, []byte("catalogue"), time.Minute, false)
				case Collapsed:
					collapsed.Add(1)
				case Hit:
					hits.Add(1)
				default:
					t.Errorf("outcome %v (%s)", res.Outcome, res.Why)
					return
				}
				if res.Outcome != Miss && string(res.Entry.Body) != "catalogue" {
					t.Errorf("body %q", res.Entry.Body)
				}
			})
		}
		close(start)
		wg.Wait()
		if misses.Load() != 1 || misses.Load()+collapsed.Load()+hits.Load() != 100 {
			t.Fatalf("%d misses, %d collapsed, %d hits; want one miss among 100", misses.Load(), collapsed.Load(), hits.Load())
		}
	})
}

func TestStaleWhileRevalidate(t *testing.T) {
	tiers(t, func(t *testing.T, newCache func() *Cache) {
		c := newCache()
		p := Policy{TTL: 200 * time.Millisecond, StaleWhileRevalidate: 10 * time.Second}
		store(t, c, "r", "/a", "v1", p)
		time.Sleep(300 * time.Millisecond)
		k := testKey(t, "r", "/a")
		first := c.Get(context.Background(), k, Meta{"r", "/a"}, p, true)
		if first.Outcome != Stale || first.Fill == nil || string(first.Entry.Body) != "v1" {
			t.Fatalf("first caller after expiry: %v fill %v", first.Outcome, first.Fill != nil)
		}
		// While the first refreshes, the others are served the stale answer and
		// do not refresh too.
		for range 5 {
			res := c.Get(context.Background(), k, Meta{"r", "/a"}, p, true)
			if res.Outcome != Stale || res.Fill != nil || string(res.Entry.Body) != "v1" {
				t.Fatalf("caller during the refresh: %v fill %v", res.Outcome, res.Fill != nil)
			}
		}
		first.Fill.Store(context.Background(), 200, http.Header{}, []byte("v2"), p.TTL, false)
		res := c.Get(context.Background(), k, Meta{"r", "/a"}, p, true)
		if res.Outcome != Hit || string(res.Entry.Body) != "v2" {
			t.Fatalf("after the refresh: %v %q", res.Outcome, bodyOf(res))
		}
	})
}

func bodyOf(r Result) string {
	if r.Entry == nil {
		return ""
	}
	return string(r.Entry.Body)
}

func TestStaleIfError(t *testing.T) {
	tiers(t, func(t *testing.T, newCache func() *Cache) {
		c := newCache()
		p := Policy{TTL: 200 * time.Millisecond, StaleIfError: 10 * time.Second}
		store(t, c, "r", "/a", "v1", p)
		time.Sleep(300 * time.Millisecond)
		k := testKey(t, "r", "/a")
		first := c.Get(context.Background(), k, Meta{"r", "/a"}, p, true)
		if first.Outcome != Miss || first.Entry == nil || string(first.Entry.Body) != "v1" {
			t.Fatalf("first caller after expiry: %v, stale %q; want Miss with the stale entry", first.Outcome, bodyOf(first))
		}
		waiter := make(chan Result)
		go func() { waiter <- c.Get(context.Background(), k, Meta{"r", "/a"}, p, true) }()
		time.Sleep(50 * time.Millisecond)
		first.Fill.Abandon(context.Background(), false) // the upstream failed
		res := <-waiter
		if res.Outcome != Stale || res.Why != "stale-if-error" || string(res.Entry.Body) != "v1" {
			t.Fatalf("waiter after the failed fill: %v %q %q", res.Outcome, res.Why, bodyOf(res))
		}
	})
}

func TestNotStoredMark(t *testing.T) {
	tiers(t, func(t *testing.T, newCache func() *Cache) {
		c := newCache()
		k := testKey(t, "r", "/cookie")
		res := c.Get(context.Background(), k, Meta{"r", "/cookie"}, testPolicy, true)
		if res.Outcome != Miss {
			t.Fatalf("first: %v", res.Outcome)
		}
		res.Fill.Abandon(context.Background(), true) // Set-Cookie: not stored
		for range 3 {
			if res := c.Get(context.Background(), k, Meta{"r", "/cookie"}, testPolicy, true); res.Outcome != Bypass || res.Why != "uncacheable" {
				t.Fatalf("after the mark: %v %q, want Bypass uncacheable", res.Outcome, res.Why)
			}
		}
	})
}

func TestPurge(t *testing.T) {
	tiers(t, func(t *testing.T, newCache func() *Cache) {
		a := newCache()
		b := a
		if a.rt != nil {
			b = newCache()
		}
		for _, e := range []struct{ route, path string }{
			{"services", "/api/services"}, {"services", "/api/services/1"}, {"services", "/api/prices"}, {"staff", "/api/services/staff"},
		} {
			store(t, a, e.route, e.path, e.route+e.path, testPolicy)
			// b reads each, so its in-process tier holds it too.
			if res := b.Get(context.Background(), testKey(t, e.route, e.path), Meta{e.route, e.path}, testPolicy, true); res.Outcome != Hit {
				t.Fatalf("%s %s on b: %v", e.route, e.path, res.Outcome)
			}
		}
		res, err := a.Purge(context.Background(), []string{"services"}, "/api/services")
		if err != nil {
			t.Fatal(err)
		}
		wantInstances := 1
		if a.rt != nil {
			wantInstances = 2
		}
		if res.Entries != 2 || res.Instances != wantInstances {
			t.Fatalf("purge: %+v, want 2 entries on %d instances", res, wantInstances)
		}
		for _, e := range []struct {
			route, path string
			want        Outcome
		}{
			{"services", "/api/services", Miss}, {"services", "/api/services/1", Miss},
			{"services", "/api/prices", Hit}, {"staff", "/api/services/staff", Hit},
		} {
			for name, c := range map[string]*Cache{"a": a, "b": b} {
				res := c.Get(context.Background(), testKey(t, e.route, e.path), Meta{e.route, e.path}, testPolicy, true)
				if res.Outcome != e.want {
					t.Errorf("%s %s on %s after the purge: %v, want %v", e.route, e.path, name, res.Outcome, e.want)
				}
				if res.Fill != nil {
					res.Fill.Abandon(context.Background(), false)
				}
			}
		}
	})
}

// A fill that looked the key up before a purge, and fetched the old answer, must
// not store it after the purge.
func TestPurgeBeatsAFillInFlight(t *testing.T) {
	tiers(t, func(t *testing.T, newCache func() *Cache) {
		c := newCache()
		k := testKey(t, "r", "/a")
		res := c.Get(context.Background(), k, Meta{"r", "/a"}, testPolicy, true)
		if res.Outcome != Miss {
			t.Fatalf("first: %v", res.Outcome)
		}
		if _, err := c.Purge(context.Background(), []string{"r"}, ""); err != nil {
			t.Fatal(err)
		}
		if e := res.Fill.Store(context.Background(), 200, http.Header{}, []byte("old"), time.Minute, false); e != nil {
			t.Fatal("a fill begun before the purge stored its answer after it")
		}
		if res := c.Get(context.Background(), k, Meta{"r", "/a"}, testPolicy, true); res.Outcome != Miss {
			t.Fatalf("after: %v, want Miss", res.Outcome)
		}
	})
}

// With Redis stopped, every lookup answers Bypass, quickly, and the cache works
// again once Redis is back.
func TestRedisDownIsBypass(t *testing.T) {
	rs := testredis.Start(t)
	c := newRedisCache(t, rs.Addr)
	store(t, c, "r", "/a", "v1", testPolicy)
	rs.Stop()
	waitFor(t, "the subscription to notice", func() bool { return !c.subscribed.Load() })
	for i := range 20 {
		start := time.Now()
		res := c.Get(context.Background(), testKey(t, "r", fmt.Sprintf("/%d", i%3)), Meta{"r", "/"}, testPolicy, true)
		if res.Outcome != Bypass || res.Why != "redis-unavailable" {
			t.Fatalf("with Redis down: %v %q", res.Outcome, res.Why)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a lookup with Redis down took %v", d)
		}
	}
	rs.Restart()
	waitFor(t, "the cache to use Redis again", func() bool {
		res := c.Get(context.Background(), testKey(t, "r", "/b"), Meta{"r", "/b"}, testPolicy, true)
		if res.Fill != nil {
			res.Fill.Abandon(context.Background(), false)
		}
		return res.Outcome == Miss
	})
	waitFor(t, "the subscription to come back", c.subscribed.Load)
}

// An instance whose subscription was down while a purge happened empties its
// in-process tier when it is back.
func TestMissedPurgeEmptiesTheTier(t *testing.T) {
	rs := testredis.Start(t)
	a := newRedisCache(t, rs.Addr)
	store(t, a, "r", "/a", "v1", testPolicy)
	if a.mem.len() != 1 {
		t.Fatalf("in-process entries: %d", a.mem.len())
	}
	// What a purge does while a's subscription is down: the epoch moves.
	client := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer client.Close()
	rs.Restart() // a's subscription breaks
	if err := client.Incr(context.Background(), "test:cache:epoch").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to resubscribe and empty its tier", func() bool { return a.subscribed.Load() && a.mem.len() == 0 })
}

func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	m := newMemory(memoryShards * 1000)
	now := time.Now()
	mk := func(n int) *Entry {
		return newEntry(200, http.Header{}, make([]byte, n), now, time.Minute, Policy{})
	}
	// Keys in one shard: the first byte picks it.
	key := func(i byte) Key { return Key{0, i} }
	m.put(key(1), "r", "/1", mk(100))
	m.put(key(2), "r", "/2", mk(100))
	m.get(key(1), now) // 1 is now more recent than 2
	m.put(key(3), "r", "/3", mk(100))
	if m.get(key(2), now) != nil {
		t.Fatal("the least recently used entry was kept")
	}
	if m.get(key(1), now) == nil || m.get(key(3), now) == nil {
		t.Fatal("a recently used entry was evicted")
	}
	m.put(key(4), "r", "/4", mk(5000))
	if m.get(key(4), now) != nil {
		t.Fatal("an entry larger than the shard was kept")
	}
	if got := m.get(key(1), now.Add(2*time.Minute)); got != nil {
		t.Fatal("an expired entry was served")
	}
}

// A caller waiting on another's lookup is not left without an answer when that
// caller goes away: it looks again, and gets the entry another instance fills.
func TestLeaderLeavingDoesNotStrandFollowers(t *testing.T) {
	rs := testredis.Start(t)
	a, b := newRedisCache(t, rs.Addr), newRedisCache(t, rs.Addr)
	k, meta := testKey(t, "r", "/a"), Meta{"r", "/a"}
	filler := b.Get(context.Background(), k, meta, testPolicy, true)
	if filler.Outcome != Miss {
		t.Fatalf("filler on b: %v", filler.Outcome)
	}
	ctx, cancel := context.WithCancel(context.Background())
	leader, follower := make(chan Result, 1), make(chan Result, 1)
	go func() { leader <- a.Get(ctx, k, meta, testPolicy, true) }()
	time.Sleep(50 * time.Millisecond)
	go func() { follower <- a.Get(context.Background(), k, meta, testPolicy, true) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if res := <-leader; res.Outcome != Bypass {
		t.Fatalf("the leader that left: %v", res.Outcome)
	}
	time.Sleep(50 * time.Millisecond)
	filler.Fill.Store(context.Background(), 200, http.Header{}, []byte("v1"), time.Minute, false)
	if res := <-follower; res.Outcome != Hit || string(res.Entry.Body) != "v1" {
		t.Fatalf("the follower: %v %q, want the entry b filled", res.Outcome, bodyOf(res))
	}
}

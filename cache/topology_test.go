package cache

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// newTopologyCache is a Cache on tp's Redis through the state store's client, as the
// gateway builds it, with its in-process tier off so every answer comes from Redis.
func newTopologyCache(t *testing.T, tp testredis.Topology, prefix string) *Cache {
	t.Helper()
	s, err := state.NewRedis(state.RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := New(Options{MaxEntryBytes: 1 << 16, LockTimeout: 2 * time.Second,
		Redis: s.Client(), KeyPrefix: prefix, Timeout: 500 * time.Millisecond})
	c.Start()
	t.Cleanup(c.Close)
	waitFor(t, "the purge subscription", c.subscribed.Load)
	return c
}

// TestTopologies runs the fleet-wide cache's contract on one server, a Sentinel
// group and a Cluster: concurrent misses on two instances fill once (the lookup
// script takes the lock; the store script writes entry, marker, index and lock, all
// under the route's hash tag), the other instance hits, and a purge (a script over
// the route's index, then PUBLISH, which a Cluster carries to every node) empties
// both instances and is acknowledged by both.
func TestTopologies(t *testing.T) {
	for _, tp := range testredis.StartTopologies(t) {
		t.Run(tp.Name, func(t *testing.T) {
			prefix := "topology:" + tp.Name + ":"
			a, b := newTopologyCache(t, tp, prefix), newTopologyCache(t, tp, prefix)
			ctx := context.Background()

			t.Run("concurrent misses on two instances fill once", func(t *testing.T) {
				k := testKey(t, "services", "/api/services")
				var misses, others atomic.Int64
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range 40 {
					c := []*Cache{a, b}[i%2]
					wg.Go(func() {
						<-start
						res := c.Get(ctx, k, Meta{"services", "/api/services"}, testPolicy, true)
						switch res.Outcome {
						case Miss:
							misses.Add(1)
							time.Sleep(50 * time.Millisecond) // the upstream
							res.Fill.Store(ctx, 200, http.Header{}, []byte("catalogue"), time.Minute, false)
						case Collapsed, Hit:
							others.Add(1)
							if string(res.Entry.Body) != "catalogue" {
								t.Errorf("body %q", res.Entry.Body)
							}
						default:
							t.Errorf("outcome %v (%s)", res.Outcome, res.Why)
						}
					})
				}
				close(start)
				wg.Wait()
				if misses.Load() != 1 || others.Load() != 39 {
					t.Fatalf("%d misses, %d collapsed or hits; want one miss among 40", misses.Load(), others.Load())
				}
			})

			t.Run("a purge on one instance empties both", func(t *testing.T) {
				for _, e := range []struct{ route, path string }{
					{"orders", "/api/orders/1"}, {"orders", "/api/orders/2"}, {"staff", "/api/staff"},
				} {
					store(t, a, e.route, e.path, e.path, testPolicy)
					if res := b.Get(ctx, testKey(t, e.route, e.path), Meta{e.route, e.path}, testPolicy, true); res.Outcome != Hit {
						t.Fatalf("%s on the other instance: %v (%s)", e.path, res.Outcome, res.Why)
					}
				}
				res, err := b.Purge(ctx, []string{"orders"}, "/api/orders/")
				if err != nil {
					t.Fatal(err)
				}
				if res.Entries != 2 || res.Instances != 2 {
					t.Fatalf("purge: %+v, want 2 entries on 2 instances", res)
				}
				for _, c := range []*Cache{a, b} {
					// Without asking for the key's lock, an absent entry is a Bypass.
					if got := c.Get(ctx, testKey(t, "orders", "/api/orders/1"), Meta{"orders", "/api/orders/1"}, testPolicy, false); got.Outcome != Bypass || got.Entry != nil {
						t.Errorf("purged entry: %v %+v (%s), want it gone", got.Outcome, got.Entry, got.Why)
					}
					if got := c.Get(ctx, testKey(t, "staff", "/api/staff"), Meta{"staff", "/api/staff"}, testPolicy, false); got.Outcome != Hit {
						t.Errorf("another route's entry after the purge: %v", got.Outcome)
					}
				}
			})
		})
	}
}

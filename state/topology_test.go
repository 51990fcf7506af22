package state

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
)

// topologyOptions are the options a gateway would be configured with for tp.
func topologyOptions(tp testredis.Topology, prefix string) RedisOptions {
	return RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName, KeyPrefix: prefix}
}

// TestTopologies holds the state contract to one server, a Sentinel group and a
// Cluster alike, and then kills the master of the Sentinel group and of a Cluster
// shard: the store must come back by itself, say where the master is now, count the
// failover, and keep what was replicated before.
func TestTopologies(t *testing.T) {
	for _, tp := range testredis.StartTopologies(t) {
		t.Run(tp.Name, func(t *testing.T) {
			t.Run("contract", func(t *testing.T) {
				for _, c := range contract {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						s := openRedis(t, topologyOptions(tp, "contract:"+t.Name()+":"))
						c.run(t, s, time.Sleep)
					})
				}
			})
			t.Run("topology", func(t *testing.T) {
				s := openRedis(t, RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName, WatchEvery: 50 * time.Millisecond})
				want := wantMasters(t, tp)
				waitTopology(t, s, func(got Topology) bool { return slices.Equal(got.Masters, want) })
				if got := s.Topology(); got.Kind != tp.Name || got.Failovers != 0 || got.Err != nil {
					t.Fatalf("Topology() = %+v, want kind %s, masters %v, no failover", got, tp.Name, want)
				}
			})
			if tp.Name != "single" {
				t.Run("master killed", func(t *testing.T) { testFailover(t, tp) })
			}
		})
	}
}

// wantMasters asks the topology itself where its masters are.
func wantMasters(t *testing.T, tp testredis.Topology) []string {
	t.Helper()
	switch {
	case tp.Sentinel != nil:
		m, err := tp.Sentinel.Master()
		if err != nil {
			t.Fatal(err)
		}
		return []string{m}
	case tp.Cluster != nil:
		ms, err := tp.Cluster.Masters()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	return tp.Addrs
}

func waitTopology(t *testing.T, s *Redis, ok func(Topology) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(s.Topology()) {
		if time.Now().After(deadline) {
			t.Fatalf("Topology() = %+v after 30s", s.Topology())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testFailover(t *testing.T, tp testredis.Topology) {
	var (
		mu    sync.Mutex
		kinds = map[string]int{}
	)
	o := topologyOptions(tp, "failover:")
	o.Timeout = 300 * time.Millisecond
	o.WatchEvery = 50 * time.Millisecond
	o.OnError = func(kind string) {
		mu.Lock()
		kinds[kind]++
		mu.Unlock()
	}
	s := openRedis(t, o)
	ctx := context.Background()
	// "{n}" puts the key on the shard killed below.
	const key = "nonce:{n}:before"
	wantSetNX(t, s, key, "1", time.Hour, true)
	before := wantMasters(t, tp)
	waitTopology(t, s, func(got Topology) bool { return slices.Equal(got.Masters, before) })

	var old string
	switch {
	case tp.Sentinel != nil:
		old = tp.Sentinel.KillMaster(t).Addr
	default:
		old = tp.Cluster.KillMasterOf(t, "failover:"+key).Addr
	}
	killed := time.Now()
	// What a gateway does meanwhile: ask, fail (fast), ask again.
	var firstOK time.Duration
	for i := 0; ; i++ {
		_, err := s.SetNX(ctx, "nonce:{n}:during", "1", time.Hour)
		if err == nil {
			firstOK = time.Since(killed)
			break
		}
		if time.Since(killed) > 30*time.Second {
			where, logs := "?", ""
			if tp.Sentinel != nil {
				m, err := tp.Sentinel.Master()
				where, logs = fmt.Sprint(m, err), tp.Sentinel.Logs()
			} else {
				m, err := tp.Cluster.MasterOf("failover:" + key)
				where, logs = fmt.Sprint(m, err), tp.Cluster.Logs()
			}
			t.Fatalf("still failing 30s after the master (%s) was killed: %v; the topology names %s as master now%s", old, err, where, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s: first write accepted %v after the master was SIGKILLed", tp.Name, firstOK.Round(time.Millisecond))

	// What was on the replica before the kill is there still: a nonce seen is a
	// replay after the failover too.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := s.SetNX(ctx, key, "2", time.Hour)
		if err == nil && !ok {
			break
		}
		if err == nil && ok {
			// Replication is asynchronous; this write was a second old and
			// replicated long before the kill, so losing it is a bug.
			t.Fatalf("the nonce written before the failover was lost")
		}
		if time.Now().After(deadline) {
			t.Fatalf("SetNX after the failover: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitTopology(t, s, func(got Topology) bool {
		return got.Failovers == 1 && !slices.Contains(got.Masters, old) && got.Err == nil
	})
	got := s.Topology()
	if want := wantMasters(t, tp); !slices.Equal(got.Masters, want) {
		t.Errorf("Topology().Masters = %v, want %v", got.Masters, want)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%s: errors by kind while failing over: %v; topology now %+v", tp.Name, kinds, got)
	if len(kinds) == 0 {
		t.Error("no error was reported while the master was down")
	}
	for k := range kinds {
		if !slices.Contains(ErrorKinds, k) {
			t.Errorf("unknown error kind %q", k)
		}
	}
}

// BenchmarkNonceDurability measures what waiting for the replica would cost each
// nonce write on a Sentinel group's master: the recorded nonce alone (what the
// gateway does, replication asynchronous), and followed by WAIT 1, which returns
// once the replica has it. Run with -benchtime and -cpu as docs/reliability.md
// says; the figures are there.
func BenchmarkNonceDurability(b *testing.B) {
	g := testredis.StartSentinel(b)
	master, err := g.Master()
	if err != nil {
		b.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: master, Protocol: 2, DisableIdentity: true})
	b.Cleanup(func() { client.Close() })
	ctx := context.Background()
	var n atomic.Int64
	for _, tc := range []struct {
		name string
		wait bool
	}{{"async", false}, {"wait-1-replica", true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := "nonce:{bench}:" + strconv.FormatInt(n.Add(1), 10)
					cmds, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
						p.SetNX(ctx, key, "1", time.Minute)
						if tc.wait {
							p.Do(ctx, "WAIT", 1, 1000)
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					if tc.wait && cmds[1].(*redis.Cmd).Val() != int64(1) {
						b.Fatal("WAIT: the replica did not acknowledge")
					}
				}
			})
		})
	}
}

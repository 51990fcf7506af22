package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// deciderBackend opens fresh Deciders of one kind; once reports whether a key a
// once step recorded is there.
type deciderBackend struct {
	name string
	open func(t *testing.T) (d Decider, recorded func(t *testing.T, key string) bool)
}

func stepwiseBackend() deciderBackend {
	return deciderBackend{name: "stepwise (local + memory)", open: func(t *testing.T) (Decider, func(*testing.T, string) bool) {
		mem := state.NewMemory(state.MemoryOptions{})
		return Stepwise(NewLocal(LocalOptions{}), mem.SetNX), func(t *testing.T, key string) bool {
			_, ok, err := mem.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
	}}
}

func topologyBackend(tp testredis.Topology) deciderBackend {
	return deciderBackend{name: "redis " + tp.Name, open: func(t *testing.T) (Decider, func(*testing.T, string) bool) {
		prefix := t.Name() + ":"
		store, err := state.NewRedis(state.RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName, KeyPrefix: prefix, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return NewRedis(store.Scripter(), RedisOptions{KeyPrefix: prefix}), func(t *testing.T, key string) bool {
			_, ok, err := store.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
	}}
}

// decide runs d on steps and returns the outcomes.
func decide(d Decider, steps ...Step) []Outcome {
	out := make([]Outcome, len(steps))
	d.Decide(context.Background(), steps, out)
	return out
}

func wantOutcome(t *testing.T, what string, o Outcome, decided, allowed bool) {
	t.Helper()
	if o.Err != nil || o.Decided != decided || decided && o.Decision.Allowed != allowed {
		t.Fatalf("%s: %+v, want decided %v, allowed %v", what, o, decided, allowed)
	}
}

// The stages of a request as the gateway asks them: its address's budget, its
// replay check, its client's budget. "{client-a}" tags the client's keys alike.
var (
	perAddress = rule("rate_limits[0]", 60, time.Hour, 2)
	perClient  = &Rule{Name: "rate_limits[1]", Key: "client", Limit: 60.0 / 3600, Count: 60, Burst: 3}
)

func requestSteps(nonce string) []Step {
	return []Step{
		{Rule: perAddress, Key: "{192.0.2.1}", Stage: 0},
		{Key: "nonce:{client-a}:" + nonce, TTL: time.Minute, Stage: 1},
		{Rule: perClient, Key: "{client-a}", Stage: 2},
	}
}

var decideCases = []struct {
	name string
	run  func(t *testing.T, d Decider, recorded func(*testing.T, string) bool)
}{
	{"a fresh request passes every stage", func(t *testing.T, d Decider, recorded func(*testing.T, string) bool) {
		out := decide(d, requestSteps("n1")...)
		wantOutcome(t, "address", out[0], true, true)
		wantOutcome(t, "nonce", out[1], true, true)
		wantOutcome(t, "client", out[2], true, true)
		if out[0].Decision.Remaining != 1 || out[2].Decision.Remaining != 2 {
			t.Errorf("remaining %d and %d, want 1 and 2", out[0].Decision.Remaining, out[2].Decision.Remaining)
		}
		if !recorded(t, "nonce:{client-a}:n1") {
			t.Error("the nonce was not recorded")
		}
	}},
	{"a replay is refused and spends no later stage", func(t *testing.T, d Decider, _ func(*testing.T, string) bool) {
		decide(d, requestSteps("n1")...)
		out := decide(d, requestSteps("n1")...)
		wantOutcome(t, "address", out[0], true, true)
		wantOutcome(t, "nonce", out[1], true, false)
		wantOutcome(t, "client", out[2], false, false)
		// The client spent one of three, not two.
		other := []Step{{Rule: perClient, Key: "{client-a}", Stage: 0}}
		if out := decide(d, other...); !out[0].Decision.Allowed || out[0].Decision.Remaining != 1 {
			t.Errorf("client after one admitted request and its replay: %+v, want allowed with 1 left", out[0])
		}
	}},
	{"refused by an earlier stage: nonce not recorded, client not spent", func(t *testing.T, d Decider, recorded func(*testing.T, string) bool) {
		decide(d, requestSteps("n1")...)
		decide(d, requestSteps("n2")...)
		out := decide(d, requestSteps("n3")...) // the address's burst of 2 is spent
		wantOutcome(t, "address", out[0], true, false)
		if out[1].Decided || out[2].Decided {
			t.Fatalf("later stages decided after a refusal: %+v %+v", out[1], out[2])
		}
		if recorded(t, "nonce:{client-a}:n3") {
			t.Error("the refused request's nonce was recorded")
		}
		// Its client still has one of three left: the refused request spent none.
		other := []Step{{Rule: perClient, Key: "{client-a}", Stage: 0}}
		if out := decide(d, other...); !out[0].Decision.Allowed || out[0].Decision.Remaining != 0 {
			t.Errorf("client after two admitted requests and a refused one: %+v, want allowed with 0 left", out[0])
		}
	}},
	{"a refusal is known until the bucket refills, and spends nothing", func(t *testing.T, d Decider, _ func(*testing.T, string) bool) {
		decide(d, requestSteps("n1")...)
		decide(d, requestSteps("n2")...)
		out := decide(d, requestSteps("n3")...)
		known, ok := d.Known(requestSteps("n4")[0])
		if _, stepwise := d.(stepwise); stepwise {
			if ok {
				t.Fatalf("Stepwise knew %+v", known)
			}
			return
		}
		if !ok || known.Allowed || known.RetryAfter <= 0 || known.RetryAfter > out[0].Decision.RetryAfter {
			t.Fatalf("Known = %+v, %v; want the refusal, retry within %v", known, ok, out[0].Decision.RetryAfter)
		}
		if _, ok := d.Known(requestSteps("n4")[2]); ok {
			t.Error("a bucket that was never refused is known")
		}
	}},
	{"concurrent once steps of one key: exactly one is fresh", func(t *testing.T, d Decider, _ func(*testing.T, string) bool) {
		var fresh, replayed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 40 {
			wg.Go(func() {
				<-start
				o := decide(d, Step{Key: "nonce:{client-a}:raced", TTL: time.Minute})[0]
				switch {
				case o.Err != nil:
					t.Error(o.Err)
				case o.Decision.Allowed:
					fresh.Add(1)
				default:
					replayed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if fresh.Load() != 1 || replayed.Load() != 39 {
			t.Fatalf("%d fresh, %d replayed; want 1 and 39", fresh.Load(), replayed.Load())
		}
	}},
	{"a once step expires with its TTL", func(t *testing.T, d Decider, _ func(*testing.T, string) bool) {
		st := Step{Key: "nonce:{client-a}:short", TTL: 100 * time.Millisecond}
		wantOutcome(t, "first", decide(d, st)[0], true, true)
		wantOutcome(t, "again", decide(d, st)[0], true, false)
		if _, stepwise := d.(stepwise); stepwise {
			return // the memory store's clock is the real one too, but its sweep is lazy: wait all the same
		}
		time.Sleep(150 * time.Millisecond)
		wantOutcome(t, "after the TTL", decide(d, st)[0], true, true)
	}},
}

// TestDecideContract holds every Decider to the same stage semantics, on one
// server, a Sentinel group and a Cluster alike: on a Cluster the address's bucket
// is in another slot than the client's nonce and bucket, so its refusal is seen
// only after the client's script ran, and what that took is given back. The
// limiter contract (TestLimiterContract) runs on Sentinel and Cluster too.
func TestDecideContract(t *testing.T) {
	tops := testredis.StartTopologies(t)
	backends := []deciderBackend{stepwiseBackend()}
	for _, tp := range tops {
		backends = append(backends, topologyBackend(tp))
	}
	for _, be := range backends {
		for _, tc := range decideCases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				d, recorded := be.open(t)
				tc.run(t, d, recorded)
			})
		}
	}
	for _, tp := range tops[1:] {
		for _, tc := range contractCases {
			t.Run("limiter contract/"+tp.Name+"/"+tc.name, func(t *testing.T) {
				store, err := state.NewRedis(state.RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName, Timeout: 2 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { store.Close() })
				tc.run(t, NewRedis(store.Scripter(), RedisOptions{KeyPrefix: t.Name() + ":"}), time.Sleep)
			})
		}
	}
}

// With Redis down, the fallback answers rule steps by mode and keeps the once
// steps' errors, stage by stage: redis_failure closed refuses at the address's
// stage, before the replay check could answer 503.
func TestFallbackDecideWhileRedisIsDown(t *testing.T) {
	srv := testredis.Start(t)
	store := openStore(t, srv)
	srv.Stop()
	for _, tt := range []struct {
		mode                       string
		addressAllowed, onceFailed bool
	}{
		{FailLocal, true, true},
		{FailOpen, true, true},
		{FailClosed, false, false},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			var fallbacks atomic.Int32
			f := NewFallback(NewRedis(store.Scripter(), RedisOptions{}), NewLocal(LocalOptions{}), tt.mode, func(error) { fallbacks.Add(1) })
			for round := range 2 { // the first asks Redis, the second is within the cooldown
				out := decide(f, requestSteps(fmt.Sprint("n", round))...)
				wantOutcome(t, fmt.Sprintf("round %d, address", round), out[0], true, tt.addressAllowed)
				if tt.onceFailed != (out[1].Err != nil) {
					t.Fatalf("round %d, nonce: %+v; want an error %v", round, out[1], tt.onceFailed)
				}
				if out[2].Decided {
					t.Fatalf("round %d: the client's stage was decided after the nonce failed: %+v", round, out[2])
				}
			}
			if fallbacks.Load() != 1 {
				t.Errorf("%d fallbacks reported, want 1 (then the cooldown)", fallbacks.Load())
			}
		})
	}
}

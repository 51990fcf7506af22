package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestMemoryExpiryFollowsInjectedClock(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now})
	wantSetNX(t, m, "nonce", "v", 10*time.Second, true)

	clock.Advance(10*time.Second - time.Nanosecond)
	wantTTL(t, m, "nonce", time.Nanosecond, time.Nanosecond, true)
	wantSetNX(t, m, "nonce", "v", 10*time.Second, false)

	clock.Advance(time.Nanosecond)
	wantTTL(t, m, "nonce", 0, 0, false)
	wantSetNX(t, m, "nonce", "v", 10*time.Second, true)
}

func TestMemoryDefaultsToRealClock(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	wantSetNX(t, m, "nonce", "v", time.Hour, true)
	wantTTL(t, m, "nonce", 59*time.Minute, time.Hour, true)
}

func TestMemorySharding(t *testing.T) {
	tests := []struct {
		name             string
		maxEntries       int
		shards, perShard int
	}{
		{"default holds a million in 32 shards", 0, 32, 31_250},
		{"tiny store is one exact shard", 3, 1, 3},
		{"small store keeps shards of at least 1024", 5000, 4, 1250},
		{"large store stops at 32 shards", 10_000_000, 32, 312_500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory(MemoryOptions{MaxEntries: tt.maxEntries})
			if len(m.shards) != tt.shards || m.perShard != tt.perShard {
				t.Fatalf("%d shards of %d, want %d of %d", len(m.shards), m.perShard, tt.shards, tt.perShard)
			}
		})
	}
}

func TestMemoryFull(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		op   func(m *Memory) (bool, error)
		want bool
		err  error
	}{
		{"new nonce is refused", func(m *Memory) (bool, error) { return m.SetNX(ctx, "new", "v", time.Minute) }, false, errFull},
		{"new token is refused", func(m *Memory) (bool, error) { return true, m.Set(ctx, "new", "v", time.Minute) }, true, errFull},
		{"replayed nonce is still detected", func(m *Memory) (bool, error) { return m.SetNX(ctx, "k1", "v", time.Minute) }, false, nil},
		{"existing token can be replaced", func(m *Memory) (bool, error) { return true, m.Set(ctx, "k1", "v2", time.Minute) }, true, nil},
		{"deleting makes room", func(m *Memory) (bool, error) {
			if err := m.Del(ctx, "k1"); err != nil {
				return false, err
			}
			return m.SetNX(ctx, "new", "v", time.Minute)
		}, true, nil},
		{"releasing a lock makes room", func(m *Memory) (bool, error) {
			if _, err := m.CompareAndDelete(ctx, "k2", "v"); err != nil {
				return false, err
			}
			return m.SetNX(ctx, "new", "v", time.Minute)
		}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory(MemoryOptions{MaxEntries: 3, Now: newFakeClock().Now})
			for i := range 3 {
				wantSetNX(t, m, fmt.Sprint("k", i), "v", time.Minute, true)
			}
			got, err := tt.op(m)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if n := m.len(); n > 3 {
				t.Fatalf("store holds %d entries, more than MaxEntries 3", n)
			}
		})
	}
	if errFull.Error() != "state: memory store full" {
		t.Fatalf("errFull = %q", errFull)
	}
}

func TestMemoryFullReclaimsExpired(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{MaxEntries: 3, Now: clock.Now})
	for i := range 3 {
		wantSetNX(t, m, fmt.Sprint("k", i), "v", time.Minute, true)
	}
	if _, err := m.SetNX(context.Background(), "new", "v", time.Minute); !errors.Is(err, errFull) {
		t.Fatalf("SetNX into a full store: err = %v, want errFull", err)
	}

	clock.Advance(30 * time.Second) // nothing has expired yet
	if _, err := m.SetNX(context.Background(), "new", "v", time.Minute); !errors.Is(err, errFull) {
		t.Fatalf("SetNX before anything expired: err = %v, want errFull", err)
	}

	clock.Advance(30 * time.Second)
	wantSetNX(t, m, "new", "v", time.Minute, true)
	if n := m.len(); n != 1 {
		t.Fatalf("after reclaiming, store holds %d entries, want 1", n)
	}
}

// A full sweep puts the next one off until the earliest expiry it saw; a shorter-lived
// key added afterwards must bring that forward, or the store would refuse keys it
// could make room for.
func TestMemoryFullReclaimsKeyAddedAfterSweep(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{MaxEntries: 2, Now: clock.Now})
	wantSetNX(t, m, "long-a", "v", time.Hour, true)
	wantSetNX(t, m, "long-b", "v", time.Hour, true)
	if _, err := m.SetNX(context.Background(), "short", "v", time.Second); !errors.Is(err, errFull) {
		t.Fatalf("SetNX into a full store: err = %v, want errFull", err)
	}
	mustDel(t, m, "long-b")
	wantSetNX(t, m, "short", "v", time.Second, true)

	clock.Advance(2 * time.Second)
	wantSetNX(t, m, "next", "v", time.Second, true)
}

func TestMemorySweepsExpiredWhileWriting(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now})
	const stale, fresh = 1000, 3200
	for i := range stale {
		wantSetNX(t, m, fmt.Sprint("stale-", i), "v", time.Second, true)
	}
	clock.Advance(2 * time.Second)
	for i := range fresh {
		wantSetNX(t, m, fmt.Sprint("fresh-", i), "v", time.Hour, true)
	}
	// Each shard sweeps after every 16 writes; ~100 writes a shard leave next to
	// nothing of the stale keys, and certainly not a tenth of them.
	if n := m.len(); n > fresh+stale/10 {
		t.Fatalf("store holds %d entries after %d expired and %d were written: expired entries are not swept", n, stale, fresh)
	}
}

// Nonce traffic in steady state: unique keys, each living a fixed time. Without a full
// store to force a reclaim, the incremental sweep alone must keep garbage bounded.
func TestMemorySteadyStateStaysBounded(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now})
	const live, writes = 1000, 100_000
	for i := range writes {
		clock.Advance(time.Millisecond)
		wantSetNX(t, m, fmt.Sprint("nonce-", i), "v", live*time.Millisecond, true)
		if n := m.len(); n > 3*live {
			t.Fatalf("after %d writes the store holds %d entries for %d live ones", i, n, live)
		}
	}
}

// Run with -race: the point is that mixed operations on shared keys, and reclaims of a
// full store, neither race nor let the store grow past MaxEntries.
func TestMemoryConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	const max = 64
	m := NewMemory(MemoryOptions{MaxEntries: max, Now: clock.Now})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := fmt.Sprint("k", (g*7+i)%200)
				var err error
				switch i % 6 {
				case 0:
					_, err = m.SetNX(ctx, key, "v", 10*time.Millisecond)
				case 1:
					err = m.Set(ctx, key, fmt.Sprint(g), 10*time.Millisecond)
				case 2:
					_, _, err = m.Get(ctx, key)
				case 3:
					_, err = m.CompareAndDelete(ctx, key, fmt.Sprint(g))
				case 4:
					_, _, err = m.TTL(ctx, key)
				case 5:
					err = m.Del(ctx, key)
					clock.Advance(time.Millisecond)
				}
				if err != nil && !errors.Is(err, errFull) {
					t.Errorf("unexpected error: %v", err)
					return
				}
				if n := m.len(); n > max {
					t.Errorf("store holds %d entries, MaxEntries is %d", n, max)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Keys are grouped by owner, the part before their last ':' (auth writes
// "nonce:<client>:<nonce>" and "daojia-sign:<client or daojia>:<sign>"). One owner
// filling its share is refused, errOwnerFull, while every other owner, including the
// callbacks' "daojia-sign:daojia", still gets room: before shares, one partner's
// nonces could fill the whole store and make every signed call and callback fail.
func TestMemoryGivesEachOwnerItsShare(t *testing.T) {
	clock := newFakeClock()
	// 4 shards of 1024; each owner may hold about 1024 keys.
	m := NewMemory(MemoryOptions{MaxEntries: 4096, MaxPerOwner: 1024, Now: clock.Now})
	ctx := context.Background()
	admitted := 0
	for i := range 4096 {
		ok, err := m.SetNX(ctx, fmt.Sprintf("nonce:greedy:%08d", i), "1", time.Minute)
		switch {
		case err == nil && ok:
			admitted++
		case errors.Is(err, errOwnerFull):
		default:
			t.Fatalf("greedy key %d: %v, %v; want admitted or errOwnerFull", i, ok, err)
		}
	}
	// Hashing spreads an owner's keys over the shards unevenly: within a few
	// percent of the share, never over it.
	if admitted > 1024 || admitted < 900 {
		t.Fatalf("one owner was admitted %d keys, want about its share of 1024 and never more", admitted)
	}
	for _, owner := range []string{"nonce:quiet-partner", "nonce:other-partner", "daojia-sign:daojia"} {
		for i := range 500 {
			wantSetNX(t, m, fmt.Sprintf("%s:%08d", owner, i), "1", time.Minute, true)
		}
	}
	// The greedy owner's replays are still recognised: a full share never forgets.
	wantSetNX(t, m, "nonce:greedy:00000000", "1", time.Minute, false)
	// A client id that holds ':' is one owner still: the part after the last ':'
	// is the nonce, which never holds one.
	wantSetNX(t, m, "nonce:ns:client:00000001", "1", time.Minute, true)

	// Its keys expire: the greedy owner has room again.
	clock.Advance(time.Minute)
	wantSetNX(t, m, "nonce:greedy:new", "1", time.Minute, true)
}

func TestMemoryOwnerShareIsFreedByDeletes(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxEntries: 8, MaxPerOwner: 2, Now: newFakeClock().Now})
	ctx := context.Background()
	wantSetNX(t, m, "lock:a:1", "v", time.Minute, true)
	wantSetNX(t, m, "lock:a:2", "v", time.Minute, true)
	if _, err := m.SetNX(ctx, "lock:a:3", "v", time.Minute); !errors.Is(err, errOwnerFull) {
		t.Fatalf("third key of an owner with a share of 2: err = %v, want errOwnerFull", err)
	}
	if err := m.Set(ctx, "lock:a:3", "v", time.Minute); !errors.Is(err, errOwnerFull) {
		t.Fatalf("Set of a third key: err = %v, want errOwnerFull", err)
	}
	// Replacing a key it holds needs no room.
	mustSet(t, m, "lock:a:2", "v2", time.Minute)
	mustDel(t, m, "lock:a:1")
	wantSetNX(t, m, "lock:a:3", "v", time.Minute, true)
	wantCAD(t, m, "lock:a:2", "v2", true)
	wantSetNX(t, m, "lock:a:4", "v", time.Minute, true)
	// Keys that name no owner share only the store's own bound.
	for i := range 6 {
		wantSetNX(t, m, fmt.Sprint("plain-", i), "v", time.Minute, true)
	}
	mustDel(t, m, "lock:a:3")
	mustDel(t, m, "lock:a:4")
	if n := m.ownersHeld(); n != 0 {
		t.Fatalf("%d owners still counted after all their keys went", n)
	}
}

func TestMemoryOwnerShareDefaults(t *testing.T) {
	tests := []struct {
		name      string
		o         MemoryOptions
		wantShare int
	}{
		{"a quarter of the default million", MemoryOptions{}, 250000},
		{"a quarter of MaxEntries", MemoryOptions{MaxEntries: 4096}, 1024},
		{"at least one key", MemoryOptions{MaxEntries: 3}, 1},
		{"given", MemoryOptions{MaxEntries: 4096, MaxPerOwner: 100}, 100},
		{"negative: no shares", MemoryOptions{MaxEntries: 4096, MaxPerOwner: -1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewMemory(tt.o).ownerShare; got != tt.wantShare {
				t.Fatalf("ownerShare = %d, want %d", got, tt.wantShare)
			}
		})
	}
}

// Expired keys an owner leaves are reclaimed for that owner, by the sweep as by a
// full shard's reclaim, and the counts never drift under concurrent use (-race).
func TestMemoryOwnerCountsStayExact(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{MaxEntries: 64, MaxPerOwner: 16, Now: clock.Now})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := fmt.Sprintf("nonce:c%d:%d", g%3, (g*7+i)%100)
				var err error
				switch i % 5 {
				case 0:
					_, err = m.SetNX(ctx, key, "v", 10*time.Millisecond)
				case 1:
					err = m.Set(ctx, key, fmt.Sprint(g), 10*time.Millisecond)
				case 2:
					_, err = m.CompareAndDelete(ctx, key, fmt.Sprint(g))
				case 3:
					err = m.Del(ctx, key)
				case 4:
					clock.Advance(time.Millisecond)
				}
				if err != nil && !errors.Is(err, errFull) && !errors.Is(err, errOwnerFull) {
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	counts := map[string]int{}
	for i := range m.shards {
		for k := range m.shards[i].m {
			if o, ok := ownerOf(k); ok {
				counts[o]++
			}
		}
	}
	for i := range m.owners {
		for o, n := range m.owners[i].n {
			if counts[o] != n {
				t.Fatalf("%q is counted for %d keys, holds %d", o, n, counts[o])
			}
			delete(counts, o)
		}
	}
	if len(counts) != 0 {
		t.Fatalf("keys of uncounted owners %v", counts)
	}
	// Everything expires; one more write per shard reclaims it all.
	clock.Advance(time.Second)
	for i := range 400 {
		_, _ = m.SetNX(ctx, fmt.Sprint("x", i), "v", 0)
	}
	if n := m.ownersHeld(); n != 0 {
		t.Fatalf("%d owners counted after their keys expired", n)
	}
}

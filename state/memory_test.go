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

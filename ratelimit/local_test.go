package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// has reports whether l holds a bucket for r and key, without touching it.
func (l *Local) has(r *Rule, key string) bool {
	_, ok := l.buckets.Load(bucketKey{r.Name, key})
	return ok
}

// entries counts the buckets l holds one by one, rather than trusting its counter.
func (l *Local) entries() int {
	n := 0
	l.buckets.Range(func(_, _ any) bool { n++; return true })
	return n
}

func TestLocalFloodOfKeysStaysWithinMaxKeys(t *testing.T) {
	// A million distinct IPs; a fifth of that under -race, still twenty times the bound.
	million := 1_000_000
	if testing.Short() || raceDetector {
		million = 200_000
	}
	tests := []struct {
		name    string
		keys    int
		maxKeys int
		rule    *Rule
		step    time.Duration // clock advance per request
	}{
		// Each IP's bucket is full again 50ms after its one request, so room is made
		// mostly by dropping full buckets.
		{"flood of IPs whose buckets refill quickly", million, 10_000, rule("rate_limits[0]", 20, time.Second, 40), 10 * time.Microsecond},
		// Nothing refills within the flood: room is made by evicting the oldest.
		{"flood of IPs whose buckets stay drained", 50_000, 5_000, rule("rate_limits[0]", 10, time.Hour, 1), time.Microsecond},
		{"small bound", 30_000, 300, rule("rate_limits[0]", 10, time.Hour, 1), time.Microsecond},
		{"default bound", 120_000, 0, rule("rate_limits[0]", 10, time.Hour, 1), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := NewLocal(LocalOptions{MaxKeys: tt.maxKeys, Now: clock.Now})
			bound := tt.maxKeys
			if bound == 0 {
				bound = defaultMaxKeys
			}
			for i := range tt.keys {
				d, err := l.Allow(context.Background(), tt.rule, strconv.Itoa(i))
				if err != nil || !d.Allowed {
					t.Fatalf("new key %d: got %+v, %v; want allowed", i, d, err)
				}
				clock.Advance(tt.step)
				if i%(tt.keys/20) == 0 {
					if n := l.entries(); n > bound {
						t.Fatalf("after %d keys: %d buckets held, bound %d", i+1, n, bound)
					}
				}
			}
			n := l.entries()
			if n > bound || n != l.Len() {
				t.Fatalf("%d buckets held, Len %d, bound %d", n, l.Len(), bound)
			}
			// Making room takes an eighth at a time, so a bound that was reached is
			// still mostly in use: eviction does not throw away more than it must.
			if n < bound*3/4 {
				t.Errorf("%d buckets held, want at least 3/4 of the bound %d", n, bound)
			}
		})
	}
}

func TestLocalConcurrentFloodStaysWithinMaxKeys(t *testing.T) {
	const (
		maxKeys    = 1000
		goroutines = 8
		perG       = 5000
	)
	l := NewLocal(LocalOptions{MaxKeys: maxKeys})
	r := rule("rate_limits[0]", 10, time.Hour, 1)
	done := make(chan struct{})
	var flood sync.WaitGroup
	for g := range goroutines {
		flood.Go(func() {
			for i := range perG {
				if _, err := l.Allow(context.Background(), r, strconv.Itoa(g)+"-"+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// While buckets come and go, Range is no snapshot, so the watcher reads the
	// counter; once the flood is over, the counter is checked against the entries.
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			if n := l.Len(); n > maxKeys {
				t.Errorf("%d buckets held during the flood, bound %d", n, maxKeys)
				return
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	flood.Wait()
	close(done)
	watch.Wait()
	if n := l.entries(); n > maxKeys || n != l.Len() {
		t.Fatalf("%d buckets held, Len %d, bound %d", n, l.Len(), maxKeys)
	}
}

func TestLocalEvictsFullBucketsBeforeBusyOnes(t *testing.T) {
	clock := newFakeClock()
	l := NewLocal(LocalOptions{MaxKeys: 256, Now: clock.Now})
	r := rule("rate_limits[0]", 1, time.Second, 10)

	drain(t, l, r, "busy")
	for i := range 255 {
		allow(t, l, r, "once-"+strconv.Itoa(i))
	}
	// One second on, every "once" bucket is full again; "busy" has one of ten tokens.
	clock.Advance(time.Second)
	for i := range 100 {
		allow(t, l, r, "new-"+strconv.Itoa(i))
	}

	if !l.has(r, "busy") {
		t.Fatal("the busy bucket was evicted while full ones could go")
	}
	if d := allow(t, l, r, "busy"); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("busy key: got %+v, want its one refilled token, then empty", d)
	}
	if d := allow(t, l, r, "busy"); d.Allowed {
		t.Fatalf("busy key: got %+v, want refused: its state survived", d)
	}
}

func TestLocalEvictsNearestToFullWhenNoneIsFull(t *testing.T) {
	clock := newFakeClock()
	l := NewLocal(LocalOptions{MaxKeys: 256, Now: clock.Now})
	r := rule("rate_limits[0]", 1, time.Hour, 10) // nothing refills during the test
	for i := range 224 {
		for range 5 {
			allow(t, l, r, "drained-"+strconv.Itoa(i)) // five hours from full
		}
	}
	for i := range 32 {
		allow(t, l, r, "touched-"+strconv.Itoa(i)) // one hour from full
		clock.Advance(time.Millisecond)
	}
	allow(t, l, r, "one-more") // past the bound: an eighth must go

	for _, tc := range []struct {
		key  string
		kept bool
	}{
		{"touched-0", false}, {"touched-31", false},
		{"drained-0", true}, {"drained-223", true}, {"one-more", true},
	} {
		if got := l.has(r, tc.key); got != tc.kept {
			t.Errorf("%s held = %v, want %v", tc.key, got, tc.kept)
		}
	}
	if n := l.Len(); n != 256-256/8+1 {
		t.Errorf("%d buckets after making room, want %d", n, 256-256/8+1)
	}
	if d := allow(t, l, r, "drained-0"); d.Remaining != 4 {
		t.Errorf("a kept bucket lost its state: %+v", d)
	}
}

func TestLocalEvictedFullBucketAnswersAsAKeptOne(t *testing.T) {
	clock := newFakeClock()
	evicting := NewLocal(LocalOptions{MaxKeys: 256, Now: clock.Now})
	keeping := NewLocal(LocalOptions{MaxKeys: 1 << 20, Now: clock.Now})
	r := rule("rate_limits[0]", 2, time.Second, 5)

	for _, l := range []*Local{evicting, keeping} {
		drain(t, l, r, "victim")
	}
	clock.Advance(3 * time.Second) // full again
	for i := range 1000 {
		allow(t, evicting, r, "flood-"+strconv.Itoa(i))
	}
	if evicting.has(r, "victim") {
		t.Fatal("the full bucket survived a flood 4x the bound; the test proves nothing")
	}

	// The same requests at the same times get the same answers from both.
	for i, step := range []time.Duration{0, 0, 0, 0, 0, 0, 100 * time.Millisecond, 400 * time.Millisecond, 0, 0, time.Second, 0} {
		clock.Advance(step)
		got, want := allow(t, evicting, r, "victim"), allow(t, keeping, r, "victim")
		if got != want {
			t.Fatalf("request %d: evicted bucket answered %+v, kept one %+v", i, got, want)
		}
	}
}

func TestLocalReloadedRuleKeepsItsBuckets(t *testing.T) {
	tests := []struct {
		name          string
		reloaded      *Rule
		wantRemaining int // after the first request under the reloaded rule
	}{
		{"same numbers: the bucket carries on", rule("rate_limits[0]", 60, time.Hour, 5), 1},
		{"larger burst: the tokens carry over", rule("rate_limits[0]", 60, time.Hour, 10), 1},
		{"smaller burst: the tokens are capped", rule("rate_limits[0]", 60, time.Hour, 1), 0},
		{"other name: a new bucket", rule("rate_limits[1]", 60, time.Hour, 5), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := NewLocal(LocalOptions{Now: clock.Now})
			old := rule("rate_limits[0]", 60, time.Hour, 5)
			for range 3 {
				allow(t, l, old, "client-a") // two tokens left
			}
			d := allow(t, l, tt.reloaded, "client-a")
			if !d.Allowed || d.Remaining != tt.wantRemaining {
				t.Fatalf("got %+v, want allowed with remaining %d", d, tt.wantRemaining)
			}
		})
	}
}

func TestLocalDecisionDoesNotAllocate(t *testing.T) {
	l := NewLocal(LocalOptions{})
	r := rule("rate_limits[0]", 1_000_000, time.Second, 1_000_000)
	ctx := context.Background()
	allow(t, l, r, "client-a")
	if n := testing.AllocsPerRun(1000, func() { _, _ = l.Allow(ctx, r, "client-a") }); n != 0 {
		t.Errorf("%v allocations per decision, want 0", n)
	}
}

func TestSecondsRoundsUpToTheMicrosecondWithoutFloatNoise(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want time.Duration
	}{
		{"one interval of 10/m", 1 / (10.0 / 60), 6 * time.Second},
		{"one interval of 7/h", 1 / (7.0 / 3600), 514285715 * time.Microsecond},
		{"one interval of 3/s", 1 / 3.0, 333334 * time.Microsecond},
		{"one interval of 20/s", 1 / 20.0, 50 * time.Millisecond},
		{"burst of 40 at 20/s", 40 / 20.0, 2 * time.Second},
		{"a part of a microsecond rounds up", 1.5e-6, 2 * time.Microsecond},
		{"zero", 0, 0},
		{"below zero", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seconds(tt.in); got != tt.want {
				t.Fatalf("seconds(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

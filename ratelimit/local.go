package ratelimit

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const (
	defaultMaxKeys = 100_000
	// sweepEvery is how often inserting a key also drops the buckets that have
	// refilled, so that memory taken by a past flood of keys is given back.
	sweepEvery = time.Minute
)

// LocalOptions configures a Local limiter.
type LocalOptions struct {
	// MaxKeys bounds the buckets held, over all rules; 0 means 100,000. Past it, the
	// buckets that have refilled go first, then those nearest to full.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Local is a Limiter that keeps a token bucket (golang.org/x/time/rate) per rule and
// key in this process. It is safe for concurrent use, and its memory is bounded by
// MaxKeys whatever the number of distinct keys.
//
// A decision takes no lock of Local's own: the bucket is found in a sync.Map, whose
// reads write nothing shared, and decided under the rate.Limiter's lock. Only a new key
// may wait, and only while the limiter is full and makes room.
type Local struct {
	now     func() time.Time
	max     int64
	buckets sync.Map     // bucketKey -> *bucket
	count   atomic.Int64 // buckets held plus slots taken by callers adding one; <= max

	evict     sync.Mutex // one evictor at a time; guards the fields below
	lastSweep time.Time
	scratch   []time.Duration // reused, so making room does not allocate
}

var _ Limiter = (*Local)(nil)

// bucketKey identifies a bucket by the rule's Name, not its pointer, so the buckets
// of a rule that a reload rebuilt unchanged are found again. As a struct of two
// strings it needs no concatenation, so a lookup does not allocate.
type bucketKey struct{ rule, key string }

type bucket struct {
	lim *rate.Limiter
	// rule is the rule the limiter's rate and burst were last set from. A pointer
	// compare on each decision notices a reload; the evictor reads it too.
	rule atomic.Pointer[Rule]
	// fullIn is makeRoom's note of how far from full the bucket was; Local.evict
	// guards it, and decisions never touch it.
	fullIn time.Duration
}

// NewLocal returns a Local limiter for o.
func NewLocal(o LocalOptions) *Local {
	if o.MaxKeys <= 0 {
		o.MaxKeys = defaultMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Local{now: o.Now, max: int64(o.MaxKeys), lastSweep: o.Now()}
}

// Allow takes one token from the bucket of rule and key. It never returns an error for
// a valid rule.
func (l *Local) Allow(_ context.Context, rule *Rule, key string) (Decision, error) {
	if err := rule.check(); err != nil {
		return Decision{}, err
	}
	now := l.now()
	k := bucketKey{rule.Name, key}
	var b *bucket
	if v, ok := l.buckets.Load(k); ok {
		b = v.(*bucket)
	} else {
		b = l.add(k, rule, now)
	}
	if b.rule.Load() != rule {
		b.setRule(rule, now)
	}

	ok := b.lim.AllowN(now, 1)
	// Reading the tokens back is the same arithmetic a reservation's delay would do,
	// without the reservation (which escapes to the heap) and its cancellation.
	tokens := max(b.lim.TokensAt(now), 0)
	d := Decision{
		Allowed:   ok,
		Limit:     rule.limit(),
		Remaining: int(tokens),
		Reset:     seconds((float64(rule.burst()) - tokens) / rule.Limit),
	}
	if !ok {
		d.RetryAfter = seconds((1 - tokens) / rule.Limit)
	}
	return d, nil
}

// setRule brings the bucket to rule's numbers. A reload rebuilds every Rule, so each
// bucket comes here once after one; with the same numbers nothing changes, with new
// ones the tokens are kept and the new rate and burst apply from now on.
func (b *bucket) setRule(rule *Rule, now time.Time) {
	if old := b.rule.Swap(rule); old == nil || old.Limit != rule.Limit || old.burst() != rule.burst() {
		b.lim.SetLimitAt(now, rate.Limit(rule.Limit))
		b.lim.SetBurstAt(now, rule.burst())
	}
}

// seconds converts s to a Duration in whole microseconds, as the Redis limiter's are,
// rounding up so that waiting it is enough. A nanosecond's worth of float noise is
// dropped first: 60/10 computed as 6.000000000000001 must read 6s, not 6.000001s,
// which a Retry-After in whole seconds would turn into 7.
func seconds(s float64) time.Duration {
	us := math.Ceil(s*1e6 - 1e-3)
	if !(us > 0) {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// add inserts a full bucket for k, first making room if the limiter is at MaxKeys, and
// returns the bucket now held for k (another caller's, if it was quicker).
func (l *Local) add(k bucketKey, rule *Rule, now time.Time) *bucket {
	// Taking a slot before storing keeps what is held within max however many
	// callers add at once.
	for {
		n := l.count.Load()
		if n >= l.max {
			l.makeRoom(now)
			continue
		}
		if l.count.CompareAndSwap(n, n+1) {
			break
		}
	}
	if l.evict.TryLock() {
		if now.Sub(l.lastSweep) >= sweepEvery {
			l.dropFull(now)
		}
		l.evict.Unlock()
	}
	b := &bucket{lim: rate.NewLimiter(rate.Limit(rule.Limit), rule.burst())}
	b.rule.Store(rule)
	if v, loaded := l.buckets.LoadOrStore(k, b); loaded {
		l.count.Add(-1)
		return v.(*bucket)
	}
	return b
}

// timeToFull returns how long until b, left alone, holds its whole burst again. From
// then on dropping it changes nothing: a new bucket for the key starts full.
func (b *bucket) timeToFull(now time.Time) time.Duration {
	r := b.rule.Load()
	return seconds((float64(r.burst()) - b.lim.TokensAt(now)) / r.Limit)
}

// remove drops k's bucket b unless it was replaced meanwhile.
//
// A request that found b just before is then decided by b, which no one sees again:
// its token is not counted against the key. That is one request at most, on a bucket
// that was full (so had been left alone for a while) or the nearest to full of all.
func (l *Local) remove(k, b any) {
	if l.buckets.CompareAndDelete(k, b) {
		l.count.Add(-1)
	}
}

// dropFull removes the buckets that have refilled; l.evict is held. A full bucket
// answers exactly as the new one that replaces it would, so this costs no accuracy.
func (l *Local) dropFull(now time.Time) {
	l.buckets.Range(func(k, v any) bool {
		if v.(*bucket).timeToFull(now) == 0 {
			l.remove(k, v)
		}
		return true
	})
	l.lastSweep = now
}

// makeRoom brings the limiter down to seven eighths of MaxKeys: full buckets first,
// then those nearest to full. Freeing an eighth at a time keeps the cost of a flood of
// new keys at a few steps per key rather than a scan per key.
func (l *Local) makeRoom(now time.Time) {
	l.evict.Lock()
	defer l.evict.Unlock()
	if l.count.Load() < l.max {
		return // another caller made room while this one waited
	}
	// One pass drops the full buckets and notes how far the others are from full,
	// in case that was not enough.
	l.scratch = l.scratch[:0]
	l.buckets.Range(func(k, v any) bool {
		b := v.(*bucket)
		if b.fullIn = b.timeToFull(now); b.fullIn == 0 {
			l.remove(k, v)
		} else {
			l.scratch = append(l.scratch, b.fullIn)
		}
		return true
	})
	l.lastSweep = now
	low := min(l.max-l.max/8, l.max-1)
	excess := min(l.count.Load()-low, int64(len(l.scratch)))
	if excess <= 0 {
		return
	}
	// Forgetting a bucket that is not full gives its key the missing tokens back. The
	// nearest to full lose the least; under a flood they are mostly the flood's own
	// one-request keys, while a client that has spent its burst keeps its bucket.
	// (A bucket added since the first pass has fullIn 0 and is skipped: it was not
	// counted in excess.)
	slices.Sort(l.scratch)
	cut := l.scratch[excess-1]
	l.buckets.Range(func(k, v any) bool {
		if d := v.(*bucket).fullIn; d != 0 && d <= cut {
			l.remove(k, v)
			excess--
		}
		return excess > 0
	})
}

// Len returns the number of buckets held, for metrics and tests.
func (l *Local) Len() int { return int(l.count.Load()) }

var _ Decider = (*Local)(nil)

// Decide decides steps one by one, in memory: Local has no round trips to save. It
// has no store for once steps, which come back with an error.
func (l *Local) Decide(ctx context.Context, steps []Step, out []Outcome) {
	stepwise{l: l}.Decide(ctx, steps, out)
}

// Known is never anything: Local decides in memory, at no cost to ask.
func (l *Local) Known(Step) (Decision, bool) { return Decision{}, false }

package wechat

import (
	"container/heap"
	"crypto/sha256"
	"math/bits"
	"slices"
	"sync"
	"time"
)

const (
	// maxShards spreads lock contention over the sessions; small tables use fewer
	// shards (minPerShard entries each at least) so their bound stays exact.
	maxShards   = 32
	minPerShard = 1024
)

// table is the sessions this process holds, keyed by token hash: all of them
// without Redis, the copies of Redis sessions in use this last second with it. It
// never holds more than its bound: when a shard is full, the entry that expires
// soonest goes (an expired one first), which with sliding expiry is also the one
// used least recently. Lookups take a shard's read lock only.
//
// A shard is picked by the owner a token names (parseToken), not by its hash, so
// that all of one user's sessions sit in one shard, under one lock. With perOwner
// set (the memory store), that is what bounds them per user exactly and cheaply:
// a login past the bound ends its user's oldest session, and a login that finds
// its shard full ends its user's oldest before anyone else's. Without that, the
// bound on the table would be the only one, and a single user logging in again
// and again (wx.login hands out a fresh code each time) would push everyone
// else's sessions out.
type table struct {
	shards   []shard
	mask     uint8
	perShard int
	// perOwner bounds one owner's entries; 0 for copies of Redis sessions, whose
	// bound Redis keeps.
	perOwner int
}

type shard struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*entry
	order   byExpiry // min-heap on expires, for eviction
	// owners lists each owner's entries, oldest first; nil without perOwner.
	owners map[uint64][]*entry
	// gen moves on every removal, so that a fill that read Redis before a logout
	// does not put back what the logout removed (see putIfGen).
	gen uint64
	_   [32]byte // keeps neighbouring shards' locks off one cache line
}

// entry is one session held. expires and deadline are Unix nanoseconds.
type entry struct {
	hash  [sha256.Size]byte
	owner uint64
	sess  Session
	// expires is when the entry stops being served: the session's expiry, or,
	// for a copy of a Redis session, the end of the time it is trusted.
	expires int64
	// deadline is the session's hard end (StoreOptions.MaxAge), which sliding
	// never passes.
	deadline int64
	index    int // in shard.order
}

func newTable(maxEntries, perOwner int) *table {
	maxEntries = max(maxEntries, 1)
	n := 1
	if want := maxEntries / minPerShard; want > 1 {
		n = min(maxShards, 1<<(bits.Len(uint(want))-1)) // a power of two, so a mask picks the shard
	}
	t := &table{shards: make([]shard, n), mask: uint8(n - 1), perShard: maxEntries / n, perOwner: max(perOwner, 0)}
	for i := range t.shards {
		t.shards[i].entries = make(map[[sha256.Size]byte]*entry)
		if t.perOwner > 0 {
			t.shards[i].owners = make(map[uint64][]*entry)
		}
	}
	return t
}

func (t *table) shard(owner uint64) *shard { return &t.shards[uint8(owner)&t.mask] }

// get returns the session held under id, if it has not expired by now. With slide
// > 0 (the memory store), a session less than slide-slide/slideStep from its
// expiry is given slide more, up to its deadline: most lookups only read.
func (t *table) get(id *tokenID, now int64, slide time.Duration) (Session, bool) {
	sh := t.shard(id.owner)
	sh.mu.RLock()
	e := sh.entries[id.hash]
	if e == nil || now >= e.expires {
		sh.mu.RUnlock()
		return Session{}, false
	}
	s := e.sess
	due := slide > 0 && e.expires < e.deadline && e.expires-now < int64(slide-slide/slideStep)
	sh.mu.RUnlock()
	if due {
		if longer, ok := t.extend(sh, &id.hash, now, slide); ok {
			s = longer
		}
	}
	return s, true
}

// extend gives the session under h slide more from now, up to its deadline; ok is
// false when it was removed meanwhile (the lookup that saw it live still stands).
func (t *table) extend(sh *shard, h *[sha256.Size]byte, now int64, slide time.Duration) (Session, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[*h]
	if e == nil {
		return Session{}, false
	}
	if exp := min(now+int64(slide), e.deadline); exp > e.expires {
		e.expires = exp
		e.sess.Expires = time.Unix(0, exp)
		heap.Fix(&sh.order, e.index)
	}
	return e.sess, true
}

// put holds e, replacing what was held under its hash.
func (t *table) put(e *entry, now int64) {
	sh := t.shard(e.owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t.insert(sh, e, now)
}

// generation is what putIfGen compares: read it before fetching what to put.
func (t *table) generation(id *tokenID) uint64 {
	sh := t.shard(id.owner)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.gen
}

// putIfGen holds e unless something was removed from its shard since gen was read:
// that may have been e's session, logged out while e was being fetched.
func (t *table) putIfGen(e *entry, now int64, gen uint64) bool {
	sh := t.shard(e.owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen {
		return false
	}
	t.insert(sh, e, now)
	return true
}

// remove drops what is held under id.
func (t *table) remove(id *tokenID) {
	sh := t.shard(id.owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	if e := sh.entries[id.hash]; e != nil {
		sh.drop(e)
	}
}

// len is how many entries are held, expired ones not yet dropped included.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

// insert adds e to sh, first dropping what has expired, then, with perOwner, the
// oldest entry of e's owner when she is at her bound or the shard is full and she
// has one, and then, while the shard is still full, what expires soonest. sh.mu is
// held.
func (t *table) insert(sh *shard, e *entry, now int64) {
	if old := sh.entries[e.hash]; old != nil {
		sh.drop(old)
	}
	for len(sh.order) > 0 && sh.order[0].expires <= now {
		sh.drop(sh.order[0])
	}
	if t.perOwner > 0 {
		// Her own first: whoever logs in again and again pays with her own
		// sessions, not with someone else's.
		if mine := sh.owners[e.owner]; len(mine) >= t.perOwner || (len(mine) > 0 && len(sh.order) >= t.perShard) {
			sh.drop(mine[0])
		}
	}
	for len(sh.order) > 0 && len(sh.order) >= t.perShard {
		sh.drop(sh.order[0])
	}
	sh.entries[e.hash] = e
	heap.Push(&sh.order, e)
	if sh.owners != nil {
		sh.owners[e.owner] = append(sh.owners[e.owner], e)
	}
}

// drop removes e, which sh holds. sh.mu is held.
func (sh *shard) drop(e *entry) {
	heap.Remove(&sh.order, e.index)
	delete(sh.entries, e.hash)
	if sh.owners == nil {
		return
	}
	mine := sh.owners[e.owner]
	if i := slices.Index(mine, e); i >= 0 {
		mine = slices.Delete(mine, i, i+1)
	}
	if len(mine) == 0 {
		delete(sh.owners, e.owner)
	} else {
		sh.owners[e.owner] = mine
	}
}

// byExpiry is a container/heap of entries, soonest expiry first.
type byExpiry []*entry

func (q byExpiry) Len() int           { return len(q) }
func (q byExpiry) Less(i, j int) bool { return q[i].expires < q[j].expires }
func (q byExpiry) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *byExpiry) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *byExpiry) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

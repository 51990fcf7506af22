package state

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"
)

const (
	defaultMaxEntries = 1_000_000

	// maxShards spreads lock contention: a nonce check per signed request takes a
	// write lock, and one mutex for the whole store would serialise every request.
	// Small stores use fewer shards (minPerShard entries each at least) so that their
	// bound stays close to MaxEntries; see NewMemory.
	maxShards   = 32
	minPerShard = 1024

	// Every sweepEvery writes to a shard, sweepScan of its entries are checked for
	// expiry. Go map iteration starts at a random place, so successive scans sample
	// the whole shard. Checking more entries than are written (here 4 per write) is
	// what bounds the garbage: expired entries settle at about a third of the live
	// ones, where fewer checks than writes would let them grow until the store filled.
	sweepEvery = 16
	sweepScan  = 64
)

// errFull is what a full Memory answers for a new key. It does not evict live keys:
// a nonce store that quietly forgot would let a replay through.
var errFull = errors.New("state: memory store full")

// errOwnerFull is what Memory answers for a new key of an owner that holds its share
// (MemoryOptions.MaxPerOwner): that owner is refused, and no one else.
var errOwnerFull = errors.New("state: memory store: this owner's share is full")

// MemoryOptions configures a Memory store.
type MemoryOptions struct {
	// MaxEntries bounds the number of keys held; 0 means 1,000,000. A large store is
	// split into shards holding an equal share each, and reports full when a key's
	// shard is, which with hashed keys is within a few percent of MaxEntries.
	MaxEntries int
	// MaxPerOwner bounds the keys one owner may hold, an owner being the part of a
	// key before its last ':'. auth writes "nonce:{<client>}:<nonce>" and
	// "daojia-sign:{<client, or daojia for callbacks>}:<sign>", so every client, and
	// 58到家's callbacks, is an owner with a share of its own: one partner sending
	// nonces as fast as it can fills its share and is refused (errOwnerFull, which
	// auth answers 503 state_unavailable) while everyone else goes on. Keys without
	// ':' have no owner and share only MaxEntries. 0 means a quarter of MaxEntries
	// (250,000 of the default million: a partner's nonces for 200 signed requests a
	// second over the default 20-minute nonce_ttl), so it takes four owners at their
	// shares to fill the store; negative means no shares. The share is counted for
	// the whole store, exactly; an owner's expired keys count until a sweep or a
	// reclaim of their shard removes them.
	MaxPerOwner int
	// Now is the clock that decides expiry; nil means time.Now. Tests inject one so
	// that expiry needs no sleeping.
	Now func() time.Time
}

// Memory is the in-process state store for a single instance: bounded, expiring, and
// safe for concurrent use. It needs no Close or background goroutine: expired entries
// are removed a few at a time as keys are written, and all at once when it fills up.
type Memory struct {
	shards   []memShard
	mask     uint64
	perShard int
	// ownerShare is the keys one owner may hold in the whole store (0: no shares),
	// counted in owners, which is split by the owner's hash, not the key's: one
	// owner's count is one number, however its keys scatter over the shards.
	ownerShare int
	owners     [ownerSlots]ownerCounts
	seed       maphash.Seed
	now        func() time.Time
}

// ownerSlots splits the owner counts, so owners seldom wait for one another.
const ownerSlots = 16

// ownerCounts is one slot of owner counts. Its mu is taken inside a shard's mu,
// never the other way round.
type ownerCounts struct {
	mu sync.Mutex
	n  map[string]int
}

type memShard struct {
	mu     sync.RWMutex
	m      map[string]memEntry
	parent *Memory // for the owner counts
	writes uint32
	// nextReclaim is the earliest expiry (Unix ns) among the entries the last full
	// sweep left behind, lowered as shorter-lived keys arrive: until then another
	// full sweep cannot free anything, so a shard kept full of live keys answers
	// errFull at once instead of scanning all its entries on every write.
	nextReclaim int64
	_           [64]byte // keeps neighbouring shards' locks off one cache line
}

type memEntry struct {
	value   string
	expires int64 // Unix ns; 0 means never
}

func (e memEntry) live(now int64) bool { return e.expires == 0 || now < e.expires }

// NewMemory returns an empty Memory store.
func NewMemory(o MemoryOptions) *Memory {
	max := o.MaxEntries
	if max <= 0 {
		max = defaultMaxEntries
	}
	n := 1
	for n < maxShards && max/(n*2) >= minPerShard {
		n *= 2
	}
	m := &Memory{
		shards:   make([]memShard, n),
		mask:     uint64(n - 1),
		perShard: max / n,
		seed:     maphash.MakeSeed(),
		now:      o.Now,
	}
	switch share := o.MaxPerOwner; {
	case share == 0:
		if share = max / 4; share < 1 {
			share = 1
		}
		fallthrough
	case share > 0:
		m.ownerShare = share
	}
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		m.shards[i].m = make(map[string]memEntry)
		m.shards[i].parent = m
	}
	for i := range m.owners {
		m.owners[i].n = make(map[string]int)
	}
	return m
}

// ownerOf returns the owner of key: the part before its last ':', if it has one.
func ownerOf(key string) (string, bool) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return "", false
	}
	return key[:i], true
}

// SetNX stores value under key with the given ttl if key is absent or expired, and
// reports whether it did.
func (m *Memory) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return m.put(key, value, ttl, true)
}

// Set stores value under key with the given ttl, replacing any value and ttl it had.
func (m *Memory) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := m.put(key, value, ttl, false)
	return err
}

func (m *Memory) put(key, value string, ttl time.Duration, onlyIfAbsent bool) (bool, error) {
	now := m.now().UnixNano()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, exists := s.m[key]
	if onlyIfAbsent && exists && e.live(now) {
		return false, nil
	}
	// An existing entry, expired or not, is overwritten in place, under the same
	// owner: only a new key needs room.
	if !exists {
		if err := m.makeRoom(s, key, now); err != nil {
			return false, err
		}
	}
	exp := expiresAt(now, ttl)
	s.m[key] = memEntry{value: value, expires: exp}
	if exp != 0 && exp < s.nextReclaim {
		s.nextReclaim = exp
	}
	if s.writes++; s.writes%sweepEvery == 0 {
		s.sweep(now)
	}
	return true, nil
}

// makeRoom checks that s has room for the new key, in the shard and in its owner's
// share, reclaiming the shard's expired entries once if either is full, and counts
// the key for its owner; s.mu must be held.
func (m *Memory) makeRoom(s *memShard, key string, now int64) error {
	owner, owned := ownerOf(key)
	owned = owned && m.ownerShare > 0
	if len(s.m) >= m.perShard || owned && m.ownerCount(owner, 0) >= m.ownerShare {
		s.reclaim(now)
		switch {
		case len(s.m) >= m.perShard:
			return errFull
		case owned && m.ownerCount(owner, 0) >= m.ownerShare:
			return fmt.Errorf("%w: %s holds its share of keys", errOwnerFull, owner)
		}
	}
	if owned {
		m.ownerCount(owner, 1)
	}
	return nil
}

// ownerCount adds delta to owner's count and returns it; an owner whose count
// reaches 0 is forgotten, so the map holds only owners holding keys.
func (m *Memory) ownerCount(owner string, delta int) int {
	slot := &m.owners[maphash.String(m.seed, owner)%ownerSlots]
	slot.mu.Lock()
	defer slot.mu.Unlock()
	n := slot.n[owner] + delta
	switch {
	case delta == 0:
	case n <= 0:
		delete(slot.n, owner)
	case delta > 0 && n == delta:
		slot.n[strings.Clone(owner)] = n // the key's bytes are not kept alive by its count
	default:
		slot.n[owner] = n
	}
	return n
}

// Get returns the value stored under key; ok is false when the key is absent or expired.
func (m *Memory) Get(ctx context.Context, key string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	e, ok := m.lookup(key)
	if !ok {
		return "", false, nil
	}
	return e.value, true, nil
}

// Del removes key; removing an absent key is not an error.
func (m *Memory) Del(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := m.shard(key)
	s.mu.Lock()
	if _, ok := s.m[key]; ok {
		s.remove(key)
	}
	s.mu.Unlock()
	return nil
}

// CompareAndDelete removes key only while it still holds value, and reports whether it
// did: a lock's owner releases it without freeing a lock that expired and was taken by
// someone else meanwhile.
func (m *Memory) CompareAndDelete(ctx context.Context, key, value string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := m.now().UnixNano()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || !e.live(now) || e.value != value {
		return false, nil
	}
	s.remove(key)
	return true, nil
}

// TTL returns how long key has left to live; ok is false when the key is absent or
// expired, and a key without expiry reports a negative duration.
func (m *Memory) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	now := m.now().UnixNano()
	e, ok := m.lookupAt(key, now)
	switch {
	case !ok:
		return 0, false, nil
	case e.expires == 0:
		return -1, true, nil
	default:
		return time.Duration(e.expires - now), true, nil
	}
}

// Ping always succeeds: process memory is always reachable.
func (m *Memory) Ping(ctx context.Context) error { return nil }

// Close does nothing; Memory holds no resources beyond its maps.
func (m *Memory) Close() error { return nil }

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)&m.mask]
}

func (m *Memory) lookup(key string) (memEntry, bool) {
	return m.lookupAt(key, m.now().UnixNano())
}

// lookupAt returns key's entry if it is live at now. An expired entry is left for a
// sweep: removing it here would need the write lock on every read.
func (m *Memory) lookupAt(key string, now int64) (memEntry, bool) {
	s := m.shard(key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok || !e.live(now) {
		return memEntry{}, false
	}
	return e, true
}

// remove deletes key, which s holds, and uncounts it from its owner; s.mu must be
// held.
func (s *memShard) remove(key string) {
	delete(s.m, key)
	if owner, ok := ownerOf(key); ok && s.parent.ownerShare > 0 {
		s.parent.ownerCount(owner, -1)
	}
}

// ownersHeld returns the number of owners counted.
func (m *Memory) ownersHeld() int {
	n := 0
	for i := range m.owners {
		o := &m.owners[i]
		o.mu.Lock()
		n += len(o.n)
		o.mu.Unlock()
	}
	return n
}

// len returns the number of entries held, including expired ones not yet swept.
func (m *Memory) len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// sweep removes expired entries among a bounded sample of s; s.mu must be held.
func (s *memShard) sweep(now int64) {
	n := 0
	for k, e := range s.m {
		if n == sweepScan {
			return
		}
		n++
		if !e.live(now) {
			s.remove(k)
		}
	}
}

// reclaim removes every expired entry of a shard that is full, or whose owner is at
// its share; s.mu must be held. It costs a scan of the shard, hence nextReclaim:
// until then, nothing could be freed.
func (s *memShard) reclaim(now int64) {
	if now < s.nextReclaim {
		return
	}
	next := int64(math.MaxInt64)
	for k, e := range s.m {
		switch {
		case !e.live(now):
			s.remove(k)
		case e.expires != 0 && e.expires < next:
			next = e.expires
		}
	}
	s.nextReclaim = next
}

func expiresAt(now int64, ttl time.Duration) int64 {
	exp := now + int64(ttl)
	if ttl <= 0 || exp < now { // an overflowing ttl is as good as forever
		return 0
	}
	return exp
}

package cache

import (
	"strings"
	"sync"
	"time"
)

// memoryShards splits the in-process tier so concurrent hits on different keys do
// not queue on one mutex.
const memoryShards = 16

// memory is the in-process tier: a least-recently-used list of entries within a
// byte budget, in shards by key.
type memory struct {
	shards [memoryShards]shard
}

type shard struct {
	mu    sync.Mutex
	items map[Key]*item
	// head is the most recently used item, tail the least; the list is intrusive so
	// a hit moves pointers and allocates nothing.
	head, tail *item
	bytes, max int64
}

// item is one entry in a shard, with what purges match on.
type item struct {
	key         Key
	entry       *Entry
	route, path string
	size        int64
	prev, next  *item
}

func newMemory(budget int64) *memory {
	m := &memory{}
	for i := range m.shards {
		m.shards[i] = shard{items: make(map[Key]*item), max: budget / memoryShards}
	}
	return m
}

func (m *memory) shard(k Key) *shard { return &m.shards[k[0]%memoryShards] }

// get returns the entry under k while it can still be served in some way (fresh,
// or within a stale window), or nil.
func (m *memory) get(k Key, now time.Time) *Entry {
	s := m.shard(k)
	s.mu.Lock()
	it := s.items[k]
	if it == nil {
		s.mu.Unlock()
		return nil
	}
	e := it.entry
	if !e.Fresh.After(now) && !e.StaleUntil.After(now) && !e.ErrorUntil.After(now) {
		s.remove(it)
		s.mu.Unlock()
		return nil
	}
	s.touch(it)
	s.mu.Unlock()
	return e
}

// put stores e under k, evicting the least recently used entries of its shard to
// stay within budget. An entry larger than a shard's budget is not kept.
func (m *memory) put(k Key, route, path string, e *Entry) {
	size := e.size()
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.items[k]; old != nil {
		s.remove(old)
	}
	if size > s.max {
		return
	}
	for s.bytes+size > s.max && s.tail != nil {
		s.remove(s.tail)
	}
	it := &item{key: k, entry: e, route: route, path: path, size: size}
	s.items[k] = it
	s.bytes += size
	s.pushFront(it)
}

// purge removes the entries of the given routes (every route when routes is
// empty) whose path starts with prefix, and reports how many.
func (m *memory) purge(routes []string, prefix string) int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for _, it := range s.items {
			if matches(it.route, it.path, routes, prefix) {
				s.remove(it)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// matches reports whether an entry of route at path is one a purge of routes (all
// when empty) and prefix names.
func matches(route, path string, routes []string, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	if len(routes) == 0 {
		return true
	}
	for _, r := range routes {
		if r == route {
			return true
		}
	}
	return false
}

func (m *memory) flush() {
	m.purge(nil, "")
}

// len reports how many entries the tier holds.
func (m *memory) len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

func (s *shard) pushFront(it *item) {
	it.prev, it.next = nil, s.head
	if s.head != nil {
		s.head.prev = it
	}
	s.head = it
	if s.tail == nil {
		s.tail = it
	}
}

func (s *shard) unlink(it *item) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		s.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		s.tail = it.prev
	}
	it.prev, it.next = nil, nil
}

func (s *shard) touch(it *item) {
	if s.head == it {
		return
	}
	s.unlink(it)
	s.pushFront(it)
}

func (s *shard) remove(it *item) {
	s.unlink(it)
	delete(s.items, it.key)
	s.bytes -= it.size
}

package config

import (
	"fmt"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Cache holds the gateway-wide response cache settings. Routes opt in with their
// own cache: section (RouteCache).
type Cache struct {
	// MemoryBytes bounds the in-process tier in front of Redis (LRU); 0 turns it
	// off. It is split in 16 parts, each of which must hold the largest entry.
	MemoryBytes int64 `yaml:"memory_bytes"`
	// MaxEntryBytes is the largest answer body stored.
	MaxEntryBytes int64 `yaml:"max_entry_bytes"`
	// LockTimeout is how long one instance's fill of a key may hold the fleet's
	// lock on it, and so how long concurrent misses wait for it before going to
	// the upstream themselves.
	LockTimeout time.Duration `yaml:"lock_timeout"`
}

// RouteCache is a route's cache: section. A route without one is not cached.
type RouteCache struct {
	TTL                  time.Duration `yaml:"ttl"`                    // how long an answer is fresh
	StaleWhileRevalidate time.Duration `yaml:"stale_while_revalidate"` // then served stale while one caller refreshes it
	StaleIfError         time.Duration `yaml:"stale_if_error"`         // then served stale when the upstream fails
	Scope                string        `yaml:"scope"`                  // client (each client its own entries) | all
	Vary                 []string      `yaml:"vary"`                   // request headers the answers vary by

	// Enabled is whether the route has a cache: section.
	Enabled bool `yaml:"-"`
}

// maxStale bounds stale_while_revalidate and stale_if_error: an answer older than a
// day is not one a caller expects from a cache that was told a ttl.
const maxStale = 24 * time.Hour

// cacheDefaults fills the cache section and each route's cache: section.
func cacheDefaults(c *Config, def func(string, func()), set map[string]int) {
	cc := &c.Cache
	def("cache.memory_bytes", func() { cc.MemoryBytes = 64 << 20 })
	def("cache.max_entry_bytes", func() { cc.MaxEntryBytes = 1 << 20 })
	def("cache.lock_timeout", func() { cc.LockTimeout = 10 * time.Second })
	for i := range c.Routes {
		rc := &c.Routes[i].Cache
		p := fmt.Sprintf("routes[%d].cache", i)
		if _, ok := set[p]; !ok {
			continue
		}
		rc.Enabled = true
		def(p+".scope", func() { rc.Scope = "client" })
	}
}

// cache checks the cache section and every route's cache: section.
func (v *validator) cache(c *Config) {
	cc := &c.Cache
	notNegative(v, "cache.memory_bytes", cc.MemoryBytes)
	positive(v, "cache.max_entry_bytes", cc.MaxEntryBytes)
	positive(v, "cache.lock_timeout", cc.LockTimeout)
	if cc.MemoryBytes > 0 && cc.MaxEntryBytes > 0 && cc.MemoryBytes < 16*cc.MaxEntryBytes {
		v.addf("cache.memory_bytes", "must be 0 (no in-process tier) or at least 16 × max_entry_bytes (%d): the tier is kept in 16 parts, each of which must hold the largest entry", 16*cc.MaxEntryBytes)
	}
	cached := ""
	for i := range c.Routes {
		rt := &c.Routes[i]
		if !rt.Cache.Enabled {
			continue
		}
		p := fmt.Sprintf("routes[%d].cache", i)
		if cached == "" {
			cached = p
		}
		v.routeCache(rt, p)
	}
	if cached != "" && len(c.Redis.Addrs) == 0 && cc.MemoryBytes == 0 {
		v.addf("cache.memory_bytes", "is 0 and redis.addrs is empty: %s has nowhere to keep its answers", cached)
	}
}

func (v *validator) routeCache(rt *Route, p string) {
	rc := &rt.Cache
	switch {
	case rt.Daojia != "":
		v.addf(p, "a daojia: relay route answers POSTs with 58到家's answers, which are not cached")
	case rt.WebSocket:
		v.addf(p, "a websocket route hands its GETs over to tunnels, whose answers are not cached")
	case rt.Verify == "daojia-md5":
		v.addf(p, "a daojia-md5 route takes 58到家's callbacks, whose answers are not cached")
	case rt.Match != "" && !matchesGET(rt.Match):
		v.addf(p, "only GET (and HEAD) answers are cached; this route's match %q takes no GET", rt.Match)
	}
	if rc.TTL <= 0 {
		v.addf(p+".ttl", `required: how long an answer stays fresh, such as "60s"`)
	}
	for _, w := range []struct {
		key string
		d   time.Duration
	}{{"stale_while_revalidate", rc.StaleWhileRevalidate}, {"stale_if_error", rc.StaleIfError}} {
		switch {
		case w.d < 0:
			v.addf(p+"."+w.key, "may not be negative, got %v", w.d)
		case w.d > maxStale:
			v.addf(p+"."+w.key, "must be at most %v (a day), got %v", maxStale, w.d)
		}
	}
	v.oneOf(p+".scope", rc.Scope, "client", "all")
	for i, h := range rc.Vary {
		if !httpguts.ValidHeaderFieldName(h) {
			v.addf(fmt.Sprintf("%s.vary[%d]", p, i), "want a request header name such as Accept-Language, got %q", h)
		}
	}
}

package cache

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
)

// BenchmarkCacheHit is the lookup of an in-process hit: the key built from a
// request's parts (a two-parameter query in the wrong order, one vary header) and
// the entry found. It must allocate nothing.
func BenchmarkCacheHit(b *testing.B) {
	run := func(b *testing.B, c *Cache) {
		spec := &KeySpec{Route: "services", Salt: "0123456789abcdef", Vary: []string{"Accept-Language"}}
		h := http.Header{"Accept-Language": {"zh-CN"}}
		req := Request{Method: "GET", Path: "/api/services", RawQuery: "page=2&city=sh", Header: h, View: "full", Principal: "property-miniapp"}
		k, _ := spec.Key(&req)
		meta := Meta{Route: "services", Path: "/api/services"}
		p := Policy{TTL: time.Hour}
		res := c.Get(context.Background(), k, meta, p, true)
		if res.Outcome != Miss {
			b.Fatalf("first lookup: %v", res.Outcome)
		}
		res.Fill.Store(context.Background(), 200, http.Header{"Content-Type": {"application/json"}}, []byte(`{"services":[]}`), time.Hour, false)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := req
			for pb.Next() {
				k, err := spec.Key(&r)
				if err != nil {
					b.Fatal(err)
				}
				if res := c.Get(ctx, k, meta, p, true); res.Outcome != Hit {
					b.Fatalf("outcome %v", res.Outcome)
				}
			}
		})
	}
	b.Run("memory", func(b *testing.B) {
		run(b, New(Options{MemoryBytes: 1 << 20, MaxEntryBytes: 1 << 16}))
	})
	b.Run("redis-in-process-tier", func(b *testing.B) {
		rs := testredis.Start(b)
		c := newRedisCache(b, rs.Addr)
		run(b, c)
	})
}

// BenchmarkCacheRedisHit is a hit that Redis answers (no in-process tier): one
// script round trip and the entry decoded.
func BenchmarkCacheRedisHit(b *testing.B) {
	rs := testredis.Start(b)
	c := newRedisCache(b, rs.Addr)
	c.mem = nil
	k := testKey(b, "services", "/api/services")
	meta := Meta{Route: "services", Path: "/api/services"}
	p := Policy{TTL: time.Hour}
	res := c.Get(context.Background(), k, meta, p, true)
	res.Fill.Store(context.Background(), 200, http.Header{"Content-Type": {"application/json"}}, []byte(`{"services":[]}`), time.Hour, false)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := c.Get(context.Background(), k, meta, p, true); res.Outcome != Hit {
			b.Fatalf("outcome %v", res.Outcome)
		}
	}
}

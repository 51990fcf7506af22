package state

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
)

// benchStores are opened per benchmark: Memory on the real clock, as in production,
// and Redis on a real server.
func benchStores(b *testing.B) []struct {
	name string
	s    store
} {
	srv := testredis.Start(b)
	r, err := NewRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "bench:"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return []struct {
		name string
		s    store
	}{
		{"memory", NewMemory(MemoryOptions{})},
		{"redis", r},
	}
}

// benchTTL keeps the live set small whatever b.N is: the benchmarks measure a nonce
// check with sweeping in steady state, not a store filling up.
const benchTTL = 10 * time.Millisecond

// BenchmarkSetNX is one replay check of a fresh nonce, as every signed request makes.
func BenchmarkSetNX(b *testing.B) {
	for _, bs := range benchStores(b) {
		b.Run(bs.name, func(b *testing.B) {
			ctx := context.Background()
			buf := []byte("nonce-")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				key := string(strconv.AppendInt(buf[:6], int64(i), 10))
				if ok, err := bs.s.SetNX(ctx, key, "1", benchTTL); err != nil || !ok {
					b.Fatalf("SetNX(%s) = %v, %v", key, ok, err)
				}
			}
		})
	}
}

// BenchmarkSetNXParallel shows how the store scales with concurrent requests: shard
// locks for Memory, the connection pool for Redis.
func BenchmarkSetNXParallel(b *testing.B) {
	// Shared by every run of the sub-benchmarks (b.N is probed several times), so that
	// no two workers ever send the same nonce.
	var worker atomic.Int64
	for _, bs := range benchStores(b) {
		b.Run(bs.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := strconv.AppendInt([]byte("nonce-"), worker.Add(1), 10)
				buf = append(buf, '-')
				n := len(buf)
				for i := int64(0); pb.Next(); i++ {
					key := string(strconv.AppendInt(buf[:n], i, 10))
					if ok, err := bs.s.SetNX(ctx, key, "1", benchTTL); err != nil || !ok {
						b.Errorf("SetNX(%s) = %v, %v", key, ok, err)
						return
					}
				}
			})
		})
	}
}

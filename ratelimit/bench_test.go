package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
)

// benchKeys are resolved keys as the server passes them, built before the timer runs
// since building them is the caller's cost, not the limiter's.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	return keys
}

// benchRule is high enough never to refuse, as in the load test: what is measured is
// the cost of deciding, not of refusing.
var benchRule = &Rule{Name: "rate_limits[0]", Key: "ip", Limit: 1e9, Period: time.Second, Count: 1e9, Burst: 1e9}

// BenchmarkLocalLimiter measures a decision with one hot key (every goroutine on one
// bucket), a working set of clients that fits in cache, and one of MaxKeys that does
// not.
func BenchmarkLocalLimiter(b *testing.B) {
	for _, n := range []int{1, 1024, defaultMaxKeys} {
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			benchParallel(b, NewLocal(LocalOptions{}), benchKeys(n), 1)
		})
	}
}

// BenchmarkRedisLimiter measures a decision against a real redis-server on loopback:
// with one request in flight per CPU, ns/op is about a round trip over the CPUs; with
// many, as a busy gateway has, it is what the pool and server sustain.
func BenchmarkRedisLimiter(b *testing.B) {
	srv := testredis.Start(b)
	l := NewRedis(openStore(b, srv).Scripter(), RedisOptions{KeyPrefix: "bench:"})
	for _, perCPU := range []int{1, 16} {
		b.Run("inflight-per-cpu="+strconv.Itoa(perCPU), func(b *testing.B) {
			benchParallel(b, l, benchKeys(1024), perCPU)
		})
	}
}

// benchParallel decides on keys from perCPU goroutines per CPU, each starting at its
// own place in keys. The buckets exist before the timer starts: what is measured is
// the steady state of a known set of clients, not their first requests.
func benchParallel(b *testing.B, l Limiter, keys []string, perCPU int) {
	ctx := context.Background()
	for _, k := range keys {
		if _, err := l.Allow(ctx, benchRule, k); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(perCPU)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			d, err := l.Allow(ctx, benchRule, keys[i%len(keys)])
			if err != nil || !d.Allowed {
				b.Fatalf("got %+v, %v", d, err)
			}
		}
	})
}

package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
)

// rawClient is a plain client for looking at what the limiter left in Redis.
func rawClient(t *testing.T, srv *testredis.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisIsExactAcrossInstances(t *testing.T) {
	srv := testredis.Start(t)
	// Two stores, two connection pools: as two signgate instances would have.
	a := NewRedis(openStore(t, srv).Scripter(), RedisOptions{KeyPrefix: "signgate:"})
	b := NewRedis(openStore(t, srv).Scripter(), RedisOptions{KeyPrefix: "signgate:"})
	tests := []struct {
		name         string
		rule         *Rule
		requests     int
		wantAdmitted int
	}{
		{"burst 10 over two instances", rule("rate_limits[0]", 1, time.Minute, 10), 40, 10},
		{"burst 1 over two instances", rule("rate_limits[1]", 1, time.Hour, 1), 40, 1},
		{"burst 25 over two instances", rule("rate_limits[2]", 10, time.Minute, 25), 100, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range 5 {
				key := "client-" + strconv.Itoa(round)
				if got := admitConcurrently(t, []Limiter{a, b}, tt.rule, key, tt.requests); got != tt.wantAdmitted {
					t.Fatalf("round %d: admitted %d of %d, want %d", round, got, tt.requests, tt.wantAdmitted)
				}
			}
		})
	}
}

func TestRedisKeysExpireWhenTheBucketIsFull(t *testing.T) {
	srv := testredis.Start(t)
	raw := rawClient(t, srv)
	l := NewRedis(openStore(t, srv).Scripter(), RedisOptions{KeyPrefix: "signgate:"})
	r := rule("rate_limits[3]", 60, time.Hour, 10) // one a minute
	ctx := context.Background()

	tests := []struct {
		requests int
		wantTTL  time.Duration // the time until the bucket is full again
	}{
		{1, time.Minute},
		{2, 3 * time.Minute}, // three spent in all
	}
	for _, tt := range tests {
		for range tt.requests {
			allow(t, l, r, "client-a|orders-create")
		}
		ttl, err := raw.PTTL(ctx, "signgate:rl:client-a|orders-create:rate_limits[3]").Result()
		if err != nil {
			t.Fatal(err)
		}
		within(t, "PTTL", ttl, tt.wantTTL-slack, tt.wantTTL)
	}
}

func TestRedisKeyPrefixIsolatesDeployments(t *testing.T) {
	srv := testredis.Start(t)
	store := openStore(t, srv)
	r := rule("rate_limits[0]", 60, time.Hour, 2)
	tests := []struct {
		name         string
		first, other string
		otherAllowed bool
	}{
		{"different prefixes have separate buckets", "deploy-a:", "deploy-b:", true},
		{"the same prefix shares buckets", "shared:", "shared:", false},
		{"no prefix is a prefix of its own", "", "deploy-c:", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drain(t, NewRedis(store.Scripter(), RedisOptions{KeyPrefix: tt.first}), r, "client-a")
			d := allow(t, NewRedis(store.Scripter(), RedisOptions{KeyPrefix: tt.other}), r, "client-a")
			if d.Allowed != tt.otherAllowed {
				t.Fatalf("got %+v, want allowed %v", d, tt.otherAllowed)
			}
		})
	}
}

func TestRedisKeepsWorkingAfterScriptCacheIsFlushed(t *testing.T) {
	srv := testredis.Start(t)
	raw := rawClient(t, srv)
	l := NewRedis(openStore(t, srv).Scripter(), RedisOptions{})
	r := rule("rate_limits[0]", 60, time.Hour, 3)

	allow(t, l, r, "client-a") // loads the script
	if err := raw.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if d := allow(t, l, r, "client-a"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: got %+v, want allowed with remaining 1", d)
	}
}

func TestRedisStoppedIsAnError(t *testing.T) {
	srv := testredis.Start(t)
	l := NewRedis(openStore(t, srv).Scripter(), RedisOptions{})
	r := rule("rate_limits[0]", 60, time.Hour, 3)
	allow(t, l, r, "client-a") // a pooled connection to break

	srv.Stop()
	start := time.Now()
	d, err := l.Allow(context.Background(), r, "client-a")
	if err == nil {
		t.Fatalf("Redis stopped: got %+v and no error", d)
	}
	if !strings.HasPrefix(err.Error(), "ratelimit: redis: ") {
		t.Errorf("error %q does not say where it came from", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v to fail", took)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Allow(ctx, r, "client-a"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: error %v, want one that is context.Canceled", err)
	}
}

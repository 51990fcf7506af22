package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
)

func TestRedisKeyPrefix(t *testing.T) {
	srv := testredis.Start(t)
	tests := []struct {
		name           string
		first, second  string
		secondSetsNX   bool
		rawKeyExpected string
	}{
		{"different prefixes do not see each other's keys", "deploy-a:", "deploy-b:", true, "deploy-a:nonce"},
		{"same prefix shares keys", "shared:", "shared:", false, "shared:nonce"},
		{"no prefix uses the key as is", "", "other:", true, "nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}})
			t.Cleanup(func() { raw.client.FlushDB(context.Background()) })
			a := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: tt.first})
			b := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: tt.second})

			wantSetNX(t, a, "nonce", "from-a", time.Minute, true)
			wantSetNX(t, b, "nonce", "from-b", time.Minute, tt.secondSetsNX)
			wantGet(t, raw, tt.rawKeyExpected, "from-a", true)
		})
	}
}

// storeOps are the calls a consumer makes, each of which must fail, not hang, when
// Redis is gone.
var storeOps = []struct {
	name string
	call func(ctx context.Context, s store) error
}{
	{"SetNX", func(ctx context.Context, s store) error { _, err := s.SetNX(ctx, "k", "v", time.Minute); return err }},
	{"Get", func(ctx context.Context, s store) error { _, _, err := s.Get(ctx, "k"); return err }},
	{"Set", func(ctx context.Context, s store) error { return s.Set(ctx, "k", "v", time.Minute) }},
	{"Del", func(ctx context.Context, s store) error { return s.Del(ctx, "k") }},
	{"CompareAndDelete", func(ctx context.Context, s store) error { _, err := s.CompareAndDelete(ctx, "k", "v"); return err }},
	{"TTL", func(ctx context.Context, s store) error { _, _, err := s.TTL(ctx, "k"); return err }},
	{"Ping", func(ctx context.Context, s store) error { return s.Ping(ctx) }},
}

// failBound is far above the 200ms Timeout these tests use, so that a loaded machine
// does not make them flaky; what they catch is a call that hangs.
const failBound = 3 * time.Second

func TestRedisStoppedFailsFastAndRecovers(t *testing.T) {
	srv := testredis.Start(t)
	r := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "t:", Timeout: 200 * time.Millisecond})
	warmUp(t, r) // a pooled connection to break

	srv.Stop()
	for _, op := range storeOps {
		t.Run(op.name+" fails while stopped", func(t *testing.T) {
			start := time.Now()
			err := op.call(context.Background(), r)
			if err == nil {
				t.Fatal("no error with Redis stopped")
			}
			if d := time.Since(start); d > failBound {
				t.Fatalf("took %v to fail, want well under %v", d, failBound)
			}
			if !strings.HasPrefix(err.Error(), "state: redis ") {
				t.Errorf("error %q does not say where it came from", err)
			}
		})
	}

	srv.Restart()
	waitReady(t, r, "restart")
	// The restarted server has an empty script cache: EVALSHA must fall back to EVAL.
	wantSetNX(t, r, "lock", "owner", time.Minute, true)
	wantCAD(t, r, "lock", "owner", true)
}

func TestRedisHungTimesOut(t *testing.T) {
	srv := testredis.Start(t)
	r := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, Timeout: 200 * time.Millisecond})
	warmUp(t, r)

	srv.Pause() // accepts connections, answers nothing
	for _, op := range storeOps {
		t.Run(op.name+" times out while hung", func(t *testing.T) {
			start := time.Now()
			err := op.call(context.Background(), r)
			if d := time.Since(start); d > failBound {
				t.Fatalf("took %v to fail, want about the 200ms Timeout", d)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want one wrapping context.DeadlineExceeded", err)
			}
		})
	}
	t.Run("caller's shorter deadline wins", func(t *testing.T) {
		patient := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, Timeout: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := patient.SetNX(ctx, "k", "v", time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > failBound {
			t.Fatalf("took %v: the caller's 20ms deadline was not honoured, the store's 10s was", d)
		}
	})

	srv.Resume()
	waitReady(t, r, "resume")
	wantGet(t, r, "before", "v", true)
}

// warmUp stores "before" once the store can reach Redis: a store with a short Timeout
// may miss it on the first dial when the machine is busy.
func warmUp(t *testing.T, r *Redis) {
	t.Helper()
	waitReady(t, r, "start")
	if err := r.Set(context.Background(), "before", "v", time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

// waitReady polls Ping; after a restart, go-redis probes a failed address about once a
// second before dialling it again.
func waitReady(t *testing.T, r *Redis, after string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for err := r.Ping(context.Background()); err != nil; err = r.Ping(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("Ping still failing 10s after %s: %v", after, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisPasswordNeverShown(t *testing.T) {
	const right, wrong = "right-horse-battery", "hunter2-wrong"
	srv := testredis.Start(t)
	admin := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}})
	if err := admin.client.ConfigSet(context.Background(), "requirepass", right).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}

	o := RedisOptions{Addrs: []string{srv.Addr}, Password: wrong}
	r := openRedis(t, o)
	err := r.Ping(context.Background())
	if err == nil {
		t.Fatal("Ping with a wrong password succeeded")
	}
	_, setErr := r.SetNX(context.Background(), "k", "v", time.Minute)
	for _, shown := range []string{
		err.Error(), fmt.Sprint(setErr), r.String(),
		fmt.Sprintf("%v %+v %s", r, r, r), fmt.Sprintf("%v %+v %#v", o, o, o),
	} {
		if strings.Contains(shown, wrong) {
			t.Errorf("password shown in %q", shown)
		}
	}

	good := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}, Password: right})
	wantSetNX(t, good, "k", "v", time.Minute, true)
}

func TestRedisOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       RedisOptions
		wantErr string
		check   func(t *testing.T, uo *redis.UniversalOptions, r *Redis)
	}{
		{name: "no addresses", o: RedisOptions{}, wantErr: "state: redis: no addresses"},
		{name: "address without port", o: RedisOptions{Addrs: []string{"redis.internal"}}, wantErr: `address "redis.internal"`},
		{name: "negative timeout", o: RedisOptions{Addrs: []string{"a:6379"}, Timeout: -time.Second}, wantErr: "negative timeout"},
		{
			name: "one address is a plain client with fail-fast defaults",
			o:    RedisOptions{Addrs: []string{"10.0.0.1:6379"}},
			check: func(t *testing.T, uo *redis.UniversalOptions, r *Redis) {
				if _, ok := r.client.(*redis.Client); !ok {
					t.Errorf("client is %T, want *redis.Client", r.client)
				}
				if r.timeout != defaultRedisTimeout || uo.DialTimeout != defaultRedisTimeout || uo.ReadTimeout != defaultRedisTimeout {
					t.Errorf("timeouts %v/%v/%v, want %v", r.timeout, uo.DialTimeout, uo.ReadTimeout, defaultRedisTimeout)
				}
				if uo.MaxRetries != 1 || !uo.ContextTimeoutEnabled || uo.TLSConfig != nil {
					t.Errorf("MaxRetries %d, ContextTimeoutEnabled %v, TLS %v", uo.MaxRetries, uo.ContextTimeoutEnabled, uo.TLSConfig)
				}
				if got := r.String(); got != "redis(10.0.0.1:6379)" {
					t.Errorf("String() = %q", got)
				}
			},
		},
		{
			name: "several addresses are a cluster",
			o:    RedisOptions{Addrs: []string{"a:6379", "b:6379", "c:6379"}},
			check: func(t *testing.T, _ *redis.UniversalOptions, r *Redis) {
				if _, ok := r.client.(*redis.ClusterClient); !ok {
					t.Errorf("client is %T, want *redis.ClusterClient", r.client)
				}
				if got := r.String(); got != "redis(cluster a:6379,b:6379,c:6379)" {
					t.Errorf("String() = %q", got)
				}
			},
		},
		{
			name: "master name is Sentinel, authenticated like the data nodes",
			o:    RedisOptions{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", Username: "gw", Password: "pw"},
			check: func(t *testing.T, uo *redis.UniversalOptions, r *Redis) {
				if _, ok := r.client.(*redis.Client); !ok {
					t.Errorf("client is %T, want the failover *redis.Client", r.client)
				}
				if uo.SentinelUsername != "gw" || uo.SentinelPassword != "pw" {
					t.Errorf("Sentinel credentials not passed on")
				}
				if got := r.String(); got != "redis(sentinel mymaster via s1:26379,s2:26379)" {
					t.Errorf("String() = %q", got)
				}
			},
		},
		{
			name: "TLS verifies the first address's host",
			o:    RedisOptions{Addrs: []string{"redis.example.com:6380"}, TLS: true, Timeout: time.Second},
			check: func(t *testing.T, uo *redis.UniversalOptions, r *Redis) {
				c := uo.TLSConfig
				if c == nil || c.ServerName != "redis.example.com" || c.MinVersion != tls.VersionTLS12 || c.InsecureSkipVerify {
					t.Errorf("TLS config %+v", c)
				}
				if r.timeout != time.Second {
					t.Errorf("timeout %v, want 1s", r.timeout)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uo, err := universalOptions(tt.o)
			r, rerr := NewRedis(tt.o)
			if tt.wantErr != "" {
				if err == nil || rerr == nil || !strings.Contains(rerr.Error(), tt.wantErr) {
					t.Fatalf("NewRedis error = %v, want one containing %q", rerr, tt.wantErr)
				}
				return
			}
			if err != nil || rerr != nil {
				t.Fatalf("NewRedis: %v", rerr)
			}
			defer r.Close()
			tt.check(t, uo, r)
		})
	}
}

func TestRedisScriptSurvivesScriptFlush(t *testing.T) {
	srv := testredis.Start(t)
	r := openRedis(t, RedisOptions{Addrs: []string{srv.Addr}})
	wantSetNX(t, r, "lock", "owner", time.Minute, true)
	wantCAD(t, r, "lock", "intruder", false) // loads the script
	if err := r.client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	wantCAD(t, r, "lock", "owner", true)
}

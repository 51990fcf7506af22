package wechat

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/secret"
)

// The mini-program the tests log in to. The secret is a distinctive marker, so
// that finding it anywhere but in a call to WeChat is a leak, never a coincidence.
const (
	testAppID  = "wx00112233aabbccdd"
	testSecret = "sgtest-wechat-secret-Hy62"
)

// testClock is an injected clock tests move by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer is what a slog JSON handler wrote, safe to read while handlers write.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// startSandbox serves a Sandbox for the test mini-program as WeChat's API.
func startSandbox(t *testing.T) (*Sandbox, *httptest.Server) {
	t.Helper()
	sb := NewSandbox(SandboxOptions{AppID: testAppID, Secret: testSecret})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv
}

// newTestClient is a Client of the test mini-program calling base.
func newTestClient(t *testing.T, base string, o ClientOptions) *Client {
	t.Helper()
	if o.AppID == "" {
		o.AppID = testAppID
	}
	if o.Secret.IsZero() {
		o.Secret = secret.Secret(testSecret)
	}
	o.APIBase = base
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mint is a code of the sandbox for c.
func mint(t *testing.T, sb *Sandbox, c SandboxCode) string {
	t.Helper()
	code, _, err := sb.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// startRedis starts a redis-server for the test and returns it with a client.
func startRedis(t testing.TB) (*testredis.Server, redis.UniversalClient) {
	t.Helper()
	rs := testredis.Start(t)
	return rs, newRedisClient(t, rs.Addr)
}

// newRedisClient is a client of addr tuned as state.Redis tunes the gateway's
// (fail fast, one retry), closed when the test ends.
func newRedisClient(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 []string{addr},
		Protocol:              2,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
		DialTimeout:           300 * time.Millisecond,
		ReadTimeout:           300 * time.Millisecond,
		WriteTimeout:          300 * time.Millisecond,
		PoolTimeout:           300 * time.Millisecond,
		MaxRetries:            1,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newRedisStore is a Store on client, closed when the test ends.
func newRedisStore(t testing.TB, client redis.UniversalClient, o StoreOptions) *Store {
	t.Helper()
	o.Redis = client
	if o.KeyPrefix == "" {
		o.KeyPrefix = "sgtest:"
	}
	if o.RedisTimeout == 0 {
		o.RedisTimeout = 300 * time.Millisecond
	}
	s := NewStore(o)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond every 5ms until it holds or within passes, and reports
// how long that took.
func eventually(t *testing.T, within time.Duration, cond func() bool) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var bg = context.Background()

// newHTTPTestServer serves h for the test and returns its URL.
func newHTTPTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

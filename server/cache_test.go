package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/leakcheck"
	"github.com/signgate/signgate/internal/testredis"
)

// cacheUpstream is a backend for the cache tests: it counts what reaches it, by
// method and path, and answers each path as its name says.
type cacheUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	hits    map[string]int
	version atomic.Int64 // in the catalogue's body and ETag
	failing atomic.Bool  // answer 503
	delay   atomic.Int64 // ns to wait before answering
}

// catalogue is the services answer: hot, shared data with the hotline's full number.
func catalogue(version int64, lang string) string {
	return fmt.Sprintf(`{"services":["cleaning","nanny"],"hotline":{"name":"客服","phone":"13812345678"},"version":%d,"lang":%q}`, version, lang)
}

func newCacheUpstream(t *testing.T) *cacheUpstream {
	u := &cacheUpstream{hits: map[string]int{}}
	u.version.Store(1)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits[r.Method+" "+r.URL.Path]++
		u.mu.Unlock()
		if d := u.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if u.failing.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/cookie"):
			h.Set("Set-Cookie", "sid=abc; HttpOnly")
		case strings.HasSuffix(r.URL.Path, "/nostore"):
			h.Set("Cache-Control", "no-store")
		case strings.HasSuffix(r.URL.Path, "/private"):
			h.Set("Cache-Control", "private, max-age=60")
		case strings.HasSuffix(r.URL.Path, "/short"):
			h.Set("Cache-Control", "max-age=5")
		}
		v := u.version.Load()
		h.Set("ETag", fmt.Sprintf(`"svc-v%d"`, v))
		io.WriteString(w, catalogue(v, r.Header.Get("Accept-Language")))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *cacheUpstream) count(methodPath string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[methodPath]
}

// cacheGatewayConfig is a gateway with cached routes in front of upstreamURL, with
// Redis at redisAddr ("" for none).
func cacheGatewayConfig(upstreamURL, redisAddr string) string {
	redisSection := ""
	if redisAddr != "" {
		redisSection = fmt.Sprintf("redis: {addrs: [%q]}", redisAddr)
	}
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", shutdown_timeout: 5s}
tls: {mode: self_signed}
%s
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, roles: [provider]}
  - {id: ops-console, api_key_sha256: %q, roles: [ops]}
roles:
  resident_app: {allow: ["* /api/**"]}
  provider: {allow: ["* /api/**"], mask: true}
  ops: {allow: ["* /api/**"], unmask: true}
upstreams: {backend: {targets: [%q], response_timeout: 2s, passive: {max_fails: 0}}}
routes:
  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s, scope: all, vary: [Accept-Language]}}
  - {name: mine, match: "GET /api/mine", upstream: backend, cache: {ttl: 60s}}
  - {name: never, match: "* /api/never/*", upstream: backend, cache: {ttl: 60s, scope: all}}
  - {name: flaky, match: "GET /api/flaky", upstream: backend, cache: {ttl: 1s, stale_if_error: 1m, scope: all}}
  - {name: swr, match: "GET /api/swr", upstream: backend, cache: {ttl: 1s, stale_while_revalidate: 1m, scope: all}}
  - {name: api, match: "* /api/**", upstream: backend}
masking:
  fields: [phone]
  detect: [cn_mobile]
`, redisSection, auth.HashKey(appKey), auth.HashKey(providerKey), auth.HashKey(opsKey), upstreamURL)
}

// cacheGet sends method path with key and the given headers, and returns the answer
// and its body.
func cacheGet(t *testing.T, g *testGateway, method, path, key string, hdr ...string) (*http.Response, string) {
	t.Helper()
	resp, body := g.do(t, method, path, key, nil, hdr...)
	return resp, string(body)
}

func wantCacheStatus(t *testing.T, resp *http.Response, want string) {
	t.Helper()
	if got := resp.Header.Get("Cache-Status"); !strings.HasPrefix(got, want) {
		t.Fatalf("Cache-Status %q, want it to start %q (status %d)", got, want, resp.StatusCode)
	}
}

func TestCacheMissThenHit(t *testing.T) {
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, ""))

	first, body1 := cacheGet(t, g, "GET", "/api/services", appKey)
	if first.StatusCode != 200 {
		t.Fatalf("first: %d %s", first.StatusCode, body1)
	}
	wantCacheStatus(t, first, "signgate; fwd=miss; fwd-status=200; stored")

	second, body2 := cacheGet(t, g, "GET", "/api/services", appKey)
	wantCacheStatus(t, second, "signgate; hit; ttl=")
	if body2 != body1 || second.Header.Get("ETag") != first.Header.Get("ETag") || second.Header.Get("Age") == "" {
		t.Fatalf("hit differs from the miss: %q %q, ETag %q %q, Age %q", body1, body2,
			first.Header.Get("ETag"), second.Header.Get("ETag"), second.Header.Get("Age"))
	}
	if id1, id2 := first.Header.Get("X-Request-Id"), second.Header.Get("X-Request-Id"); id1 == id2 || len(second.Header.Values("X-Request-Id")) != 1 {
		t.Fatalf("the hit carries the miss's request id: %q, %q", id1, id2)
	}
	if n := up.count("GET /api/services"); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}

	t.Run("the query's order does not matter", func(t *testing.T) {
		_, a := cacheGet(t, g, "GET", "/api/services?city=sh&page=2", appKey)
		resp, b := cacheGet(t, g, "GET", "/api/services?page=2&city=sh", appKey)
		wantCacheStatus(t, resp, "signgate; hit")
		if a != b {
			t.Fatalf("%q != %q", a, b)
		}
	})
	t.Run("a trailing slash is another entry: the upstream sees another path", func(t *testing.T) {
		resp, _ := cacheGet(t, g, "GET", "/api/services/", appKey)
		wantCacheStatus(t, resp, "signgate; fwd=miss")
		resp, _ = cacheGet(t, g, "GET", "/api/services/", appKey)
		wantCacheStatus(t, resp, "signgate; hit")
	})
	t.Run("another vary value is another entry", func(t *testing.T) {
		resp, body := cacheGet(t, g, "GET", "/api/services", appKey, "Accept-Language", "en")
		wantCacheStatus(t, resp, "signgate; fwd=miss")
		if !strings.Contains(body, `"lang":"en"`) || !strings.Contains(strings.Join(resp.Header.Values("Vary"), ", "), "Accept-Language") {
			t.Fatalf("body %s, Vary %q", body, resp.Header.Values("Vary"))
		}
	})
	t.Run("HEAD is served from the GET entry", func(t *testing.T) {
		resp, body := cacheGet(t, g, "HEAD", "/api/services", appKey, "Accept-Encoding", "gzip")
		wantCacheStatus(t, resp, "signgate; hit")
		if body != "" || resp.Header.Get("Content-Length") != fmt.Sprint(len(body1)) {
			t.Fatalf("HEAD: body %q, Content-Length %q, want none and %d", body, resp.Header.Get("Content-Length"), len(body1))
		}
	})
	t.Run("a cold HEAD fills the entry with a GET", func(t *testing.T) {
		resp, _ := cacheGet(t, g, "HEAD", "/api/services", appKey, "Accept-Encoding", "gzip", "Accept-Language", "fr")
		wantCacheStatus(t, resp, "signgate; fwd=miss; fwd-status=200; stored")
		resp, body := cacheGet(t, g, "GET", "/api/services", appKey, "Accept-Language", "fr")
		wantCacheStatus(t, resp, "signgate; hit")
		if !strings.Contains(body, `"lang":"fr"`) || up.count("HEAD /api/services") != 0 {
			t.Fatalf("GET after HEAD: %s; upstream HEADs %d", body, up.count("HEAD /api/services"))
		}
	})
	t.Run("If-None-Match is answered 304 from the entry", func(t *testing.T) {
		before := up.count("GET /api/services")
		resp, body := cacheGet(t, g, "GET", "/api/services", appKey, "If-None-Match", first.Header.Get("ETag"))
		if resp.StatusCode != http.StatusNotModified || body != "" {
			t.Fatalf("%d %q, want 304", resp.StatusCode, body)
		}
		wantCacheStatus(t, resp, "signgate; hit")
		resp, body = cacheGet(t, g, "GET", "/api/services", appKey, "If-None-Match", `"other"`)
		if resp.StatusCode != 200 || body != body1 {
			t.Fatalf("another ETag: %d %q", resp.StatusCode, body)
		}
		if n := up.count("GET /api/services"); n != before {
			t.Fatalf("conditional requests reached the upstream (%d → %d)", before, n)
		}
	})
	t.Run("scope client: each client its own entry", func(t *testing.T) {
		a, _ := cacheGet(t, g, "GET", "/api/mine", appKey)
		b, _ := cacheGet(t, g, "GET", "/api/mine", opsKey)
		a2, _ := cacheGet(t, g, "GET", "/api/mine", appKey)
		wantCacheStatus(t, a, "signgate; fwd=miss")
		wantCacheStatus(t, b, "signgate; fwd=miss")
		wantCacheStatus(t, a2, "signgate; hit")
	})
	t.Run("metrics and the access line", func(t *testing.T) {
		m := metricsText(t, g)
		for _, series := range []string{
			`signgate_cache_requests_total{result="hit",route="services"}`,
			`signgate_cache_requests_total{result="miss",route="services"}`,
			`signgate_cache_requests_total{result="bypass",route="services"} 0`,
		} {
			if !strings.Contains(m, series) {
				t.Errorf("metrics lack %s", series)
			}
		}
		results := map[string]int{}
		for _, l := range g.logs.lines(t, "request") {
			if l["route"] == "services" {
				c, _ := l["cache"].(string)
				results[c]++
			}
		}
		if results["hit"] == 0 || results["miss"] == 0 || results[""] != 0 {
			t.Fatalf("access lines by cache result: %v", results)
		}
	})
}

// Answers that must not be stored are not: each request reaches the upstream.
func TestCacheNeverStores(t *testing.T) {
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, ""))
	for _, tt := range []struct {
		name, method, path, detail string
	}{
		{"Set-Cookie", "GET", "/api/never/cookie", "detail=set-cookie"},
		{"Cache-Control: no-store", "GET", "/api/never/nostore", "detail=no-store"},
		{"Cache-Control: private", "GET", "/api/never/private", "detail=private"},
		{"POST", "POST", "/api/never/create", "fwd=method"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 3 {
				resp, _ := cacheGet(t, g, tt.method, tt.path, appKey)
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: %d", i, resp.StatusCode)
				}
				if got := resp.Header.Get("Cache-Status"); !strings.Contains(got, tt.detail) && !strings.Contains(got, "detail=uncacheable") {
					t.Fatalf("request %d: Cache-Status %q, want %s", i, got, tt.detail)
				}
			}
			if n := up.count(tt.method + " " + tt.path); n != 3 {
				t.Fatalf("upstream saw %d requests, want all 3", n)
			}
		})
	}
	t.Run("max-age shortens the ttl", func(t *testing.T) {
		cacheGet(t, g, "GET", "/api/never/short", appKey)
		resp, _ := cacheGet(t, g, "GET", "/api/never/short", appKey)
		wantCacheStatus(t, resp, "signgate; hit; ttl=")
		var ttl int
		fmt.Sscanf(strings.TrimPrefix(resp.Header.Get("Cache-Status"), "signgate; hit; ttl="), "%d", &ttl)
		if ttl > 5 {
			t.Fatalf("Cache-Status %q: the upstream's max-age=5 did not shorten the route's 60s", resp.Header.Get("Cache-Status"))
		}
	})
}

// A masked caller and an unmasked one never share an entry, the masked entry holds
// only masked bytes, and every unmasked answer, cached or not, is audited.
func TestCacheMaskedAndFullViews(t *testing.T) {
	rs := testredis.Start(t)
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, rs.Addr))
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	entries := func() [][]byte {
		keys, err := rdb.Keys(context.Background(), "signgate:cache:*:e:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, k := range keys {
			v, _ := rdb.Get(context.Background(), k).Bytes()
			out = append(out, v)
		}
		return out
	}

	masked1, mbody := cacheGet(t, g, "GET", "/api/services", providerKey)
	wantCacheStatus(t, masked1, "signgate; fwd=miss; fwd-status=200; stored")
	if !strings.Contains(mbody, "138****5678") || len(leakcheck.Find([]byte(mbody))) != 0 {
		t.Fatalf("the provider's answer: %s", mbody)
	}
	stored := entries()
	if len(stored) != 1 || len(leakcheck.Find(stored[0])) != 0 || !bytes.Contains(stored[0], []byte("138****5678")) {
		t.Fatalf("the provider's entry in Redis (%d entries) holds a full number or no masked one: %q", len(stored), stored)
	}

	full1, fbody := cacheGet(t, g, "GET", "/api/services", opsKey)
	wantCacheStatus(t, full1, "signgate; fwd=miss; fwd-status=200; stored")
	if !strings.Contains(fbody, "13812345678") {
		t.Fatalf("the ops answer: %s", fbody)
	}
	if n := len(entries()); n != 2 {
		t.Fatalf("%d entries in Redis, want one per view", n)
	}

	for _, c := range []struct {
		name, key, want string
	}{
		{"provider", providerKey, mbody}, {"ops", opsKey, fbody}, {"app", appKey, fbody}, {"provider again", providerKey, mbody},
	} {
		resp, body := cacheGet(t, g, "GET", "/api/services", c.key)
		wantCacheStatus(t, resp, "signgate; hit")
		if body != c.want {
			t.Fatalf("%s got %s, want %s", c.name, body, c.want)
		}
	}
	if n := up.count("GET /api/services"); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2 (one per view)", n)
	}

	t.Run("a masked caller's If-None-Match is answered from the masked entry", func(t *testing.T) {
		etag := masked1.Header.Get("ETag")
		if etag == "" || etag == full1.Header.Get("ETag") {
			t.Fatalf("masked ETag %q, full %q: want the masked bytes' own", etag, full1.Header.Get("ETag"))
		}
		resp, body := cacheGet(t, g, "GET", "/api/services", providerKey, "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified || body != "" {
			t.Fatalf("%d %q, want 304", resp.StatusCode, body)
		}
		resp, _ = cacheGet(t, g, "GET", "/api/services", providerKey, "If-None-Match", full1.Header.Get("ETag"))
		if resp.StatusCode != 200 {
			t.Fatalf("the unmasked ETag from a masked caller: %d, want 200 (it names nothing it was given)", resp.StatusCode)
		}
		if n := up.count("GET /api/services"); n != 2 {
			t.Fatalf("upstream saw %d requests, want still 2", n)
		}
	})
	t.Run("every unmasked answer is audited, from the cache too", func(t *testing.T) {
		audits := 0
		for _, l := range g.logs.lines(t, "audit") {
			if l["client"] == "ops-console" && l["route"] == "services" {
				audits++
			}
		}
		if audits != 2 {
			t.Fatalf("%d audit lines for the ops console's 2 answers", audits)
		}
	})
}

// Concurrent misses on one instance make one upstream request, and every caller
// gets the same answer.
func TestCacheCollapsesConcurrentMisses(t *testing.T) {
	up := newCacheUpstream(t)
	up.delay.Store(int64(200 * time.Millisecond))
	g := startGateway(t, cacheGatewayConfig(up.URL, ""))
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := range bodies {
		wg.Go(func() {
			resp, body := cacheGet(t, g, "GET", "/api/services", appKey)
			if resp.StatusCode != 200 {
				t.Errorf("%d: %s", resp.StatusCode, body)
			}
			bodies[i] = body
		})
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("answers differ: %q %q", bodies[0], b)
		}
	}
	if n := up.count("GET /api/services"); n != 1 {
		t.Fatalf("upstream saw %d requests for 50 concurrent misses, want 1", n)
	}
}

func TestCacheStaleIfError(t *testing.T) {
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, ""))
	_, fresh := cacheGet(t, g, "GET", "/api/flaky", appKey)
	time.Sleep(1100 * time.Millisecond) // past the ttl of 1s
	up.failing.Store(true)
	resp, body := cacheGet(t, g, "GET", "/api/flaky", appKey)
	if resp.StatusCode != 200 || body != fresh {
		t.Fatalf("upstream failing with a stale entry: %d %q, want the stale answer", resp.StatusCode, body)
	}
	wantCacheStatus(t, resp, "signgate; fwd=stale; fwd-status=503; ttl=-")
	if !strings.Contains(resp.Header.Get("Cache-Status"), "detail=stale-if-error") {
		t.Fatalf("Cache-Status %q", resp.Header.Get("Cache-Status"))
	}

	t.Run("the upstream gone altogether", func(t *testing.T) {
		up.Close()
		resp, body := cacheGet(t, g, "GET", "/api/flaky", appKey)
		if resp.StatusCode != 200 || body != fresh {
			t.Fatalf("upstream down: %d %q", resp.StatusCode, body)
		}
		wantCacheStatus(t, resp, "signgate; fwd=stale; fwd-status=50")
	})
	t.Run("no stale entry: the failure passes", func(t *testing.T) {
		resp, _ := cacheGet(t, g, "GET", "/api/services", appKey)
		if resp.StatusCode < 500 {
			t.Fatalf("%d, want the upstream failure", resp.StatusCode)
		}
	})
}

func TestCacheStaleWhileRevalidate(t *testing.T) {
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, ""))
	_, v1 := cacheGet(t, g, "GET", "/api/swr", appKey)
	time.Sleep(1100 * time.Millisecond)
	up.version.Store(2)
	resp, body := cacheGet(t, g, "GET", "/api/swr", appKey)
	if body != v1 {
		t.Fatalf("stale answer %q, want %q", body, v1)
	}
	wantCacheStatus(t, resp, "signgate; fwd=stale; ttl=-")
	waitUntil(t, "the background refresh", func() bool {
		resp, body := cacheGet(t, g, "GET", "/api/swr", appKey)
		return strings.HasPrefix(resp.Header.Get("Cache-Status"), "signgate; hit") && strings.Contains(body, `"version":2`)
	})
	if n := up.count("GET /api/swr"); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis stopped mid-test: every request is still answered, from the upstream, and
// the cache is used again once Redis is back.
func TestCacheRedisStoppedMidTest(t *testing.T) {
	rs := testredis.Start(t)
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, rs.Addr))
	_, want := cacheGet(t, g, "GET", "/api/services", appKey)
	resp, _ := cacheGet(t, g, "GET", "/api/services", appKey)
	wantCacheStatus(t, resp, "signgate; hit")

	rs.Stop()
	bypassed := 0
	for i := range 40 {
		resp, body := cacheGet(t, g, "GET", "/api/services", appKey)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d with Redis stopped: %d %q", i, resp.StatusCode, body)
		}
		if strings.HasPrefix(resp.Header.Get("Cache-Status"), "signgate; fwd=bypass") {
			bypassed++
		}
		time.Sleep(60 * time.Millisecond)
	}
	if bypassed == 0 {
		t.Fatal("no request bypassed the cache with Redis stopped")
	}
	if !strings.Contains(metricsText(t, g), `signgate_cache_requests_total{result="bypass",route="services"}`) {
		t.Fatal("no bypass counted")
	}

	rs.Restart()
	waitUntil(t, "the cache to hit again", func() bool {
		resp, _ := cacheGet(t, g, "GET", "/api/services", appKey)
		return strings.HasPrefix(resp.Header.Get("Cache-Status"), "signgate; hit")
	})
}

func TestCachePurge(t *testing.T) {
	up := newCacheUpstream(t)
	g := startGateway(t, cacheGatewayConfig(up.URL, ""))
	purge := func(body string) (int, string) {
		resp, err := http.Post(g.admin+"/-/cache/purge", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	fill := func() {
		cacheGet(t, g, "GET", "/api/services", appKey)
		cacheGet(t, g, "GET", "/api/services?page=2", appKey)
		cacheGet(t, g, "GET", "/api/mine", appKey)
	}
	fill()
	if code, body := purge(`{"route":"services"}`); code != 200 || body != `{"purged":2,"instances":1}` {
		t.Fatalf("purge by route: %d %s", code, body)
	}
	resp, _ := cacheGet(t, g, "GET", "/api/services", appKey)
	wantCacheStatus(t, resp, "signgate; fwd=miss")
	resp, _ = cacheGet(t, g, "GET", "/api/mine", appKey)
	wantCacheStatus(t, resp, "signgate; hit")

	fill()
	if code, body := purge(`{"prefix":"/api/mi"}`); code != 200 || body != `{"purged":1,"instances":1}` {
		t.Fatalf("purge by prefix: %d %s", code, body)
	}
	for _, bad := range []string{`{}`, `{"route":"api"}`, `{"route":"nope"}`, `{"prefix":"api"}`, `{"path":"/"}`, `nope`} {
		if code, body := purge(bad); code != http.StatusBadRequest {
			t.Errorf("purge %s: %d %s, want 400", bad, code, body)
		}
	}
}

// BenchmarkCacheGateway is a cached route's hit through the whole chain (access
// log, routing, API key, RBAC, the cache), beside BenchmarkGateway/apikey, which
// proxies the same answer.
func BenchmarkCacheGateway(b *testing.B) {
	up := benchUpstream(b)
	cfg, err := parseConfig(fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["GET /api/services"]}
upstreams:
  backend: {targets: [%q]}
routes:
  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 1h, scope: all}}
`, auth.HashKey(appKey), up.URL))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), WithJSONAccessLog(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.gw.Load().retire(nil) })
	benchServe(b, http.HandlerFunc(srv.serveGateway), "/api/services", appKey)
}

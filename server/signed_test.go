package server

import (
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/internal/testsecret"
)

const (
	partnerKey    = "partner-key-1234567890"
	partnerSecret = testsecret.PartnerSecret
	djKey         = "2801209652"
	djSecret      = testsecret.DaojiaSecret
)

// signedConfig adds a signing partner, a relay and a callback route to baseConfig.
func signedConfig(upstreamURL, daojiaURL, redisAddr string) string {
	redis := ""
	if redisAddr != "" {
		redis = fmt.Sprintf("redis: {addrs: [%q], timeout: 300ms}\n", redisAddr)
	}
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", max_body_bytes: 4096}
tls: {mode: self_signed}
%sclients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, secret: %q, signature: hmac-sha256, roles: [provider]}
roles:
  app: {allow: ["GET /api/**", "POST /daojia/**"]}
  provider: {allow: ["PUT /api/orders/*/status", "GET /api/**"]}
upstreams: {backend: {targets: [%q]}}
daojia: {base_url: %q, service_key: %q, service_secret: %q, timeout: 2s}
routes:
  - {name: relay, match: "POST /daojia/**", daojia: relay}
  - {name: callback, match: "POST /callbacks/daojia/**", verify: daojia-md5, upstream: backend}
  - {name: signed-only, match: "* /api/signed/**", verify: hmac-sha256, upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
`, redis, auth.HashKey(appKey), auth.HashKey(partnerKey), partnerSecret, upstreamURL, daojiaURL, djKey, djSecret)
}

func signedHeaders(t *testing.T, method, pathAndQuery, body, nonce string, at time.Time) []string {
	t.Helper()
	h, err := auth.SignRequest(method, pathAndQuery, []byte(body), []byte(partnerSecret), at, nonce)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"Content-Type", "application/json"}
	for k, v := range h {
		out = append(out, k, v)
	}
	return out
}

func code(t *testing.T, body []byte) string {
	t.Helper()
	var env envelope
	_ = json.Unmarshal(body, &env)
	return env.Code
}

func TestSignedRequests(t *testing.T) {
	var mu sync.Mutex
	var gotBody string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotBody = string(b)
		mu.Unlock()
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	g := startGateway(t, signedConfig(up.URL, "http://127.0.0.1:1", ""))
	body := `{"status":"done"}`
	path := "/api/orders/42/status?b=2&a=1"
	now := time.Now()

	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		headers    []string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"valid signature passes", "PUT", path, partnerKey, signedHeaders(t, "PUT", path, body, "nonce-0001", now), body, 200, ""},
		{"same nonce again is a replay", "PUT", path, partnerKey, signedHeaders(t, "PUT", path, body, "nonce-0001", now), body, 401, "replayed"},
		{"body changed after signing", "PUT", path, partnerKey, signedHeaders(t, "PUT", path, body, "nonce-0002", now), `{"status":"evil"}`, 401, "invalid_signature"},
		{"clock 11 minutes behind", "PUT", path, partnerKey, signedHeaders(t, "PUT", path, body, "nonce-0003", now.Add(-11*time.Minute)), body, 401, "timestamp_skew"},
		{"no signature headers", "PUT", path, partnerKey, nil, body, 401, "missing_credentials"},
		{"non-numeric timestamp", "PUT", path, partnerKey, []string{"X-Timestamp", "soon", "X-Nonce", "nonce-0004", "X-Signature", strings.Repeat("a", 64)}, body, 400, "bad_request"},
		{"unsigned client on a signed-only route", "GET", "/api/signed/x", appKey, nil, "", 401, "invalid_signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := g.do(t, tt.method, tt.path, tt.key, strings.NewReader(tt.body), tt.headers...)
			if resp.StatusCode != tt.wantStatus || code(t, b) != tt.wantCode {
				t.Fatalf("status %d body %s, want %d %q", resp.StatusCode, b, tt.wantStatus, tt.wantCode)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if gotBody != body {
		t.Errorf("upstream got body %q, want the signed body intact", gotBody)
	}
	if strings.Contains(g.logs.buf.String(), partnerSecret) {
		t.Error("the partner's secret reached the log")
	}
}

// Two gateway instances sharing one real Redis act as one: a nonce used on one is a
// replay on the other.
func TestReplayAcrossInstancesSharingRedis(t *testing.T) {
	rs := testredis.Start(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	cfg := signedConfig(up.URL, "http://127.0.0.1:1", rs.Addr)
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	body := `{"status":"done"}`
	hdr := signedHeaders(t, "PUT", "/api/orders/1/status", body, "shared-nonce-1", time.Now())
	resp, out := a.do(t, "PUT", "/api/orders/1/status", partnerKey, strings.NewReader(body), hdr...)
	if resp.StatusCode != 200 {
		t.Fatalf("first use on instance A: %d %s", resp.StatusCode, out)
	}
	resp, out = b.do(t, "PUT", "/api/orders/1/status", partnerKey, strings.NewReader(body), hdr...)
	if resp.StatusCode != 401 || code(t, out) != "replayed" {
		t.Fatalf("replay on instance B: %d %s, want 401 replayed", resp.StatusCode, out)
	}
}

// With Redis gone, replay protection cannot be checked: signed routes fail closed
// with 503 state_unavailable, API-key routes keep working, and /readyz says 503.
func TestRedisDownFailsClosedForSignedRoutesOnly(t *testing.T) {
	rs := testredis.Start(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	g := startGateway(t, signedConfig(up.URL, "http://127.0.0.1:1", rs.Addr))
	ready := func() int {
		resp, err := http.Get(g.admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != 200 {
		t.Fatalf("/readyz with Redis up = %d", got)
	}
	rs.Stop()
	body := `{"status":"done"}`
	resp, out := g.do(t, "PUT", "/api/orders/1/status", partnerKey, strings.NewReader(body),
		signedHeaders(t, "PUT", "/api/orders/1/status", body, "nonce-redis-down", time.Now())...)
	if resp.StatusCode != 503 || code(t, out) != "state_unavailable" {
		t.Fatalf("signed route with Redis down: %d %s, want 503 state_unavailable", resp.StatusCode, out)
	}
	resp, out = g.do(t, "GET", "/api/services", appKey, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("API-key route with Redis down: %d %s, want 200", resp.StatusCode, out)
	}
	if got := ready(); got != 503 {
		t.Fatalf("/readyz with Redis down = %d, want 503", got)
	}
}

func TestDaojiaRelayAndCallback(t *testing.T) {
	sb := daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})
	platform := httptest.NewServer(sb)
	defer platform.Close()
	var callbacks []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		callbacks = append(callbacks, r.Header.Get("X-Signgate-Client")+" "+string(b))
		mu.Unlock()
		io.WriteString(w, `{"code":0}`)
	}))
	defer up.Close()
	g := startGateway(t, signedConfig(up.URL, platform.URL, ""))

	t.Run("relay signs and forwards to 58到家", func(t *testing.T) {
		resp, b := g.do(t, "POST", "/daojia/serviceUser/saveServiceUser", appKey,
			strings.NewReader(`{"userId":"u1","userName":"张三","userPhone":"15888888888"}`), "Content-Type", "application/json")
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"code":0`) {
			t.Fatalf("save: %d %s", resp.StatusCode, b)
		}
		resp, b = g.do(t, "POST", "/daojia/serviceUser/getAllServiceUser", appKey, strings.NewReader(`{}`))
		if resp.StatusCode != 200 || !strings.Contains(string(b), "u1") {
			t.Fatalf("getAll: %d %s", resp.StatusCode, b)
		}
		if sb.TokenFetches() != 1 {
			t.Errorf("token fetched %d times for two calls, want 1", sb.TokenFetches())
		}
	})
	t.Run("malformed JSON to the relay", func(t *testing.T) {
		resp, b := g.do(t, "POST", "/daojia/serviceUser/saveServiceUser", appKey, strings.NewReader(`{"userId":`))
		if resp.StatusCode != 400 || code(t, b) != "bad_request" {
			t.Fatalf("%d %s, want 400 bad_request", resp.StatusCode, b)
		}
	})
	t.Run("signed 58到家 callback reaches the backend without an API key", func(t *testing.T) {
		body, err := daojia.SignedBody([]byte(`{"orderId":"o1","status":3}`), djKey, "", djSecret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, b := g.do(t, "POST", "/callbacks/daojia/order/status", "", strings.NewReader(string(body)), "Content-Type", "application/json")
		if resp.StatusCode != 200 {
			t.Fatalf("callback: %d %s", resp.StatusCode, b)
		}
		mu.Lock()
		last := callbacks[len(callbacks)-1]
		mu.Unlock()
		if !strings.HasPrefix(last, "daojia {") || !strings.Contains(last, `"orderId":"o1"`) {
			t.Errorf("backend saw %q, want the body intact from client daojia", last)
		}
		resp, b = g.do(t, "POST", "/callbacks/daojia/order/status", "", strings.NewReader(string(body)), "Content-Type", "application/json")
		if resp.StatusCode != 401 || code(t, b) != "replayed" {
			t.Fatalf("callback replay: %d %s, want 401 replayed", resp.StatusCode, b)
		}
	})
	t.Run("forged callback refused", func(t *testing.T) {
		body, _ := daojia.SignedBody([]byte(`{"orderId":"o2"}`), djKey, "", "not-the-secret", time.Now())
		resp, b := g.do(t, "POST", "/callbacks/daojia/order/status", "", strings.NewReader(string(body)), "Content-Type", "application/json")
		if resp.StatusCode != 401 || code(t, b) != "invalid_signature" {
			t.Fatalf("forged callback: %d %s, want 401 invalid_signature", resp.StatusCode, b)
		}
	})
	if strings.Contains(g.logs.buf.String(), djSecret) {
		t.Error("the 58到家 service secret reached the log")
	}
}

// independentlyVerified wraps the sandbox with a check written from DESIGN.md alone
// (not daojia.Sign): every call 58到家 receives must carry a correct sign.
func independentlyVerified(t *testing.T, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var params map[string]json.RawMessage
		if err := json.Unmarshal(body, &params); err != nil {
			t.Errorf("58到家 got a body that is not JSON: %s", body)
		}
		names := make([]string, 0, len(params))
		for k := range params {
			if k != "sign" {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		var s strings.Builder
		s.WriteString(djSecret)
		for _, k := range names {
			v := string(params[k])
			var str string
			if json.Unmarshal(params[k], &str) == nil {
				v = str
			}
			s.WriteString(k + v)
		}
		s.WriteString(djSecret)
		want := strings.ToUpper(fmt.Sprintf("%x", md5.Sum([]byte(s.String()))))
		var got string
		_ = json.Unmarshal(params["sign"], &got)
		if got != want {
			t.Errorf("58到家 got sign %s, an independent MD5 says %s", got, want)
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		next.ServeHTTP(w, r)
	})
}

// Two instances sharing a real Redis fetch the 58到家 accessToken once between them,
// however many relay calls arrive at once.
func TestRelayTokenFetchedOnceAcrossInstances(t *testing.T) {
	rs := testredis.Start(t)
	sb := daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})
	platform := httptest.NewServer(independentlyVerified(t, sb))
	defer platform.Close()
	cfg := signedConfig("http://127.0.0.1:1", platform.URL, rs.Addr)
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := range 50 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			req, _ := http.NewRequest("POST", g.url+"/daojia/serviceUser/saveServiceUser",
				strings.NewReader(fmt.Sprintf(`{"userId":"u%d"}`, i)))
			req.Header.Set("X-Api-Key", appKey)
			resp, err := g.client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"code":0`) {
				errs <- fmt.Sprintf("%d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := sb.TokenFetches(); n != 1 {
		t.Fatalf("50 concurrent relay calls on two instances fetched the token %d times, want 1", n)
	}
	for _, g := range []*testGateway{a, b} {
		resp, err := http.Get(g.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(m), `signgate_daojia_token_fetches_total{result="ok"}`) {
			t.Error("/metrics lacks signgate_daojia_token_fetches_total")
		}
	}
}

func TestRelayDoesNotHandOutTheToken(t *testing.T) {
	sb := daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})
	platform := httptest.NewServer(sb)
	defer platform.Close()
	g := startGateway(t, signedConfig("http://127.0.0.1:1", platform.URL, ""))
	resp, b := g.do(t, "POST", "/daojia/token/getAccessToken", appKey, strings.NewReader(`{}`))
	if resp.StatusCode != 404 || code(t, b) != "no_route" || sb.TokenFetches() != 0 {
		t.Fatalf("relaying the token endpoint: %d %s, %d fetches; want 404 no_route and none", resp.StatusCode, b, sb.TokenFetches())
	}
}

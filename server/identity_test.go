package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/internal/testsecret"
	"github.com/signgate/signgate/wechat"
)

// wxAppID is the mini-program the identity tests log in to.
const wxAppID = "wx0123456789abcdef"

// wxReferer is what wx.request sends from wxAppID's mini-program.
const wxReferer = "https://servicewechat.com/" + wxAppID + "/7/page-frame.html"

// fakeWeChat is WeChat's jscode2session for the tests: the sandbox, with every
// session_key it hands out recorded as a secret that must show nowhere, and modes
// in which it stalls or answers garbage.
type fakeWeChat struct {
	*wechat.Sandbox
	url   string
	mu    sync.Mutex
	mode  string // "" (the sandbox), "slow", "garbage"
	calls int
}

func startWeChat(t *testing.T) *fakeWeChat {
	t.Helper()
	f := &fakeWeChat{Sandbox: wechat.NewSandbox(wechat.SandboxOptions{AppID: wxAppID, Secret: testsecret.WeChatSecret})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		mode := f.mode
		f.calls++
		f.mu.Unlock()
		switch mode {
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
			return
		case "garbage":
			io.WriteString(w, "<html>502 Bad Gateway</html>")
			return
		}
		rec := httptest.NewRecorder()
		f.Sandbox.ServeHTTP(rec, r)
		var a struct {
			SessionKey string `json:"session_key"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &a) == nil && a.SessionKey != "" {
			addNeedle(a.SessionKey)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeWeChat) setMode(m string) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

// code mints a wx.login code for user (or one that fails with errcode).
func (f *fakeWeChat) code(t *testing.T, user string, errcode int) (code, openid string) {
	t.Helper()
	code, openid, err := f.Mint(wechat.SandboxCode{User: user, Errcode: errcode})
	if err != nil {
		t.Fatal(err)
	}
	return code, openid
}

// ownerEcho is a backend that answers what it was told about the caller.
func ownerEcho(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"path":          r.URL.Path,
			"openid":        r.Header.Get("X-WX-OpenID"),
			"unionid":       r.Header.Get("X-WX-UnionID"),
			"authorization": r.Header.Get("Authorization"),
			"client":        r.Header.Get("X-Signgate-Client"),
		})
	}))
	t.Cleanup(up.Close)
	return up
}

// identityConfig is a mini-program's gateway: WeChat login, owners' routes, a
// per-owner limit on bookings; extra is appended.
func identityConfig(upstream, wxURL, extra string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["POST /auth/wechat/login", "POST /auth/wechat/logout", "GET /api/services", "POST /api/orders", "* /api/orders/**", "GET /api/notices"]}
upstreams: {backend: {targets: [%q]}}
wechat: {appid: %s, secret: %q, api_base: %q, session_ttl: 1h, check_referer: true, timeout: 400ms}
routes:
  - {name: wx-login, match: "POST /auth/wechat/login", wechat: login}
  - {name: wx-logout, match: "POST /auth/wechat/logout", wechat: logout}
  - {name: orders-create, match: "POST /api/orders", upstream: backend, user: required}
  - {name: orders, match: "* /api/orders/**", upstream: backend, user: required}
  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s}}
  - {name: notices, match: "GET /api/notices", upstream: backend}
rate_limits:
  - {key: user, routes: [orders-create], rate: 3/m}
%s`, auth.HashKey(appKey), upstream, wxAppID, testsecret.WeChatSecret, wxURL, extra)
}

// login exchanges code at g's login route and returns the token.
func login(t *testing.T, g *testGateway, code string) string {
	t.Helper()
	resp, body := g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(`{"code":"`+code+`"}`),
		"Content-Type", "application/json", "Referer", wxReferer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var a map[string]any
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("login answer %q: %v", body, err)
	}
	token, _ := a["token"].(string)
	if len(a) != 2 || len(token) < 22 || a["expires_in"] == nil {
		t.Fatalf("login answer %s: want exactly token (128 bits or more) and expires_in", body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login answer Cache-Control %q, want no-store", cc)
	}
	return token
}

// seen is what ownerEcho answered.
func seen(t *testing.T, body []byte) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("upstream answer %q: %v", body, err)
	}
	return m
}

func wantEnvelope(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e map[string]any
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || e["code"] != code || e["message"] == "" || e["request_id"] == nil {
		t.Errorf("%s: %d %s, want %d with a %s envelope", what, resp.StatusCode, body, status, code)
	}
}

// An owner logs in with her wx.login code and the upstream learns who she is, from
// the gateway and from nobody else; without a session, or with a bad one, an
// owner's route refuses; a logout ends the session.
func TestWeChatLoginNamesTheOwner(t *testing.T) {
	wx := startWeChat(t)
	g := startGateway(t, identityConfig(ownerEcho(t).URL, wx.url, ""))
	code, alice := wx.code(t, "alice", 0)
	token := login(t, g, code)

	// The owner's own calls: the upstream gets her openid, never the token, and a
	// caller's own X-WX-* copies never.
	resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil,
		"Authorization", "Bearer "+token, "X-WX-OpenID", "o-mallory", "X-Wx-Unionid", "u-mallory")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("owner's call: %d %s", resp.StatusCode, body)
	}
	if got := seen(t, body); got["openid"] != alice || got["unionid"] != "" || got["authorization"] != "" || got["client"] != "property-miniapp" {
		t.Errorf("upstream saw %v, want openid %s, no unionid, no Authorization", got, alice)
	}
	if l := g.logLine(t, "request", resp.Header.Get("X-Request-Id")); l == nil || l["user"] != alice {
		t.Errorf("access line %v, want user %s", l, alice)
	}
	// A route that does not require an owner still passes one on when known, and
	// a spoofed one never.
	_, body = g.do(t, "GET", "/api/notices", appKey, nil, "Authorization", "Bearer "+token)
	if got := seen(t, body); got["openid"] != alice {
		t.Errorf("optional route: upstream saw %v, want openid %s", got, alice)
	}
	_, body = g.do(t, "GET", "/api/notices", appKey, nil, "X-WX-OpenID", alice)
	if got := seen(t, body); got["openid"] != "" {
		t.Errorf("optional route without a session: upstream saw openid %q, want none", got["openid"])
	}

	// An app bound to an Open Platform account: WeChat's unionid reaches the
	// upstream too, the gateway's, never the caller's.
	bound, _, err := wx.Mint(wechat.SandboxCode{User: "carol", UnionID: "u-carol-union"})
	if err != nil {
		t.Fatal(err)
	}
	_, body = g.do(t, "GET", "/api/orders/2", appKey, nil, "Authorization", "Bearer "+login(t, g, bound), "X-WX-UnionID", "u-mallory")
	if got := seen(t, body); got["unionid"] != "u-carol-union" || got["openid"] == "" || got["openid"] == alice {
		t.Errorf("bound app: upstream saw %v, want carol's openid and unionid u-carol-union", got)
	}

	resp, body = g.do(t, "GET", "/api/orders/1", appKey, nil, "X-WX-OpenID", alice)
	wantEnvelope(t, "no session", resp, body, 401, "missing_session")
	resp, body = g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+strings.Repeat("A", 43))
	wantEnvelope(t, "a made-up token", resp, body, 401, "invalid_session")
	resp, body = g.do(t, "GET", "/api/orders/1", "", nil, "Authorization", "Bearer "+token)
	wantEnvelope(t, "a session without the app's key", resp, body, 401, "missing_credentials")

	// The code was used: WeChat says 40163, the caller invalid_code.
	resp, body = g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(`{"code":"`+code+`"}`), "Referer", wxReferer)
	wantEnvelope(t, "a used code", resp, body, 401, "invalid_code")

	resp, body = g.do(t, "POST", "/auth/wechat/logout", appKey, nil, "Authorization", "Bearer "+token)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"logged_out":true`) {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	resp, body = g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token)
	wantEnvelope(t, "after logout", resp, body, 401, "invalid_session")

	for _, l := range g.logs.lines(t, "") {
		if b, _ := json.Marshal(l); strings.Contains(string(b), token) {
			t.Errorf("a log line holds the session token: %s", b)
		}
	}
}

// Every way a login can fail answers an envelope, at once, and none holds the
// AppSecret, the code or a session_key.
func TestWeChatLoginFailures(t *testing.T) {
	wx := startWeChat(t)
	g := startGateway(t, identityConfig(ownerEcho(t).URL, wx.url, ""))
	send := func(body, referer string) (*http.Response, []byte) {
		return g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(body), "Referer", referer)
	}
	codeFor := func(errcode int) string { c, _ := wx.code(t, "bob", errcode); return `{"code":"` + c + `"}` }
	tests := []struct {
		name, mode, body, referer string
		status                    int
		code                      string
	}{
		{"unknown code (40029)", "", `{"code":"0a1b2c3d4e5f60718293a4b5c6d7e8f9"}`, wxReferer, 401, "invalid_code"},
		{"rate limited (45011)", "", codeFor(45011), wxReferer, 429, "rate_limited"},
		{"system busy (-1)", "", codeFor(-1), wxReferer, 502, "upstream_error"},
		{"garbage from WeChat", "garbage", codeFor(0), wxReferer, 502, "upstream_error"},
		{"WeChat silent", "slow", codeFor(0), wxReferer, 504, "upstream_timeout"},
		{"no code", "", `{}`, wxReferer, 400, "bad_request"},
		{"not JSON", "", `code=abc`, wxReferer, 400, "bad_request"},
		{"a code of control characters", "", `{"code":"\u0001\u0002"}`, wxReferer, 401, "invalid_code"},
		{"another mini-program's Referer", "", codeFor(0), "https://servicewechat.com/wx00000000000000ff/1/page-frame.html", 403, "forbidden"},
		{"no Referer", "", codeFor(0), "", 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wx.setMode(tt.mode)
			defer wx.setMode("")
			start := time.Now()
			resp, body := send(tt.body, tt.referer)
			wantEnvelope(t, tt.name, resp, body, tt.status, tt.code)
			if tt.code == "rate_limited" && resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %v: a login must not hang on WeChat", d)
			}
			if strings.Contains(string(body), "session_key") || strings.Contains(string(body), "js_code") {
				t.Errorf("answer names WeChat's internals: %s", body)
			}
		})
	}
	// Down: nothing listens at api_base.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	g2 := startGateway(t, identityConfig(ownerEcho(t).URL, down.URL, ""))
	resp, body := g2.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(codeFor(0)), "Referer", wxReferer)
	wantEnvelope(t, "WeChat down", resp, body, 502, "upstream_error")
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`signgate_wechat_logins_total{result="invalid_code"} 2`, `signgate_wechat_logins_total{result="rate_limited"} 1`,
		`signgate_wechat_logins_total{result="timeout"} 1`, `signgate_wechat_logins_total{result="wrong_appid"} 2`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// key: user holds each owner to her own budget; the response cache keeps each
// owner's answers apart. In memory, and with Redis (where a request's limits are
// decided in one script after authentication, and the owner must be known by then).
func TestOwnerLimitsAndCache(t *testing.T) {
	t.Run("memory", func(t *testing.T) { ownerLimitsAndCache(t, "") })
	t.Run("redis", func(t *testing.T) {
		ownerLimitsAndCache(t, fmt.Sprintf("redis: {addrs: [%q]}\n", testredis.Start(t).Addr))
	})
}

func ownerLimitsAndCache(t *testing.T, extra string) {
	wx := startWeChat(t)
	g := startGateway(t, identityConfig(ownerEcho(t).URL, wx.url, extra))
	c1, alice := wx.code(t, "alice", 0)
	c2, bob := wx.code(t, "bob", 0)
	ta, tb := login(t, g, c1), login(t, g, c2)

	for i := range 4 {
		resp, body := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(`{}`), "Authorization", "Bearer "+ta)
		if i < 3 && resp.StatusCode != http.StatusOK {
			t.Fatalf("alice's booking %d: %d %s", i+1, resp.StatusCode, body)
		}
		if i == 3 {
			wantEnvelope(t, "alice's 4th booking in a minute", resp, body, 429, "rate_limited")
		}
	}
	if resp, body := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(`{}`), "Authorization", "Bearer "+tb); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's booking after alice used her budget: %d %s", resp.StatusCode, body)
	}

	for _, c := range []struct{ token, openid string }{{ta, alice}, {tb, bob}, {ta, alice}, {"", ""}} {
		hdr := []string{}
		if c.token != "" {
			hdr = append(hdr, "Authorization", "Bearer "+c.token)
		}
		resp, body := g.do(t, "GET", "/api/services", appKey, nil, hdr...)
		if got := seen(t, body); resp.StatusCode != http.StatusOK || got["openid"] != c.openid {
			t.Errorf("services for %q: %d, answered for %q (Cache-Status %s)", c.openid, resp.StatusCode, got["openid"], resp.Header.Get("Cache-Status"))
		}
	}
}

// Sessions fail closed: with Redis gone, an owner's route answers 503
// state_unavailable (once the second a copy may be trusted has passed), never as
// if there were no session or any session.
func TestSessionsFailClosed(t *testing.T) {
	wx := startWeChat(t)
	rs := testredis.Start(t)
	g := startGateway(t, identityConfig(ownerEcho(t).URL, wx.url, fmt.Sprintf("redis: {addrs: [%q], timeout: 300ms}\n", rs.Addr)))
	code, _ := wx.code(t, "alice", 0)
	token := login(t, g, code)
	if resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token); resp.StatusCode != http.StatusOK {
		t.Fatalf("with Redis: %d %s", resp.StatusCode, body)
	}
	rs.Stop()
	time.Sleep(1100 * time.Millisecond)
	resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token)
	wantEnvelope(t, "Redis down, required", resp, body, 503, "state_unavailable")
	resp, body = g.do(t, "GET", "/api/notices", appKey, nil, "Authorization", "Bearer "+token)
	if got := seen(t, body); resp.StatusCode != http.StatusOK || got["openid"] != "" {
		t.Errorf("Redis down, optional route: %d, openid %q: want served without an owner", resp.StatusCode, got["openid"])
	}
	code2, _ := wx.code(t, "bob", 0)
	resp, body = g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(`{"code":"`+code2+`"}`), "Referer", wxReferer)
	wantEnvelope(t, "login with Redis down", resp, body, 503, "state_unavailable")
}

// Two gateways on one Redis act as one: a session made on one works on the other,
// and a logout on either ends it on both within a second.
func TestSessionsAcrossTheFleet(t *testing.T) {
	wx := startWeChat(t)
	rs := testredis.Start(t)
	up := ownerEcho(t).URL
	cfg := identityConfig(up, wx.url, fmt.Sprintf("redis: {addrs: [%q]}\n", rs.Addr))
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	code, alice := wx.code(t, "alice", 0)
	token := login(t, a, code)
	resp, body := b.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token)
	if got := seen(t, body); resp.StatusCode != http.StatusOK || got["openid"] != alice {
		t.Fatalf("session from a on b: %d %s", resp.StatusCode, body)
	}
	if resp, body := a.do(t, "POST", "/auth/wechat/logout", appKey, nil, "Authorization", "Bearer "+token); resp.StatusCode != http.StatusOK {
		t.Fatalf("logout on a: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		resp, _ := b.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token)
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still takes the session 1.5s after the logout on a: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// JWTs the backend issues name the owner as sessions do; anything but a valid,
// current token for this audience is invalid_session.
func TestJWTNamesTheOwner(t *testing.T) {
	up := ownerEcho(t)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["* /api/**"]}
upstreams: {backend: {targets: [%q]}}
jwt: {issuer: "https://auth.example.com", audience: signgate, hs256_secret: %q, claim: sub}
routes:
  - {name: orders, match: "* /api/orders/**", upstream: backend, user: required}
`, auth.HashKey(appKey), up.URL, testsecret.JWTSecret))
	now := time.Now()
	mint := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := jwt.MapClaims{"iss": "https://auth.example.com", "aud": "signgate", "sub": "o-jwt-alice", "exp": now.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	token := mint(jwt.SigningMethodHS256, []byte(testsecret.JWTSecret), good)
	resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token, "X-WX-OpenID", "o-mallory")
	if got := seen(t, body); resp.StatusCode != http.StatusOK || got["openid"] != "o-jwt-alice" || got["authorization"] != "Bearer "+token {
		t.Fatalf("valid JWT: %d %v, want openid o-jwt-alice and the JWT passed on", resp.StatusCode, got)
	}
	bad := map[string]string{
		"expired":        mint(jwt.SigningMethodHS256, []byte(testsecret.JWTSecret), with("exp", now.Add(-time.Hour).Unix())),
		"wrong audience": mint(jwt.SigningMethodHS256, []byte(testsecret.JWTSecret), with("aud", "someone-else")),
		"wrong issuer":   mint(jwt.SigningMethodHS256, []byte(testsecret.JWTSecret), with("iss", "https://evil.example")),
		"forged":         mint(jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-0000"), good),
		"alg none":       mint(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),
	}
	for name, tok := range bad {
		resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+tok)
		wantEnvelope(t, name, resp, body, 401, "invalid_session")
	}
}

// Credentials the gateway does not know reach the upstream, which may answer by
// them: such an answer is neither stored nor served to anyone else.
func TestCacheBypassesUnknownAuthorization(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"for":%q}`, r.Header.Get("Authorization"))
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["GET /api/services"]}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s}}
`, auth.HashKey(appKey), up.URL))
	resp, body := g.do(t, "GET", "/api/services", appKey, nil, "Authorization", "Basic YWxpY2U6c2VjcmV0")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Basic") || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=authorization") {
		t.Fatalf("with Authorization: %d %s, Cache-Status %q: want the upstream's answer, not stored", resp.StatusCode, body, resp.Header.Get("Cache-Status"))
	}
	resp, body = g.do(t, "GET", "/api/services", appKey, nil)
	if string(body) != `{"for":""}` || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=miss") {
		t.Fatalf("without: %s, Cache-Status %q: want a miss answered for no one", body, resp.Header.Get("Cache-Status"))
	}
}

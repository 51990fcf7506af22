package server

// Attacks on end-user identity (WeChat login sessions and JWTs), written during a
// security review and run through the real gateway against a real upstream. The
// attacker is a mini-program user: she has the app's public API key and her own
// valid session, and wants to act as another owner, slip her per-owner limit,
// read another owner's cached answer, or make the upstream trust an identity the
// gateway did not vouch for. Each test says what she tries and what the gateway
// must do instead; a failing test is a finding.

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testsecret"
)

// atkRequest is one request as the upstream received it.
type atkRequest struct {
	method, uri string
	header      http.Header
}

// atkUpstream is ownerEcho that also records every request whole, every value of
// every header included, so a test can assert on all the upstream was told.
type atkUpstream struct {
	*httptest.Server
	mu  sync.Mutex
	got []atkRequest
}

func newAtkUpstream(t *testing.T) *atkUpstream {
	t.Helper()
	u := &atkUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.got = append(u.got, atkRequest{method: r.Method, uri: r.RequestURI, header: r.Header.Clone()})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"path":          r.URL.Path,
			"openid":        r.Header.Get("X-WX-OpenID"),
			"unionid":       r.Header.Get("X-WX-UnionID"),
			"authorization": strings.Join(r.Header.Values("Authorization"), " | "),
			"client":        r.Header.Get("X-Signgate-Client"),
		})
	}))
	t.Cleanup(u.Close)
	return u
}

// last is the last request the upstream received.
func (u *atkUpstream) last(t *testing.T) atkRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.got[len(u.got)-1]
}

func (u *atkUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

// atkDo sends a request through g with hdr as given: a name listed twice is sent
// twice (g.do sets each name once).
func atkDo(t *testing.T, c *http.Client, base, method, path string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", appKey)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// hs256 mints an HS256 JWT for sub with the test gateway's secret, issuer and
// audience.
func hs256(t *testing.T, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://auth.example.com", "aud": "signgate", "sub": sub,
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(testsecret.JWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwtHS256Extra adds JWT verification (HS256) beside WeChat login to identityConfig.
var jwtHS256Extra = fmt.Sprintf("jwt: {issuer: \"https://auth.example.com\", audience: signgate, hs256_secret: %q, claim: sub}\n", testsecret.JWTSecret)

// FINDING. The README promises "A caller's own X-WX-* headers are removed on every
// route, so the backend can trust them", but only X-WX-OpenID and X-WX-UnionID
// are. A backend moved from WeChat Cloud Hosting (云托管) trusts the X-WX-* headers
// that platform injects (X-WX-FROM-OPENID, X-WX-APPID, X-WX-ENV, X-WX-SOURCE…);
// behind signgate a caller writes them herself, next to the gateway's own.
func TestAttackIDCallerWXHeadersFamily(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, identityConfig(up.URL, wx.url, ""))
	code, alice := wx.code(t, "alice", 0)
	token := login(t, g, code)

	forged := http.Header{
		"X-WX-From-OpenID":  {"o-victim"},
		"X-WX-From-UnionID": {"u-victim"},
		"X-WX-AppID":        {"wx00000000000000ff"},
		"X-WX-From-AppID":   {"wx00000000000000ff"},
		"X-WX-Env":          {"prod-admin"},
		"X-WX-Source":       {"wx_devtools"},
		"X-WX-Session-Key":  {"forged-session-key"},
	}
	for _, tc := range []struct {
		name, path, token, openid string
	}{
		{"an owner's route, with her session", "/api/orders/1", token, alice},
		{"an optional route, without a session", "/api/notices", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := forged.Clone()
			if tc.token != "" {
				hdr.Set("Authorization", "Bearer "+tc.token)
			}
			resp, body := atkDo(t, g.client, g.url, "GET", tc.path, nil, hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var wx []string
			for name, vs := range up.last(t).header {
				if strings.HasPrefix(strings.ToLower(name), "x-wx-") {
					if name == "X-Wx-Openid" && tc.openid != "" && slices.Equal(vs, []string{tc.openid}) {
						continue // the gateway's own
					}
					wx = append(wx, name+": "+strings.Join(vs, ","))
				}
			}
			slices.Sort(wx)
			if len(wx) > 0 {
				t.Errorf("the upstream received the caller's X-WX-* headers %q: only the gateway may set X-WX-*", wx)
			}
		})
	}
}

// FINDING. The gateway decides the owner on the first Authorization value and,
// for a JWT, passes every value on. Mallory sends her own valid JWT first and an
// unsigned one naming Alice second: the gateway names Mallory, while the backend
// gets both and, depending on its stack (PHP and CGI servers keep the last value,
// or join them), may read the second. A second session token after a JWT-looking
// first one reaches the upstream too, although "a session token stops at the
// gateway". One request, one decision: a second Authorization must be refused (as
// a second X-Api-Key is) or never passed on.
func TestAttackIDAuthorizationTwice(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, identityConfig(up.URL, wx.url, jwtHS256Extra))
	mallory := hs256(t, "o-mallory")
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": "https://auth.example.com", "aud": "signgate", "sub": "o-alice",
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := wx.code(t, "alice", 0)
	aliceSession := login(t, g, code)

	for _, tc := range []struct {
		name, path string
		values     []string
		secret     string // must never reach the upstream, "" for none
	}{
		{"her JWT, then an unsigned one naming another owner", "/api/orders/1", []string{"Bearer " + mallory, "Bearer " + unsigned}, unsigned},
		{"a JWT-looking token, then a session token", "/api/notices", []string{"Bearer x.y.z", "Bearer " + aliceSession}, aliceSession},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			resp, body := atkDo(t, g.client, g.url, "GET", tc.path, nil, http.Header{"Authorization": tc.values})
			if resp.StatusCode == http.StatusBadRequest {
				return // refused: one decision
			}
			if up.count() == before {
				t.Fatalf("%d %s: neither refused as 400 nor passed on", resp.StatusCode, body)
			}
			got := up.last(t).header.Values("Authorization")
			if len(got) > 1 {
				t.Errorf("the upstream received %d Authorization values (the gateway decided on the first, the backend may read another)", len(got))
			}
			if tc.secret != "" && strings.Contains(strings.Join(got, "\n"), tc.secret) {
				t.Errorf("the upstream received a token the gateway never decided on")
			}
		})
	}
}

// FINDING. A session token "stops at the gateway (Authorization is removed)", but
// only routes that look the owner up remove it: on a public route the
// mini-program's bearer token (which a wx.request interceptor adds to every call)
// reaches the upstream, and its logs, as sent. Anyone who reads those logs can
// call as the owner for up to 30 days.
func TestAttackIDSessionTokenOnAPublicRoute(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	cfg := strings.Replace(identityConfig(up.URL, wx.url, ""), "routes:\n",
		"routes:\n  - {name: public, match: \"GET /public/**\", upstream: backend, public: true}\n", 1)
	g := startGateway(t, cfg)
	code, _ := wx.code(t, "alice", 0)
	token := login(t, g, code)
	resp, body := atkDo(t, g.client, g.url, "GET", "/public/banner", nil, http.Header{"Authorization": {"Bearer " + token}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := up.last(t).header.Values("Authorization"); strings.Contains(strings.Join(got, " "), token) {
		t.Errorf("the upstream of a public route received the owner's session token (Authorization %d bytes)", len(strings.Join(got, " ")))
	}
}

// FINDING. A rule keyed "user+ip" (or "ip+user") passes config validation, but
// limitsFor places every rule whose key has "ip" before authentication, where no
// owner is known yet, and ruleSteps skips a user-keyed rule without an owner: the
// rule never counts anything. An owner's per-address budget is unlimited.
func TestAttackIDUserPlusIPLimitNeverHolds(t *testing.T) {
	for _, key := range []string{"user+ip", "ip+user"} {
		t.Run(key, func(t *testing.T) {
			wx := startWeChat(t)
			up := newAtkUpstream(t)
			cfg := strings.Replace(identityConfig(up.URL, wx.url, ""),
				"  - {key: user, routes: [orders-create], rate: 3/m}",
				"  - {key: "+key+", routes: [orders-create], rate: 3/m}", 1)
			g := startGateway(t, cfg)
			code, _ := wx.code(t, "alice", 0)
			token := login(t, g, code)
			passed := 0
			for range 6 {
				resp, _ := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(`{}`), "Authorization", "Bearer "+token)
				if resp.StatusCode == http.StatusOK {
					passed++
				}
			}
			if passed > 3 {
				t.Errorf("%d of 6 bookings in a minute passed a %s rule of 3/m", passed, key)
			}
		})
	}
}

// FINDING. A JWT the gateway could not verify goes on, on a route that does not
// require an owner, "as anyone's", but with the JWT still in Authorization. The
// backend (whose own credential it is) answers for its owner, and the response
// cache stores that answer under the client alone, as an anonymous one: every
// other owner of the mini-program then reads Alice's answer. Here the identity
// provider's JWKS is unreachable (a fail-open path); a token the gateway refuses
// for any other reason (its leeway, its claim) does the same.
func TestAttackIDCacheServesAnUnverifiedOwnersAnswer(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	down := httptest.NewServer(http.NotFoundHandler())
	jwksURL := down.URL + "/.well-known/jwks.json"
	down.Close()
	g := startGateway(t, identityConfig(up.URL, wx.url,
		fmt.Sprintf("jwt: {issuer: \"https://auth.example.com\", audience: signgate, jwks_url: %q, jwks_timeout: 300ms}\n", jwksURL)))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://auth.example.com", "aud": "signgate", "sub": "o-jwt-alice",
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	aliceJWT, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := g.do(t, "GET", "/api/services", appKey, nil, "Authorization", "Bearer "+aliceJWT)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alice: %d %s", resp.StatusCode, body)
	}
	resp, body = g.do(t, "GET", "/api/services", appKey, nil)
	if got := seen(t, body); got["authorization"] != "" {
		t.Errorf("bob, without a token, was answered what the upstream answered for Alice's JWT (Cache-Status %q)", resp.Header.Get("Cache-Status"))
	}
}

// FINDING. The gateway sets X-WX-OpenID on the request before the reverse proxy,
// and httputil.ReverseProxy removes every header the caller names in Connection
// (hop-by-hop) before it sends the request on. "Connection: X-WX-OpenID" thus
// deletes the owner the gateway vouches for: on a user: required route the
// upstream receives no owner at all, which backends read as "anonymous" or fall
// back from (to an openid in the body or query, which the caller writes).
func TestAttackIDConnectionHeaderStripsTheOwner(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, identityConfig(up.URL, wx.url, ""))
	code, alice := wx.code(t, "alice", 0)
	token := login(t, g, code)
	c := http1Client(t)
	before := up.count()
	resp, _ := atkDo(t, c, g.url, "GET", "/api/orders/1", nil, http.Header{
		"Authorization": {"Bearer " + token},
		"Connection":    {"X-WX-OpenID, X-WX-UnionID"},
	})
	if resp.StatusCode >= 400 && up.count() == before {
		return // refused: fine
	}
	if got := up.last(t).header.Values("X-WX-OpenID"); !slices.Equal(got, []string{alice}) {
		t.Errorf("%d: a user: required route reached the upstream with X-WX-OpenID %q, want %q", resp.StatusCode, got, alice)
	}
}

// FINDING (availability). Every config reload builds a new JWT verifier, which
// fetches the JWKS afresh and drops the keys the running one holds. A reload while
// the identity provider is briefly down (any reload: a route added, a rate
// changed) makes every owner's JWT answer 503 state_unavailable until a later
// fetch succeeds, where the running gateway had good keys.
func TestAttackIDReloadDropsTheJWKS(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, jwks)
	}))
	up := newAtkUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["* /api/**"]}
upstreams: {backend: {targets: [%q]}}
jwt: {issuer: "https://auth.example.com", audience: signgate, jwks_url: %q, jwks_timeout: 300ms}
routes:
  - {name: orders, match: "* /api/orders/**", upstream: backend, user: required}
`, auth.HashKey(appKey), up.URL, idp.URL))
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://auth.example.com", "aud": "signgate", "sub": "o-jwt-alice",
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+signed); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}
	idp.Close() // the identity provider has a bad minute
	if err := g.srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+signed)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after a reload with the JWKS unreachable: %d %s, want 200 on the keys the gateway held", resp.StatusCode, body)
	}
}

// FINDING (low). Without Redis, sessions live in a table of max_sessions, the
// soonest to expire dropped first, with no bound per owner: one owner who logs in
// again and again (wx.login hands her a fresh code each time) pushes every other
// owner's session out, logging them all out.
func TestAttackIDOneOwnerEvictsEveryoneElse(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, strings.Replace(identityConfig(up.URL, wx.url, ""), "timeout: 400ms}", "timeout: 400ms, max_sessions: 4}", 1))
	code, _ := wx.code(t, "alice", 0)
	alice := login(t, g, code)
	for range 4 {
		c, _ := wx.code(t, "mallory", 0)
		login(t, g, c)
	}
	resp, body := g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+alice)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("alice after mallory logged in 4 times: %d %s, want her session kept (bound sessions per owner)", resp.StatusCode, body)
	}
}

// Held (regression guard): every spelling of a bearer token names the owner or
// no one, never someone else, and no spelling makes a user: required route pass
// without the owner's session; the upstream never sees a session token.
func TestAttackIDBearerSpellings(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, identityConfig(up.URL, wx.url, ""))
	code, alice := wx.code(t, "alice", 0)
	token := login(t, g, code)
	// The same token in the standard base64 alphabet ("+" for "-", "/" for "_"),
	// or, when it has neither, with a "+" for its first character.
	std := strings.NewReplacer("-", "+", "_", "/").Replace(token)
	if std == token {
		std = "+" + token[1:]
	}
	for _, tc := range []struct {
		name, value string
		want        int
	}{
		{"lower-case scheme", "bearer " + token, 200},
		{"upper-case scheme", "BEARER " + token, 200},
		{"extra spaces", "Bearer    " + token + "  ", 200},
		{"a tab for the space", "Bearer\t" + token, 401},
		{"no space", "Bearer" + token, 401},
		{"one character short", "Bearer " + token[:len(token)-1], 401},
		{"one character more", "Bearer " + token + "A", 401},
		{"padded", "Bearer " + token + "=", 401},
		{"standard base64 alphabet", "Bearer " + std, 401},
		{"JWT-shaped around it", "Bearer " + token + ".e30.x", 401},
		{"Basic", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+token)), 401},
		{"two tokens in one value", "Bearer " + token + ", Bearer " + token, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			resp, body := atkDo(t, g.client, g.url, "GET", "/api/orders/1", nil, http.Header{"Authorization": {tc.value}})
			if resp.StatusCode != tc.want {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tc.want)
			}
			if up.count() == before {
				return
			}
			r := up.last(t)
			if got := r.header.Values("X-WX-OpenID"); !slices.Equal(got, []string{alice}) {
				t.Errorf("upstream X-WX-OpenID %q, want %q", got, alice)
			}
			if strings.Contains(strings.Join(r.header.Values("Authorization"), " "), token[:20]) {
				t.Error("the upstream received the session token")
			}
		})
	}
}

// Held (regression guard): logins hold under abuse. A huge or doubled body, a code
// that is not wx.login's, a Referer spelled almost right, two Referers, a login
// without the app's key: each is refused before WeChat is asked (or as WeChat
// answers), and nothing of WeChat's answer but the token comes back.
func TestAttackIDLoginAbuse(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, identityConfig(up.URL, wx.url, ""))
	valid := func() string { c, _ := wx.code(t, "eve", 0); return c }
	for _, tc := range []struct {
		name, body string
		hdr        http.Header
		status     int
		askWeChat  bool
	}{
		{"a body over 4 KB", `{"code":"` + valid() + `","pad":"` + strings.Repeat("x", 5000) + `"}`, nil, 400, false},
		{"a code of 129 bytes", `{"code":"` + strings.Repeat("a", 129) + `"}`, nil, 401, false},
		{"a code with a space", `{"code":"a b"}`, nil, 401, false},
		{"a code that is a number", `{"code":12345}`, nil, 400, false},
		{"a code that smuggles a query", `{"code":"x&appid=wx00000000000000ff&secret=y"}`, nil, 401, true},
		{"the Referer's host in capitals", `{"code":"` + valid() + `"}`, http.Header{"Referer": {"https://SERVICEWECHAT.com/" + wxAppID + "/7/page-frame.html"}}, 403, false},
		{"a Referer with a query", `{"code":"` + valid() + `"}`, http.Header{"Referer": {wxReferer + "?x=1"}}, 403, false},
		{"a Referer over http", `{"code":"` + valid() + `"}`, http.Header{"Referer": {strings.Replace(wxReferer, "https", "http", 1)}}, 403, false},
		{"two Referers, the right one first", `{"code":"` + valid() + `"}`, http.Header{"Referer": {wxReferer, "https://servicewechat.com/wx00000000000000ff/1/page-frame.html"}}, 403, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{"Referer": {wxReferer}, "Content-Type": {"application/json"}}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			wx.mu.Lock()
			calls := wx.calls
			wx.mu.Unlock()
			resp, body := atkDo(t, g.client, g.url, "POST", "/auth/wechat/login", strings.NewReader(tc.body), hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			wx.mu.Lock()
			asked := wx.calls > calls
			wx.mu.Unlock()
			if asked && !tc.askWeChat {
				t.Error("WeChat was asked")
			}
			if strings.Contains(string(body), "token") {
				t.Errorf("a refused login answered a token: %s", body)
			}
		})
	}
	// Without the app's key, a valid code is never spent.
	c := valid()
	resp, body := g.do(t, "POST", "/auth/wechat/login", "", strings.NewReader(`{"code":"`+c+`"}`), "Referer", wxReferer)
	wantEnvelope(t, "login without the key", resp, body, 401, "missing_credentials")
	login(t, g, c)
}

// Held (regression guard): what a thief would take from the gateway's logs (at
// debug level) or answers is never there: not a session token, a JWT or a wx.login
// code, on any path, failures included (a garbage or silent WeChat, a refused
// token, a code spent twice, a logout).
func TestAttackIDCredentialsNeverLogged(t *testing.T) {
	wx := startWeChat(t)
	up := newAtkUpstream(t)
	g := startGateway(t, identityConfig(up.URL, wx.url, jwtHS256Extra))
	var secrets []string
	code, _ := wx.code(t, "alice", 0)
	token := login(t, g, code)
	secrets = append(secrets, code, token)
	// The code again (40163), and codes WeChat fails on.
	g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(`{"code":"`+code+`"}`), "Referer", wxReferer)
	for _, mode := range []string{"garbage", "slow"} {
		c, _ := wx.code(t, "bob", 0)
		secrets = append(secrets, c)
		wx.setMode(mode)
		g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(`{"code":"`+c+`"}`), "Referer", wxReferer)
		wx.setMode("")
	}
	for _, errcode := range []int{-1, 45011, 40029} {
		c, _ := wx.code(t, "carol", errcode)
		secrets = append(secrets, c)
		g.do(t, "POST", "/auth/wechat/login", appKey, strings.NewReader(`{"code":"`+c+`"}`), "Referer", wxReferer)
	}
	jwtOK := hs256(t, "o-jwt-dave")
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://auth.example.com", "aud": "signgate", "sub": "o-jwt-dave", "exp": time.Now().Add(-time.Hour).Unix(),
	}).SignedString([]byte(testsecret.JWTSecret))
	secrets = append(secrets, jwtOK, expired)
	for _, v := range []string{token, jwtOK, expired, token[:42]} {
		g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+v)
		g.do(t, "GET", "/api/notices", appKey, nil, "Authorization", "Bearer "+v)
	}
	g.do(t, "POST", "/auth/wechat/logout", appKey, nil, "Authorization", "Bearer "+token)
	g.do(t, "GET", "/api/orders/1", appKey, nil, "Authorization", "Bearer "+token)
	g.logs.mu.Lock()
	logs := g.logs.buf.String()
	g.logs.mu.Unlock()
	for i, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("secret %d (%d bytes) is in the gateway's log", i, len(s))
		}
	}
}

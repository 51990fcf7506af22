package daojia

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/reqinfo"
)

// lenientPlatform stands in front of the sandbox as a forgiving web server would:
// it reads a path case-insensitively, decodes it (twice, as some servers do), takes
// '\' for '/', drops empty and dot segments, servlet path parameters (";x") and a
// suffix (".json"), before it routes. Every call it sees is recorded with the path
// it routed it to and whether the body carried an accessToken.
type lenientPlatform struct {
	mu    sync.Mutex
	calls []platformCall
}

type platformCall struct {
	sent, routed string
	accessToken  bool
}

func (p *lenientPlatform) wrap(tokenPath string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var params map[string]json.RawMessage
			_ = json.Unmarshal(body, &params)
			routed := lenientPath(r.URL.EscapedPath())
			if strings.EqualFold(routed, tokenPath) {
				routed = tokenPath
			}
			p.mu.Lock()
			p.calls = append(p.calls, platformCall{sent: r.URL.EscapedPath(), routed: routed, accessToken: params["accessToken"] != nil})
			p.mu.Unlock()
			r.URL.Path, r.URL.RawPath = routed, ""
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
		})
	}
}

func (p *lenientPlatform) tokenCalls(tokenPath string) (all, withAccessToken int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.calls {
		if c.routed == tokenPath {
			all++
			if c.accessToken {
				withAccessToken++
			}
		}
	}
	return all, withAccessToken
}

func lenientPath(escaped string) string {
	p := escaped
	for range 2 {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	p = strings.ReplaceAll(p, `\`, "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = s
	}
	p = path.Clean("/" + strings.Join(segs, "/"))
	if ext := path.Ext(p); ext != "" && !strings.Contains(ext, "/") {
		p = strings.TrimSuffix(p, ext)
	}
	return p
}

// The relay never sends a call with the cached accessToken to 58到家's token
// endpoint, however the caller spells that path: a server that reads paths leniently
// would take any of these spellings for the token endpoint. Every spelling gets the
// answer the exact one gets, 404 no_route, before any token is fetched.
func TestRelayTokenGuardHoldsForEverySpelling(t *testing.T) {
	p := &lenientPlatform{}
	env := newSandboxEnv(t, p.wrap("/api/v1/token/getAccessToken"))
	relay := env.client(t, nil).Relay("/daojia/")
	spellings := []string{
		"/daojia/token/getAccessToken",
		"/daojia/token/getaccesstoken",
		"/daojia/TOKEN/GETACCESSTOKEN",
		"/daojia/Token/GetAccessToken",
		"/daojia/token/getAcces\u017fToken", // ſ, which Unicode case folding takes for s
		"/daojia/token//getAccessToken",
		"//daojia//token/getAccessToken",
		"/daojia/token/getAccessToken/",
		"/daojia/token/getAccessToken//",
		"/daojia/./token/getAccessToken",
		"/daojia/token/./getAccessToken",
		"/daojia/x/../token/getAccessToken",
		"/daojia/serviceUser/../../v1/token/getAccessToken",
		"/daojia/token/getAccessToken/.",
		"/daojia/token%2FgetAccessToken",
		"/daojia/token/getAccess%54oken",
		"/daojia/token/getAccess%2554oken",
		"/daojia/token%5CgetAccessToken",
		"/daojia/token/getAccessToken;jsessionid=1",
		"/daojia/token;x=1/getAccessToken",
		"/daojia/token/getAccessToken.json",
		"/daojia/token/getAccessToken%20",
	}
	for _, s := range spellings {
		t.Run(s, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
			// As a caller could deliver it: the raw spelling, and its decoded form.
			req.URL.RawPath = s
			req.URL.Path, _ = url.PathUnescape(s)
			info := &reqinfo.Info{RequestID: "req-guard"}
			req = req.WithContext(reqinfo.With(req.Context(), info))
			rec := httptest.NewRecorder()
			relay.ServeHTTP(rec, req)
			e := decodeEnvelope(t, rec)
			if rec.Code != http.StatusNotFound || e.Code != "no_route" || e.RequestID != "req-guard" {
				t.Fatalf("answered %d %s, want 404 no_route as for the exact path", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	if all, leaked := p.tokenCalls("/api/v1/token/getAccessToken"); all != 0 || leaked != 0 {
		t.Fatalf("58到家's token endpoint was called %d times through the relay (%d with the accessToken)", all, leaked)
	}
	if n := env.sandbox.TokenFetches(); n != 0 {
		t.Fatalf("%d tokens fetched for calls the relay refuses", n)
	}

	// Paths that only look alike are relayed as before.
	rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
	if a := decodeAnswer(t, rec); rec.Code != 200 || a.Code != CodeOK {
		t.Fatalf("a genuine call after the refusals: %d %s", rec.Code, rec.Body)
	}
	rec = relayPost(t, relay, "/daojia/token/getAccessTokens", `{}`)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"code":`+fmt.Sprint(CodeNotFound)) {
		t.Fatalf("a path next to the token endpoint: %d %s, want 58到家's own 404", rec.Code, rec.Body)
	}
	if all, leaked := p.tokenCalls("/api/v1/token/getAccessToken"); all != 1 || leaked != 0 {
		t.Fatalf("token endpoint calls: %d (%d with an accessToken), want the client's own one fetch without", all, leaked)
	}
}

// The guard follows the configured token path, wherever 58到家 put it, and the base
// URL's own path.
func TestRelayTokenGuardFollowsTheConfiguredPath(t *testing.T) {
	p := &lenientPlatform{}
	env := newSandboxEnv(t, p.wrap("/gw/api/v1/auth/Token"))
	c := env.client(t, func(o *Options) {
		o.BaseURL += "/gw"
		o.TokenPath = "/api/{version}/auth/Token"
	})
	relay := c.Relay("/daojia/")
	for _, s := range []string{"/daojia/auth/Token", "/daojia/AUTH/token", "/daojia/auth/token/", "/daojia/auth/x/../token"} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		req.URL.Path = s
		rec := httptest.NewRecorder()
		relay.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || decodeEnvelope(t, rec).Code != "no_route" {
			t.Fatalf("%s: answered %d %s, want 404 no_route", s, rec.Code, rec.Body)
		}
	}
	if _, err := c.Call(context.Background(), "AUTH/TOKEN", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "token endpoint") {
		t.Fatalf("Call to the token endpoint: %v, want it refused", err)
	}
	if all, _ := p.tokenCalls("/gw/api/v1/auth/Token"); all != 0 {
		t.Fatalf("the token endpoint was reached %d times", all)
	}
}

// The relay works at any depth: a route mounted at /partners/daojia/ relays
// /partners/daojia/<path> to 58到家's <path>.
func TestRelayMountedDeeperThanOneSegment(t *testing.T) {
	env := newSandboxEnv(t, nil)
	relay := env.client(t, nil).Relay("/partners/daojia/")
	rec := relayPost(t, relay, "/partners/daojia/serviceUser/getAllServiceUser", `{}`)
	if a := decodeAnswer(t, rec); rec.Code != 200 || a.Code != CodeOK {
		t.Fatalf("deep relay: %d %s", rec.Code, rec.Body)
	}
	rec = relayPost(t, relay, "/partners/daojia/token/getAccessToken", `{}`)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("token endpoint through a deep relay: %d %s", rec.Code, rec.Body)
	}
}

// tokenLifetime makes the token endpoint state expiresIn as raw (JSON text), the
// sandbox's token itself staying good for its own 2h.
func tokenLifetime(raw string) func(http.Handler) http.Handler {
	expires := regexp.MustCompile(`"expiresIn":[^,}]*`)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/token/") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := expires.ReplaceAll(rec.Body.Bytes(), []byte(`"expiresIn":`+raw))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	}
}

// Whatever lifetime 58到家 states for a token (negative, zero, tiny, a string,
// absurdly large, beyond what time.Duration holds, not a number at all) the token
// is kept between MinTokenLifetime and MaxTokenLifetime (or the default TTL when the
// value is no number), and many calls share one fetch: never one fetch per call.
func TestTokenLifetimeIsClamped(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		wantLife time.Duration
	}{
		{"ordinary", `7200`, 2 * time.Hour},
		{"as a string", `"7200"`, 2 * time.Hour},
		{"fractional", `90.5`, 90500 * time.Millisecond},
		{"negative", `-7200`, MinTokenLifetime},
		{"zero", `0`, MinTokenLifetime},
		{"negative zero", `-0`, MinTokenLifetime},
		{"a millisecond", `0.001`, MinTokenLifetime},
		{"a second", `1`, MinTokenLifetime},
		{"a year", `31536000`, MaxTokenLifetime},
		{"overflows time.Duration", `9223372037`, MaxTokenLifetime},
		{"far beyond int64", `1e300`, MaxTokenLifetime},
		{"beyond float64", `1e400`, MaxTokenLifetime},
		{"huge as a string", `"99999999999999999999999"`, MaxTokenLifetime},
		{"Infinity as a string", `"Infinity"`, MaxTokenLifetime},
		{"negative huge", `-1e300`, MinTokenLifetime},
		{"NaN as a string", `"NaN"`, 3 * time.Hour},
		{"a word", `"soon"`, 3 * time.Hour},
		{"a duration string", `"2h"`, 3 * time.Hour},
		{"empty string", `""`, 3 * time.Hour},
		{"null", `null`, 3 * time.Hour},
		{"true", `true`, 3 * time.Hour},
		{"an object", `{"seconds":7200}`, 3 * time.Hour},
		{"an array", `[7200]`, 3 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSandboxEnv(t, tokenLifetime(tt.raw))
			c := env.client(t, func(o *Options) { o.DefaultTTL = 3 * time.Hour })
			relay := c.Relay("/daojia/")
			start := env.clock.Now()
			// 25 calls over 25 seconds, from several callers at once.
			for range 5 {
				var wg sync.WaitGroup
				for range 5 {
					wg.Go(func() {
						rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
						if a := decodeAnswer(t, rec); rec.Code != 200 || a.Code != CodeOK {
							t.Errorf("call answered %d %s", rec.Code, rec.Body)
						}
					})
				}
				wg.Wait()
				env.clock.Advance(5 * time.Second)
			}
			if n := env.sandbox.TokenFetches(); n != 1 {
				t.Fatalf("expiresIn %s: %d token fetches for 25 calls, want 1", tt.raw, n)
			}
			tok := c.local.Load()
			if tok == nil {
				t.Fatal("no token held")
			}
			if got := tok.expiresAt.Sub(start); got != tt.wantLife {
				t.Errorf("expiresIn %s: kept for %v, want %v", tt.raw, got, tt.wantLife)
			}
			if life := tok.refreshAt.Sub(start); life <= 0 || life > tok.expiresAt.Sub(start) {
				t.Errorf("expiresIn %s: refresh after %v of a %v life", tt.raw, life, tok.expiresAt.Sub(start))
			}
			// What the store shares with other instances is as sane.
			v, ok, err := env.store.Get(context.Background(), tokenKey(testKey))
			if err != nil || !ok {
				t.Fatalf("token not shared: %v %v", ok, err)
			}
			shared, ok := decodeStored(v)
			if !ok || !shared.expiresAt.Equal(tok.expiresAt.Truncate(time.Millisecond)) {
				t.Errorf("shared token %v expires %v, want %v", ok, shared.expiresAt, tok.expiresAt)
			}
		})
	}
}

func TestEndpointKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/api/v1/token/getAccessToken", "/api/v1/token/getAccessToken"},
		{"/api//v1///token/getAccessToken/", "/api/v1/token/getAccessToken"},
		{"/api/v1/x/../token/./getAccessToken", "/api/v1/token/getAccessToken"},
		{"/api/v1/../../../../token", "/token"},
		{"/api/v1/token%2FgetAccessToken", "/api/v1/token/getAccessToken"},
		{"/api/v1/token%252FgetAccessToken", "/api/v1/token/getAccessToken"},
		{"/api/v1/token\\getAccessToken", "/api/v1/token/getAccessToken"},
		{"/api/v1/x/..;/token;a=b/getAccessToken;jsessionid=1", "/api/v1/token/getAccessToken"},
		{"/api/v1/token/getAccessToken.json", "/api/v1/token/getAccessToken"},
		{"/api/v1/token/getAccessToken. ", "/api/v1/token/getAccessToken"},
		{"/api/v1/token/getAccessToken%zz", "/api/v1/token/getAccessToken%zz"},
		{"", "/"},
	}
	for _, tt := range tests {
		if got := endpointKey(tt.in); got != tt.want {
			t.Errorf("endpointKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The relay's hot path: a well-formed path is checked without a key of its own.
func TestTokenGuardAllocatesNothingForAWellFormedPath(t *testing.T) {
	g := newTokenGuard("", "v1", "/api/v1/token/getAccessToken")
	if n := testing.AllocsPerRun(100, func() { _ = g.isTokenEndpoint("serviceUser/getAllServiceUser") }); n != 0 {
		t.Fatalf("isTokenEndpoint allocates %v times, want 0", n)
	}
}

// The fast path and the full key always agree: whatever the input, a path is the
// token endpoint or not whichever way it is checked.
func FuzzTokenGuard(f *testing.F) {
	for _, s := range []string{"token/getAccessToken", "TOKEN/getaccesstoken", "token/getAccessTokens", "serviceUser/x", "a/../token/getAccessToken", "token%2FgetAccessToken"} {
		f.Add(s, "/api/{version}/token/getAccessToken", "")
		f.Add(s, "/oauth/token", "/gw")
	}
	f.Fuzz(func(t *testing.T, path, tokenPath, basePath string) {
		tokenPath = "/" + strings.ReplaceAll(tokenPath, "{version}", "v1")
		g := newTokenGuard(basePath, "v1", tokenPath)
		slow := strings.EqualFold(endpointKey(g.apiPath+path), g.tokenKey)
		if got := g.isTokenEndpoint(path); got != slow {
			t.Fatalf("path %q, token path %q, base %q: guard says %v, the full key %v", path, tokenPath, basePath, got, slow)
		}
	})
}

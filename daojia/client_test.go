package daojia

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/secret"
)

// upperMD5 is the 58到家 signature's outer step, written here again so the tests below
// check the client against their own arithmetic, not against Sign.
func upperMD5(s string) string {
	sum := md5.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// DESIGN.md's second test vector, as the bytes the client sends.
func TestCallSendsDesignVectorBody(t *testing.T) {
	const (
		token    = "64256A615F66CC8FBE38AFCFD26EA744"
		wantSign = "D00D9B214EBF79F7F5F4BE28AF7E8CE3"
		wantBody = `{"accessToken":"64256A615F66CC8FBE38AFCFD26EA744","serviceKey":"2801209652","format":"json",` +
			`"timestamp":"2016-01-10 10:00:00","sign":"D00D9B214EBF79F7F5F4BE28AF7E8CE3","daojiaJson":{"userId":"1"}}`
	)
	// The concatenation of the sign, parameters sorted by name, written out by hand.
	handmade := testSecret +
		"accessToken" + token +
		"daojiaJson" + `{"userId":"1"}` +
		"format" + "json" +
		"serviceKey" + testKey +
		"timestamp" + "2016-01-10 10:00:00" +
		testSecret
	if got := upperMD5(handmade); got != wantSign {
		t.Fatalf("md5 of the handmade string = %s, want DESIGN.md's %s", got, wantSign)
	}

	var got atomic.Pointer[string]
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := string(body)
		got.Store(&s)
		if r.URL.Path != "/api/v1/serviceUser/saveServiceUser" || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s %s (Content-Type %q)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		// Verify as a platform that knows nothing of this package would.
		var p struct {
			AccessToken, ServiceKey, Format, Timestamp, Sign string
			DaojiaJSON                                       json.RawMessage `json:"daojiaJson"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		recomputed := upperMD5(testSecret + "accessToken" + p.AccessToken + "daojiaJson" + string(p.DaojiaJSON) +
			"format" + p.Format + "serviceKey" + p.ServiceKey + "timestamp" + p.Timestamp + testSecret)
		if recomputed != p.Sign {
			t.Errorf("sign %s does not verify: recomputed %s", p.Sign, recomputed)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"code":0,"message":"success"}`)
	}))
	defer platform.Close()

	clock := newTestClock(time.Date(2016, 1, 10, 10, 0, 0, 0, time.FixedZone("CST", 8*3600)))
	store := newMemStore(clock.Now)
	seed := &cachedToken{token: token, expiresAt: clock.Now().Add(2 * time.Hour), refreshAt: clock.Now().Add(115 * time.Minute)}
	if err := store.Set(context.Background(), tokenKey(testKey), encodeStored(seed), time.Hour); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(Options{
		BaseURL: platform.URL, ServiceKey: testKey, ServiceSecret: secret.Secret(testSecret),
		Store: store, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Spaces and a newline in the caller's object: daojiaJson goes out compacted.
	resp, err := c.Call(context.Background(), "serviceUser/saveServiceUser", []byte("{ \"userId\" : \"1\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Code != "0" {
		t.Fatalf("answer %d code %q", resp.Status, resp.Code)
	}
	if b := got.Load(); b == nil || *b != wantBody {
		t.Fatalf("body sent:\n%v\nwant:\n%s", b, wantBody)
	}
}

func TestTokenRequestBody(t *testing.T) {
	const ts = "2016-01-10 10:00:00"
	wantSign := upperMD5(testSecret + "format" + "json" + "serviceKey" + testKey + "timestamp" + ts + testSecret)
	wantBody := `{"serviceKey":"2801209652","format":"json","timestamp":"2016-01-10 10:00:00","sign":"` + wantSign + `"}`
	var tokenCalls atomic.Int32
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/gateway/token/v1/get" {
			t.Errorf("token request went to %s", r.URL.Path)
		}
		if string(body) != wantBody {
			t.Errorf("token request body:\n%s\nwant:\n%s", body, wantBody)
		}
		tokenCalls.Add(1)
		_, _ = io.WriteString(w, `{"code":"0","message":"ok","data":{"accessToken":"T0K3N","expiresIn":7200}}`)
	}))
	defer platform.Close()
	clock := newTestClock(time.Date(2016, 1, 10, 2, 0, 0, 0, time.UTC))
	c, err := NewClient(Options{
		BaseURL: platform.URL + "/", ServiceKey: testKey, ServiceSecret: secret.Secret(testSecret),
		TokenPath: "/gateway/token/{version}/get", Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.Token(context.Background())
	if err != nil || tok != "T0K3N" || tokenCalls.Load() != 1 {
		t.Fatalf("Token = %q, %v after %d requests", tok, err, tokenCalls.Load())
	}
}

func TestTokenAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		answer    string
		wantToken string
		wantLife  time.Duration
		wantErr   string
	}{
		{"numeric code zero", 200, `{"code":0,"message":"ok","data":{"accessToken":"A1","expiresIn":7200}}`, "A1", 2 * time.Hour, ""},
		{"string code zero", 200, `{"code":"0","data":{"accessToken":"A2","expiresIn":"600"}}`, "A2", 10 * time.Minute, ""},
		{"expiresIn absent takes the default TTL", 200, `{"code":0,"data":{"accessToken":"A3"}}`, "A3", 3 * time.Hour, ""},
		{"non-zero code with 58到家's message", 200, `{"code":1,"message":"sign error"}`, "", 0, "HTTP 200, code 1: sign error"},
		{"message echoing the secret is redacted", 200, `{"code":"9","message":"bad secret testSecret123"}`, "", 0, "bad secret [redacted]"},
		{"no token", 200, `{"code":0,"data":{}}`, "", 0, "no accessToken"},
		{"HTTP error", 503, `busy`, "", 0, "HTTP 503"},
		{"not JSON", 200, `<html>`, "", 0, "not the expected JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			}))
			defer platform.Close()
			clock := newTestClock(time.Now())
			var fetches []bool
			c, err := NewClient(Options{
				BaseURL: platform.URL, ServiceKey: testKey, ServiceSecret: secret.Secret(testSecret),
				DefaultTTL: 3 * time.Hour, Now: clock.Now, OnTokenFetch: func(ok bool) { fetches = append(fetches, ok) },
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := c.Token(context.Background())
			if tt.wantErr != "" {
				var te *TokenError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &te) {
					t.Fatalf("err = %v, want a TokenError containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), testSecret) {
					t.Fatalf("error reveals the secret: %v", err)
				}
				if len(fetches) != 1 || fetches[0] {
					t.Fatalf("OnTokenFetch saw %v, want [false]", fetches)
				}
				return
			}
			if err != nil || tok != tt.wantToken {
				t.Fatalf("Token = %q, %v", tok, err)
			}
			if got := c.local.Load().expiresAt.Sub(clock.Now()); got != tt.wantLife {
				t.Errorf("lifetime %v, want %v", got, tt.wantLife)
			}
			if len(fetches) != 1 || !fetches[0] {
				t.Fatalf("OnTokenFetch saw %v, want [true]", fetches)
			}
		})
	}
}

func TestInvalidTokenAnswerRefetchesOnce(t *testing.T) {
	env := newSandboxEnv(t, nil)
	c := env.client(t, nil)
	ctx := context.Background()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env.sandbox.ExpireTokens()
	resp, err := c.Call(ctx, "serviceUser/getAllServiceUser", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != "0" {
		t.Fatalf("answer after the refetch: %s", resp.Body)
	}
	if n := env.sandbox.TokenFetches(); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}
	if ok, bad := env.signsOK.Load(), env.signsBad.Load(); ok != 4 || bad != 0 {
		t.Fatalf("%d requests verified independently and %d did not; want 4 and 0", ok, bad)
	}
	second, _ := c.Token(ctx)
	if second == first {
		t.Fatal("the refused token is still in use")
	}
	v, ok, _ := env.store.Get(ctx, tokenKey(testKey))
	if !ok || !strings.HasPrefix(v, second+"|") {
		t.Fatalf("shared token is not the new one")
	}
}

func TestHTTP401RefetchesOnce(t *testing.T) {
	var refusals atomic.Int32
	env := newSandboxEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "serviceUser") && refusals.Add(1) == 1 {
				http.Error(w, "token expired", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := env.client(t, nil)
	resp, err := c.Call(context.Background(), "serviceUser/getAllServiceUser", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Code != "0" {
		t.Fatalf("answer %d %s", resp.Status, resp.Body)
	}
	if n := env.sandbox.TokenFetches(); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}
}

func TestSecondRefusalIsReturnedNotRetried(t *testing.T) {
	var calls atomic.Int32
	env := newSandboxEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "serviceUser") {
				calls.Add(1)
				_, _ = io.WriteString(w, `{"code":"2","message":"accessToken invalid"}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := env.client(t, nil)
	resp, err := c.Call(context.Background(), "serviceUser/getAllServiceUser", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != "2" || calls.Load() != 2 || env.sandbox.TokenFetches() != 2 {
		t.Fatalf("code %q after %d calls and %d fetches; want 2, 2 calls, 2 fetches", resp.Code, calls.Load(), env.sandbox.TokenFetches())
	}
}

func TestRefusedTokenDropKeepsANewerSharedToken(t *testing.T) {
	env := newSandboxEnv(t, nil)
	c := env.client(t, nil)
	ctx := context.Background()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	old := c.local.Load()
	// Another instance has meanwhile replaced the shared token.
	newer := "NEWER|" + "9999999999999|9999999999998"
	_ = env.store.Set(ctx, tokenKey(testKey), newer, time.Hour)
	c.dropToken(ctx, old)
	if c.local.Load() != nil {
		t.Fatal("local copy kept after the drop")
	}
	if v, _, _ := env.store.Get(ctx, tokenKey(testKey)); v != newer {
		t.Fatalf("shared token %q, want the newer one kept", v)
	}
}

func TestLocalCopyRefreshesBeforeExpiry(t *testing.T) {
	env := newSandboxEnv(t, nil)
	c := env.client(t, nil) // sandbox tokens live 2h; RefreshBefore is 5m
	ctx := context.Background()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	storeCalls := env.store.calls.Load()
	env.clock.Advance(114 * time.Minute)
	for range 100 {
		if tok, _ := c.Token(ctx); tok != first {
			t.Fatal("token changed while the local copy was good")
		}
	}
	if n := env.store.calls.Load() - storeCalls; n != 0 {
		t.Fatalf("a cached token cost %d store calls", n)
	}
	env.clock.Advance(2 * time.Minute) // 1h56m: past expiresAt - RefreshBefore
	second, err := c.Token(ctx)
	if err != nil || second == first {
		t.Fatalf("Token = %q, %v; want a new token", second, err)
	}
	if n := env.sandbox.TokenFetches(); n != 2 {
		t.Fatalf("%d token fetches, want 2", n)
	}
}

func TestFailedRefreshKeepsTheUnexpiredToken(t *testing.T) {
	var down atomic.Bool
	var refused atomic.Int32
	env := newSandboxEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				refused.Add(1)
				http.Error(w, "maintenance", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	c := env.client(t, nil)
	ctx := context.Background()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	env.clock.Advance(117 * time.Minute) // due for refresh, 3 minutes left
	for range 10 {
		if tok, err := c.Token(ctx); err != nil || tok != first {
			t.Fatalf("Token = %q, %v; want the current token while it lasts", tok, err)
		}
	}
	if n := refused.Load(); n != 1 {
		t.Fatalf("%d refresh attempts within 30s, want 1", n)
	}
	env.clock.Advance(31 * time.Second)
	if tok, err := c.Token(ctx); err != nil || tok != first || refused.Load() != 2 {
		t.Fatalf("Token = %q, %v after %d attempts; want a second attempt and the current token", tok, err, refused.Load())
	}
	env.clock.Advance(4 * time.Minute) // expired
	if _, err := c.Token(ctx); err == nil {
		t.Fatal("an expired token was used")
	}
}

func TestCallRefusesBadInput(t *testing.T) {
	env := newSandboxEnv(t, nil)
	c := env.client(t, nil)
	tests := []struct{ name, path, body string }{
		{"path climbing out", "../token", `{}`},
		{"empty path", "", `{}`},
		{"array body", "serviceUser/getAllServiceUser", `[1]`},
		{"malformed body", "serviceUser/getAllServiceUser", `{"a":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Call(context.Background(), tt.path, []byte(tt.body)); !errors.Is(err, errBadInput) {
				t.Fatalf("err = %v, want bad input", err)
			}
		})
	}
	if env.sandbox.TokenFetches() != 0 {
		t.Fatal("bad input reached 58到家")
	}
}

func TestNewClientChecksOptions(t *testing.T) {
	good := Options{BaseURL: "https://sandboxapi.daojia.com", ServiceKey: testKey, ServiceSecret: secret.Secret(testSecret)}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"relative base URL", func(o *Options) { o.BaseURL = "sandboxapi.daojia.com" }, "base URL"},
		{"base URL with a query", func(o *Options) { o.BaseURL = "https://x.example/?a=1" }, "query"},
		{"no service key", func(o *Options) { o.ServiceKey = "" }, "service key"},
		{"no secret", func(o *Options) { o.ServiceSecret = "" }, "service secret"},
		{"version with a slash", func(o *Options) { o.Version = "v1/../x" }, "version"},
		{"token path not absolute", func(o *Options) { o.TokenPath = "token" }, "token path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			_, err := NewClient(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one about %s", err, tt.want)
			}
		})
	}
	if _, err := NewClient(good); err != nil {
		t.Fatal(err)
	}
}

func TestStoredTokenRoundTrip(t *testing.T) {
	in := &cachedToken{token: "A|B", expiresAt: time.UnixMilli(1700000000123), refreshAt: time.UnixMilli(1700000000000)}
	out, ok := decodeStored(encodeStored(in))
	if !ok || out.token != in.token || !out.expiresAt.Equal(in.expiresAt) || !out.refreshAt.Equal(in.refreshAt) {
		t.Fatalf("decoded %+v", out)
	}
	for _, bad := range []string{"", "token", "token|1", "|1|2", "t|x|2"} {
		if _, ok := decodeStored(bad); ok {
			t.Errorf("decodeStored(%q) accepted", bad)
		}
	}
}

func BenchmarkBuildRequest(b *testing.B) {
	c, err := NewClient(Options{BaseURL: "http://127.0.0.1", ServiceKey: testKey, ServiceSecret: secret.Secret(testSecret)})
	if err != nil {
		b.Fatal(err)
	}
	daojiaJSON := []byte(`{"userId":"1","userName":"张XX","userPhone":"15888888888","userAge":18,"userSex":1,"userRemark":"精通java,PHP","userStatus":1,"createTime":"2015-01-01 12:00:00"}`)
	b.ReportAllocs()
	for b.Loop() {
		c.callBody("64256A615F66CC8FBE38AFCFD26EA744", daojiaJSON)
	}
}

func TestSignedBody(t *testing.T) {
	at := time.Date(2016, 1, 10, 2, 0, 0, 0, time.UTC)
	t.Run("DESIGN.md vector with an accessToken", func(t *testing.T) {
		got, err := SignedBody([]byte(`{"userId": "1"}`), testKey, "64256A615F66CC8FBE38AFCFD26EA744", testSecret, at)
		want := `{"accessToken":"64256A615F66CC8FBE38AFCFD26EA744","serviceKey":"2801209652","format":"json",` +
			`"timestamp":"2016-01-10 10:00:00","sign":"D00D9B214EBF79F7F5F4BE28AF7E8CE3","daojiaJson":{"userId":"1"}}`
		if err != nil || string(got) != want {
			t.Fatalf("SignedBody = %s, %v\nwant %s", got, err, want)
		}
	})
	t.Run("callback without an accessToken", func(t *testing.T) {
		got, err := SignedBody([]byte(`{"orderId":"o1"}`), testKey, "", testSecret, at)
		sign := upperMD5(testSecret + "daojiaJson" + `{"orderId":"o1"}` + "format" + "json" + "serviceKey" + testKey +
			"timestamp" + "2016-01-10 10:00:00" + testSecret)
		want := `{"serviceKey":"2801209652","format":"json","timestamp":"2016-01-10 10:00:00","sign":"` + sign + `","daojiaJson":{"orderId":"o1"}}`
		if err != nil || string(got) != want {
			t.Fatalf("SignedBody = %s, %v\nwant %s", got, err, want)
		}
	})
	t.Run("not an object", func(t *testing.T) {
		if _, err := SignedBody([]byte(`[1]`), testKey, "", testSecret, at); err == nil {
			t.Fatal("an array was signed")
		}
	})
}

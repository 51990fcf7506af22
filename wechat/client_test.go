package wechat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// kinds are the errors every failure must match one of.
var kinds = []error{ErrInvalidCode, ErrRateLimited, ErrUpstream, ErrUnreachable, ErrTimeout, ErrUnavailable}

// checkKind fails t unless err matches want and no other kind.
func checkKind(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	for _, k := range kinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(%q, %v) = %v", err, k, got)
		}
	}
}

func TestCode2SessionAgainstTheSandbox(t *testing.T) {
	sb, srv := startSandbox(t)
	c := newTestClient(t, srv.URL, ClientOptions{})

	t.Run("a fresh code logs in", func(t *testing.T) {
		code := mint(t, sb, SandboxCode{OpenID: "o-alice", UnionID: "u-alice"})
		s, err := c.Code2Session(bg, code)
		if err != nil {
			t.Fatal(err)
		}
		if s.OpenID != "o-alice" || s.UnionID != "u-alice" || len(s.SessionKey.Reveal()) != 24 || !s.Expires.IsZero() {
			t.Errorf("session = %+v (session_key %d bytes)", s, len(s.SessionKey.Reveal()))
		}
	})
	t.Run("no unionid unless WeChat gives one", func(t *testing.T) {
		s, err := c.Code2Session(bg, mint(t, sb, SandboxCode{User: "bob"}))
		if err != nil {
			t.Fatal(err)
		}
		if s.OpenID != DeriveOpenID(testAppID, "bob") || s.UnionID != "" {
			t.Errorf("session = %+v", s)
		}
	})

	used := mint(t, sb, SandboxCode{})
	if _, err := c.Code2Session(bg, used); err != nil {
		t.Fatal(err)
	}
	wrongAppID := newTestClient(t, srv.URL, ClientOptions{AppID: "wx99999999aaaaaaaa"})
	wrongSecret := newTestClient(t, srv.URL, ClientOptions{Secret: "sgtest-not-the-secret"})
	for _, tc := range []struct {
		name    string
		client  *Client
		code    string
		kind    error
		errcode int
	}{
		{"unknown code", c, "0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d", ErrInvalidCode, 40029},
		{"code used before", c, used, ErrInvalidCode, 40163},
		{"wrong appid", wrongAppID, mint(t, sb, SandboxCode{}), ErrUpstream, 40013},
		{"wrong secret", wrongSecret, mint(t, sb, SandboxCode{}), ErrUpstream, 40125},
		{"WeChat rate limits", c, mint(t, sb, SandboxCode{Errcode: 45011}), ErrRateLimited, 45011},
		{"WeChat is busy", c, mint(t, sb, SandboxCode{Errcode: -1}), ErrUpstream, -1},
		{"a high-risk user", c, mint(t, sb, SandboxCode{Errcode: 40226}), ErrUpstream, 40226},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.Code2Session(bg, tc.code)
			checkKind(t, err, tc.kind)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Errcode != tc.errcode {
				t.Fatalf("err = %v, want errcode %d", err, tc.errcode)
			}
			if !strings.Contains(ae.Errmsg, "rid: ") {
				t.Errorf("errmsg %q lost WeChat's rid", ae.Errmsg)
			}
		})
	}
}

// answering is a WeChat that answers every call with status and body, and counts
// the calls.
func answering(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestCode2SessionReadsAnswers(t *testing.T) {
	const code = "081aBcDeFgHiJk2XyZ0mNoPqRs3aBcDe"
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   error // nil: success
		want   Session
	}{
		{"success without errcode", 200, `{"session_key":"k1Q==","openid":"o-1"}`, nil, Session{OpenID: "o-1", SessionKey: "k1Q=="}},
		{"success with errcode 0 and unionid", 200, `{"openid":"o-1","unionid":"u-1","session_key":"k1Q==","errcode":0,"errmsg":"ok"}`, nil,
			Session{OpenID: "o-1", UnionID: "u-1", SessionKey: "k1Q=="}},
		{"errcode 40029", 200, `{"errcode":40029,"errmsg":"invalid code, rid: 1"}`, ErrInvalidCode, Session{}},
		{"errcode 40163", 200, `{"errcode":40163,"errmsg":"code been used, rid: 2"}`, ErrInvalidCode, Session{}},
		{"errcode 45011", 200, `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`, ErrRateLimited, Session{}},
		{"errcode -1", 200, `{"errcode":-1,"errmsg":"system error"}`, ErrUpstream, Session{}},
		{"errcode 40125", 200, `{"errcode":40125,"errmsg":"invalid appsecret"}`, ErrUpstream, Session{}},
		{"errcode as a string", 200, `{"errcode":"40029","errmsg":"invalid code"}`, ErrInvalidCode, Session{}},
		{"errcode not a number", 200, `{"errcode":"soon","openid":"o","session_key":"k"}`, ErrUpstream, Session{}},
		{"errcode with openid", 200, `{"errcode":40029,"openid":"o","session_key":"k"}`, ErrInvalidCode, Session{}},
		{"no openid", 200, `{"session_key":"k"}`, ErrUpstream, Session{}},
		{"no session_key", 200, `{"openid":"o"}`, ErrUpstream, Session{}},
		{"openid with a newline", 200, `{"openid":"o\r\nX-Evil: 1","session_key":"k"}`, ErrUpstream, Session{}},
		{"unionid too long", 200, `{"openid":"o","unionid":"` + strings.Repeat("u", 129) + `","session_key":"k"}`, ErrUpstream, Session{}},
		{"openid a number", 200, `{"openid":42,"session_key":"k"}`, ErrUpstream, Session{}},
		{"garbage", 200, "\x00\xffnot json", ErrUpstream, Session{}},
		{"an HTML page", 200, "<html><body>502 Bad Gateway</body></html>", ErrUpstream, Session{}},
		{"empty", 200, "", ErrUpstream, Session{}},
		{"null", 200, "null", ErrUpstream, Session{}},
		{"an array", 200, "[]", ErrUpstream, Session{}},
		{"HTTP 500 with a good body", 500, `{"openid":"o","session_key":"k"}`, ErrUpstream, Session{}},
		{"HTTP 404", 404, "not found", ErrUpstream, Session{}},
		{"larger than 64 KB", 200, `{"openid":"o","session_key":"k","pad":"` + strings.Repeat("x", 64<<10) + `"}`, ErrUpstream, Session{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := answering(t, tc.status, tc.body)
			s, err := newTestClient(t, srv.URL, ClientOptions{}).Code2Session(bg, code)
			if calls.Load() != 1 {
				t.Errorf("%d calls, want 1: a code is good once, so nothing is retried", calls.Load())
			}
			if tc.kind == nil {
				if err != nil || s != tc.want {
					t.Fatalf("got %+v, %v; want %+v", s, err, tc.want)
				}
				return
			}
			checkKind(t, err, tc.kind)
		})
	}
}

func TestCode2SessionSendsWhatWeChatWants(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		io.WriteString(w, `{"openid":"o","session_key":"k"}`)
	}))
	defer srv.Close()
	if _, err := newTestClient(t, srv.URL+"/", ClientOptions{}).Code2Session(bg, "the-code"); err != nil {
		t.Fatal(err)
	}
	q := got.URL.Query()
	if got.Method != "GET" || got.URL.Path != "/sns/jscode2session" || q.Get("appid") != testAppID || q.Get("secret") != testSecret ||
		q.Get("js_code") != "the-code" || q.Get("grant_type") != "authorization_code" || len(q) != 4 {
		t.Errorf("request: %s %s", got.Method, got.URL.Path) // never the query: it holds the secret
	}
	// The body that keeps net/http from resending the request is never sent.
	if got.ContentLength != 0 || len(got.TransferEncoding) != 0 {
		t.Errorf("a GET with a body: Content-Length %d, Transfer-Encoding %q", got.ContentLength, got.TransferEncoding)
	}
}

func TestCode2SessionRefusesMalformedCodesWithoutACall(t *testing.T) {
	srv, calls := answering(t, 200, `{"openid":"o","session_key":"k"}`)
	c := newTestClient(t, srv.URL, ClientOptions{})
	for name, code := range map[string]string{
		"empty":           "",
		"129 bytes":       strings.Repeat("a", 129),
		"a space":         "abc def",
		"a newline":       "abc\ndef",
		"a NUL":           "abc\x00",
		"not ASCII":       "代码",
		"a DEL character": "abc\x7f",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Code2Session(bg, code)
			checkKind(t, err, ErrInvalidCode)
		})
	}
	if calls.Load() != 0 {
		t.Errorf("%d calls for codes that were never worth sending", calls.Load())
	}
	if _, err := c.Code2Session(bg, strings.Repeat("a", 128)); err != nil {
		t.Errorf("a code of 128 bytes: %v", err)
	}
}

func TestCode2SessionWhenWeChatIsSlow(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, `{"openid":"o",`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slowBody.Close)

	for _, tc := range []struct {
		name    string
		url     string
		timeout time.Duration
		ctx     time.Duration // the caller's own deadline; 0: none
	}{
		{"no headers within Timeout", hang.URL, 200 * time.Millisecond, 0},
		{"headers, then no body within Timeout", slowBody.URL, 200 * time.Millisecond, 0},
		{"the caller's deadline is sooner", hang.URL, 5 * time.Second, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, tc.url, ClientOptions{Timeout: tc.timeout})
			ctx := bg
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			start := time.Now()
			_, err := c.Code2Session(ctx, "a-code")
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v for a 200ms bound", took)
			}
			checkKind(t, err, ErrTimeout)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v is not context.DeadlineExceeded", err)
			}
		})
	}
}

func TestCode2SessionWhenWeChatIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	// hangUp reads the request and closes the connection without a word.
	var hangUps atomic.Int64
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangUps.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(hangUp.Close)

	for _, tc := range []struct{ name, url string }{
		{"connection refused", "http://" + closedAddr},
		{"the connection is closed without an answer", hangUp.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newTestClient(t, tc.url, ClientOptions{Timeout: 2 * time.Second}).Code2Session(bg, "a-code")
			checkKind(t, err, ErrUnreachable)
		})
	}
	if n := hangUps.Load(); n != 1 {
		t.Errorf("WeChat saw %d calls, want 1", n)
	}

	t.Run("the caller gives up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg)
		cancel()
		_, err := newTestClient(t, hangUp.URL, ClientOptions{}).Code2Session(ctx, "a-code")
		checkKind(t, err, ErrUnreachable)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v is not context.Canceled", err)
		}
	})
}

// A connection that served one call and breaks on the next before any answer must
// not get the call resent: the code may have been spent by the first attempt.
func TestCode2SessionIsNotResentOnAReusedConnection(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			io.WriteString(w, `{"openid":"o","session_key":"k"}`)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, ClientOptions{})
	if _, err := c.Code2Session(bg, "first"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Code2Session(bg, "second")
	checkKind(t, err, ErrUnreachable)
	if n := calls.Load(); n != 2 {
		t.Errorf("WeChat saw %d calls, want 2: the second code was sent twice", n)
	}
}

// A redirect would take the secret in the URL to another host.
func TestCode2SessionFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL, ClientOptions{}).Code2Session(bg, "a-code")
	checkKind(t, err, ErrUpstream)
	if elsewhere.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestNewClientChecksOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    ClientOptions
	}{
		{"no appid", ClientOptions{Secret: testSecret}},
		{"no secret", ClientOptions{AppID: testAppID}},
		{"an api base that is no URL", ClientOptions{AppID: testAppID, Secret: testSecret, APIBase: "api.weixin.qq.com"}},
		{"an api base with a query", ClientOptions{AppID: testAppID, Secret: testSecret, APIBase: "https://x.example/?a=1"}},
		{"an api base of ftp", ClientOptions{AppID: testAppID, Secret: testSecret, APIBase: "ftp://x.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClient(tc.o); err == nil {
				t.Error("accepted")
			} else if strings.Contains(err.Error(), testSecret) {
				t.Error("the error holds the secret")
			}
		})
	}
	c, err := NewClient(ClientOptions{AppID: testAppID, Secret: testSecret})
	if err != nil || c.endpoint != "https://api.weixin.qq.com/sns/jscode2session" || c.timeout != 5*time.Second {
		t.Errorf("defaults: %v, %+v", err, c)
	}
}

// Every failure and its log line, scanned for what must never be in them: the
// secret and the code (both in the request URL, which net/http's errors quote)
// and the session_key, also when WeChat or a proxy echoes the URL back.
func TestNothingSecretInErrorsOrLogs(t *testing.T) {
	sb, sandbox := startSandbox(t)
	logger, logs := newTestLogger()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A WeChat that echoes what it was sent, in its errmsg.
		fmt.Fprintf(w, `{"errcode":-1,"errmsg":"system error for %s?%s"}`, r.URL.Path, r.URL.RawQuery)
	}))
	defer echo.Close()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		fmt.Fprintf(w, "<p>could not reach %s</p>", r.URL.RequestURI())
	}))
	defer page.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	defer close(release)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()

	var texts []string
	var sessionKeys []string
	var codes []string
	call := func(base string, code string, o ClientOptions) {
		o.Logger = logger
		codes = append(codes, code)
		s, err := newTestClient(t, base, o).Code2Session(bg, code)
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		} else {
			sessionKeys = append(sessionKeys, s.SessionKey.Reveal())
			texts = append(texts, fmt.Sprintf("%v %+v %#v", s, s, s))
		}
	}
	call(sandbox.URL, mint(t, sb, SandboxCode{}), ClientOptions{})
	used := mint(t, sb, SandboxCode{})
	call(sandbox.URL, used, ClientOptions{})
	call(sandbox.URL, used, ClientOptions{})
	call(sandbox.URL, "sgtest-unknown-code-Rb11", ClientOptions{})
	call(sandbox.URL, mint(t, sb, SandboxCode{}), ClientOptions{Secret: "sgtest-wrong-secret-Nv40"})
	call(sandbox.URL, mint(t, sb, SandboxCode{Errcode: 45011}), ClientOptions{})
	call(echo.URL, "sgtest-echoed-code-Pa55", ClientOptions{})
	call(page.URL, "sgtest-paged-code-Ut70", ClientOptions{})
	call(down, "sgtest-refused-code-Lk32", ClientOptions{})
	call(hang.URL, "sgtest-hung-code-Wq08", ClientOptions{Timeout: 100 * time.Millisecond})
	call(sandbox.URL, "sgtest bad code", ClientOptions{})

	all := strings.Join(texts, "\n") + "\n" + logs.String()
	needles := append([]string{testSecret, "sgtest-wrong-secret-Nv40"}, codes...)
	needles = append(needles, sessionKeys...)
	for _, n := range needles {
		if n != "" && strings.Contains(all, n) {
			t.Errorf("errors or logs hold %q", n)
		}
	}
	if !strings.Contains(all, "secret=[redacted]") {
		t.Error("the echoed query is not in the error: the test no longer tries what it means to")
	}
	if len(sessionKeys) != 2 || strings.Count(logs.String(), "\n") < len(codes) {
		t.Fatalf("%d successes, logs:\n%d lines", len(sessionKeys), strings.Count(logs.String(), "\n"))
	}
	if t.Failed() {
		t.Log("scanned errors and logs: see the test for what they hold") // never print them: the secret would fail TestMain
	}
}

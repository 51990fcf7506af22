package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorsMapToTheContract(t *testing.T) {
	p, _ := newTestPool(t, Options{Targets: []string{"http://127.0.0.1:1"}})
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		err      error
		wantCode string
		retry    bool // a dial error: the upstream never saw the request
	}{
		{"connection refused", dialRefused, "upstream_error", true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, "upstream_timeout", true},
		{"connection reset while reading", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, "upstream_error", false},
		{"malformed response", fmt.Errorf("net/http: %w", io.ErrUnexpectedEOF), "upstream_error", false},
		{"no response headers in time", &responseTimeoutError{after: time.Second}, "upstream_timeout", false},
		{"request deadline", fmt.Errorf("proxy: %w", context.DeadlineExceeded), "upstream_timeout", false},
		{"wrapped dial error", fmt.Errorf("round trip: %w", dialRefused), "upstream_error", true},
		{"other", errors.New("boom"), "upstream_error", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.classify(tc.err).Code; got != tc.wantCode {
				t.Errorf("classify = %q, want %q", got, tc.wantCode)
			}
			if got := isDialError(tc.err); got != tc.retry {
				t.Errorf("isDialError = %v, want %v", got, tc.retry)
			}
		})
	}
}

// A request the gateway accepted but cannot send is the caller's fault, whatever makes
// it unsendable: it is answered 400 bad_request, reaches no target, is not retried, and
// never counts as a passive-health failure. With MaxFails 1, one miscounted request
// would eject the only target and answer every other caller 503.
func TestUnsendableRequestsNeverCountAgainstTheTarget(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *http.Request)
		about string // a word the message must contain
	}{
		{"method with a space", func(r *http.Request) { r.Method = "GET /x HTTP/1.1" }, "method"},
		{"method with a brace", func(r *http.Request) { r.Method = "BAD{METHOD}" }, "method"},
		{"method with a control byte", func(r *http.Request) { r.Method = "GET\x7f" }, "method"},
		{"method that is not ASCII", func(r *http.Request) { r.Method = "ÄÖÜ" }, "method"},
		{"header name with a space", func(r *http.Request) { r.Header["X Bad"] = []string{"1"} }, "header"},
		{"header name with a colon", func(r *http.Request) { r.Header["X:Bad"] = []string{"1"} }, "header"},
		{"header value with a NUL", func(r *http.Request) { r.Header["X-Bad"] = []string{"a\x00b"} }, "X-Bad"},
		{"header value with CR LF", func(r *http.Request) { r.Header["X-Bad"] = []string{"a\r\nX-Injected: 1"} }, "X-Bad"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alive := newUpstream(t, "alive")
			p, logs := newTestPool(t, Options{
				Targets: []string{alive.URL}, Retries: 2, MaxFails: 1, EjectFor: time.Hour,
			})
			h := withInfo(p, "client-a")
			for i := range 3 {
				req := httptest.NewRequest(http.MethodGet, "/things", nil)
				tc.edit(req)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				resp := rec.Result()
				body := readBody(t, resp)
				resp.Body = io.NopCloser(strings.NewReader(body))
				wantEnvelope(t, resp, http.StatusBadRequest, "bad_request")
				var env envelope
				_ = json.Unmarshal([]byte(body), &env)
				if !strings.Contains(env.Message, tc.about) {
					t.Errorf("request %d: message %q does not name the %s", i, env.Message, tc.about)
				}
				if strings.Contains(body, "\x00") || strings.Contains(body, "X-Injected") {
					t.Errorf("request %d: the answer echoes the caller's bytes: %q", i, body)
				}
			}
			if n := alive.hits.Load(); n != 0 {
				t.Fatalf("the target received %d unsendable requests", n)
			}
			if !p.usable(p.targets[0]) || p.targets[0].fails.Load() != 0 {
				t.Fatalf("the target is ejected (or counts %d failures) after requests that were the caller's fault", p.targets[0].fails.Load())
			}
			if n := logs.count("upstream target ejected", alive.URL); n != 0 {
				t.Fatalf("ejection logged %d times", n)
			}
			if n := logs.count("upstream request failed", "bad_request"); n != 0 {
				t.Errorf("the caller's fault was logged %d times as an upstream failure", n)
			}

			// Another caller is served by the same, still usable, target.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/things", nil))
			if rec.Code != http.StatusOK || rec.Body.String() != "alive" {
				t.Fatalf("a good request afterwards: %d %q, want 200 from the target", rec.Code, rec.Body)
			}
		})
	}
}

// The other side of the line: the upstream's own failures still count, so a target
// that drops connections is ejected.
func TestUpstreamFailuresStillEject(t *testing.T) {
	dropper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(dropper.Close)
	p, logs := newTestPool(t, Options{Targets: []string{dropper.URL}, MaxFails: 2, EjectFor: time.Hour})
	front := frontFor(t, p, "")
	for range 2 {
		wantEnvelope(t, get(t, front.URL+"/x"), http.StatusBadGateway, "upstream_error")
	}
	if p.usable(p.targets[0]) {
		t.Fatal("a target that dropped MaxFails connections in a row is still usable")
	}
	if n := logs.count("upstream target ejected", dropper.URL); n != 1 {
		t.Errorf("ejection logged %d times, want once", n)
	}
	wantEnvelope(t, get(t, front.URL+"/x"), http.StatusServiceUnavailable, "upstream_unavailable")
}

// refusedBeforeDialing tells a request net/http refuses by itself from one it would
// send, without ever connecting: the safety net for refusals unsendable does not know.
func TestRefusedBeforeDialing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	base := "http://" + ln.Addr().String()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		req     func() *http.Request
		refused bool
	}{
		{"good GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, base+"/x", nil) }, false},
		{"good POST with a body", func() *http.Request {
			return httptest.NewRequest(http.MethodPost, base+"/x", strings.NewReader("body"))
		}, false},
		{"good GET whose caller has gone", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, base+"/x", nil).WithContext(cancelled)
		}, false},
		{"method that is not a token", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, base+"/x", nil)
			r.Method = "BAD METHOD"
			return r
		}, true},
		{"header value with a NUL", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, base+"/x", nil)
			r.Header.Set("X-Bad", "a\x00b")
			return r
		}, true},
		{"scheme net/http cannot speak", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, base+"/x", nil)
			r.URL.Scheme = "gopher"
			return r
		}, true},
		{"no host", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, base+"/x", nil)
			r.URL.Host = ""
			return r
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			req.RequestURI = "" // a client request
			if got := refusedBeforeDialing(req); got != tc.refused {
				t.Errorf("refusedBeforeDialing = %v, want %v", got, tc.refused)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the probe connected %d times; it must never touch the network", n)
	}
}

// requestFault blames the request only when the request is at fault: failures that
// came from the network are the upstream's, whatever the request looked like.
func TestRequestFault(t *testing.T) {
	good := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/x", nil)
	good.RequestURI = ""
	bad := good.Clone(context.Background())
	bad.Method = "GET\x00"
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name    string
		req     *http.Request
		err     error
		blamed  bool
		message string
	}{
		{"connection refused", good, dial, false, ""},
		{"connection reset", good, reset, false, ""},
		{"malformed response", good, fmt.Errorf("net/http: %w", io.ErrUnexpectedEOF), false, ""},
		{"response timeout", good, &responseTimeoutError{after: time.Second}, false, ""},
		{"invalid method", bad, errors.New(`net/http: invalid method "GET\x00"`), true, "method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			re := requestFault(tc.req, tc.err)
			if (re != nil) != tc.blamed {
				t.Fatalf("requestFault = %v, want blamed %v", re, tc.blamed)
			}
			if re == nil {
				return
			}
			if !errors.Is(re, tc.err) {
				t.Error("the requestError does not wrap the Transport's error")
			}
			p, _ := newTestPool(t, Options{Targets: []string{"http://127.0.0.1:1"}})
			e := p.classify(re)
			if e.Status != http.StatusBadRequest || e.Code != "bad_request" || !strings.Contains(e.Message, tc.message) {
				t.Errorf("classify = %d %s %q", e.Status, e.Code, e.Message)
			}
		})
	}
}

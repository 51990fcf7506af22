package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/reqinfo"
)

const testRequestID = "req-test-1"

// newTestPool returns a Pool over its own Transport, logging into the returned buffer.
func newTestPool(t testing.TB, o Options) (*Pool, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if o.Name == "" {
		o.Name = "backend"
	}
	if o.Transport == nil {
		tr := NewTransport(TransportOptions{})
		t.Cleanup(tr.CloseIdleConnections)
		o.Transport = tr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, logs
}

// frontFor serves p the way the gateway does: behind middleware that has filled in
// reqinfo. client is the authenticated client id ("" for an anonymous caller).
func frontFor(t testing.TB, p http.Handler, client string) *httptest.Server {
	t.Helper()
	front := httptest.NewServer(withInfo(p, client))
	t.Cleanup(front.Close)
	return front
}

func withInfo(h http.Handler, client string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqinfo.Info{RequestID: testRequestID, Client: client}
		h.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
	})
}

// upstream starts a target that counts its requests and answers with its name.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		io.WriteString(w, name)
	}))
	t.Cleanup(u.Close)
	return u
}

// deadTarget returns the URL of a port nothing listens on any more, so dialing it is
// refused at once.
func deadTarget(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

type envelope struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// wantEnvelope checks that resp is the gateway's JSON error with status and code, that
// it carries the request id, and that its message leaks no address.
func wantEnvelope(t testing.TB, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body %q is not the JSON envelope: %v", body, err)
	}
	if env.Code != code {
		t.Errorf("code = %q, want %q", env.Code, code)
	}
	if env.RequestID != testRequestID {
		t.Errorf("request_id = %q, want %q", env.RequestID, testRequestID)
	}
	if strings.Contains(env.Message, "127.0.0.1") || strings.Contains(env.Message, "http://") {
		t.Errorf("message %q leaks an internal address", env.Message)
	}
}

func get(t testing.TB, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// eventually polls cond every few milliseconds until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logBuffer collects log output from handler goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many log lines have msg and mention target.
func (l *logBuffer) count(msg, target string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(l.buf.String(), "\n") {
		if strings.Contains(line, `"msg":"`+msg+`"`) && strings.Contains(line, target) {
			n++
		}
	}
	return n
}

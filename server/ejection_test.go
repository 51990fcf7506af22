package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Answer is what one raw HTTP/2 exchange produced.
type h2Answer struct {
	status int
	header http.Header
	body   []byte
}

// h2Raw sends one request over a fresh TLS connection speaking HTTP/2 frame by frame
// (golang.org/x/net/http2's Framer and hpack), so the pseudo-headers go out exactly
// as given, which net/http's own client would refuse to send. The request has no
// body; hdr are extra (name, value) pairs, names in lower case.
func h2Raw(t *testing.T, addr, method, path string, hdr ...string) h2Answer {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	fields := []string{":method", method, ":scheme", "https", ":authority", addr, ":path", path}
	for _, kv := range [][]string{fields, hdr} {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	a := h2Answer{header: http.Header{}}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer to %q %q: %v", method, path, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			for _, hf := range f.Fields {
				if hf.Name == ":status" {
					a.status, _ = strconv.Atoi(hf.Value)
					continue
				}
				a.header.Add(hf.Name, hf.Value)
			}
			if f.StreamEnded() {
				return a
			}
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			a.body = append(a.body, f.Data()...)
			if f.StreamEnded() {
				return a
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("%q %q: the gateway reset the stream (%v) instead of answering", method, path, f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("%q %q: the gateway sent GOAWAY (%v) instead of answering", method, path, f.ErrCode)
		}
	}
}

// countingUpstream records the method and path of every request that reaches it.
type countingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	u := &countingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.Path)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *countingUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// wantEnvelopeAnswer checks that an answer is the gateway's JSON envelope with status
// and code, carrying a request id, and returns its message.
func wantEnvelopeAnswer(t *testing.T, what string, status int, header http.Header, body []byte, wantStatus int, wantCode string) string {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d (body %s), want %d", what, status, body, wantStatus)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want JSON", what, ct)
	}
	if header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, header.Get("X-Content-Type-Options"))
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("%s: body %q is not the JSON envelope: %v", what, body, err)
	}
	if env.Code != wantCode || env.RequestID == "" || env.Message == "" {
		t.Fatalf("%s: envelope %+v, want code %q with a message and a request id", what, env, wantCode)
	}
	if header.Get("X-Request-Id") != "" && header.Get("X-Request-Id") != env.RequestID {
		t.Errorf("%s: X-Request-Id %q but the envelope says %q", what, header.Get("X-Request-Id"), env.RequestID)
	}
	return env.Message
}

// withOpenRoute adds a public route that takes any method on /open/** to a config
// from baseConfig.
func withOpenRoute(cfg string) string {
	return strings.Replace(cfg, "routes:\n", "routes:\n  - {name: open, match: \"* /open/**\", upstream: backend, public: true}\n", 1)
}

// HTTP/2 lets a caller put anything in :method; net/http's client refuses to send a
// method that is not a token ("net/http: invalid method"). Such a request is the
// caller's fault: it must be answered 400 bad_request and must not count as a
// passive-health failure, or a few of them eject the only target and every client
// gets 503 for the ejection window.
func TestInvalidMethodsDoNotEjectTheUpstream(t *testing.T) {
	up := newCountingUpstream(t)
	// One target, the default passive health (max_fails 3, eject_for 30s), and a
	// public route that takes any method, so nothing before the proxy refuses them.
	g := startGateway(t, withOpenRoute(baseConfig(up.URL, "")))
	addr := g.srv.Addr().String()
	methods := []string{
		"GET /open/x HTTP/1.1", // a request line in the method
		"BAD{METHOD}",
		"PO ST",
		"G\"T",
		"ÄÖÜ",
		"GET,POST",
	}
	for _, m := range methods {
		a := h2Raw(t, addr, m, "/open/things")
		msg := wantEnvelopeAnswer(t, fmt.Sprintf("method %q", m), a.status, a.header, a.body, http.StatusBadRequest, "bad_request")
		if !strings.Contains(strings.ToLower(msg), "method") {
			t.Errorf("method %q: message %q does not say what is wrong", m, msg)
		}
	}
	if got := up.requests(); len(got) != 0 {
		t.Fatalf("the upstream received %q; requests with invalid methods must never reach it", got)
	}

	// Another client, after more invalid requests than max_fails: served.
	resp, body := g.do(t, "GET", "/open/things", "", nil)
	if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` {
		t.Fatalf("a normal request after the invalid ones: %d %s, want 200 from the upstream (was the target ejected?)", resp.StatusCode, body)
	}
	if got := up.requests(); len(got) != 1 || got[0] != "GET /open/things" {
		t.Fatalf("the upstream received %q, want just the normal GET", got)
	}
	// The same over HTTP/2 frames, so the connection kind is not what makes it work.
	if a := h2Raw(t, addr, "GET", "/open/things"); a.status != http.StatusOK || string(a.body) != `{"ok":true}` {
		t.Fatalf("a normal HTTP/2 request after the invalid ones: %d %s", a.status, a.body)
	}
	if n := len(g.logs.lines(t, "upstream target ejected")); n != 0 {
		t.Fatalf("the target was ejected %d times by requests that were the caller's fault", n)
	}
	if status, body := g.readyz(t); status != http.StatusOK {
		t.Fatalf("/readyz %d %s after requests that were the caller's fault, want 200", status, body)
	}
	for _, l := range g.logs.lines(t, "request") {
		if l["path"] == "/open/things" && l["status"] == float64(http.StatusBadRequest) && l["error"] != "bad_request" {
			t.Errorf("refused request logged as %v", l)
		}
	}
}

// A caller that sends its body slower than the upstream's response_timeout (but fast
// enough for the body read bounds) makes the wait for the response time out. The
// upstream never had the whole request, so that timeout is not its failure: before
// the fix, three such uploads from a stranger on a public route ejected the only
// target and answered every client 503.
func TestSlowUploadsDoNotEjectTheUpstream(t *testing.T) {
	// The upstream reads the whole body before it answers, as frameworks do; the
	// route's response_timeout is 300ms.
	up := newRecordingUpstream(t)
	g := startGateway(t, withOpenRoute(baseConfig(up.URL, "")))
	addr := g.srv.Addr().String()
	var wg sync.WaitGroup
	for i := range 4 { // more than passive.max_fails (3)
		wg.Go(func() {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST /open/upload HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\n")
			go func() {
				for range 8 { // 8 bytes over 0.8s: never idle, always late
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Errorf("slow upload %d: %v", i, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantEnvelopeAnswer(t, fmt.Sprintf("slow upload %d", i), resp.StatusCode, resp.Header, body, http.StatusGatewayTimeout, "upstream_timeout")
		})
	}
	wg.Wait()
	resp, body := g.do(t, "GET", "/open/things", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a normal request after slow uploads: %d %s, want 200 (the target was blamed)", resp.StatusCode, body)
	}
	if n := len(g.logs.lines(t, "upstream target ejected")); n != 0 {
		t.Fatalf("the target was ejected %d times by callers' slow uploads", n)
	}
}

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/internal/testsecret"
)

// Broken dependencies, end to end: a live gateway in front of a backend that
// misbehaves at the TCP and HTTP level, and in front of a real redis-server that is
// down, slow or restarted. For each fault: what the caller gets (an envelope, or a
// response that cannot be mistaken for a whole one; never a hang), what /readyz says,
// what the log says, and that the gateway serves again by itself once the
// dependency is back. The 58到家 side is in daojia/broken_test.go; the suite-wide
// secret check (secrets_test.go) covers every log and answer here.

// hangBound is how long any answer may take before the test calls it a hang. The
// timeouts configured below are a fraction of it.
const hangBound = 5 * time.Second

// backend is a hand-written HTTP/1.1 upstream on a raw TCP listener, so it can break
// the protocol in ways net/http's server never would. Its behaviour (mode) can be
// switched while it runs; "ok" answers {"caller":"<X-Caller>"} on a keep-alive
// connection.
type backend struct {
	ln   net.Listener
	mode atomic.Value // string
	done chan struct{}
	wg   sync.WaitGroup
	// released counts connections the gateway closed while this backend was
	// holding them (stall-after-headers, never-answers).
	released atomic.Int64
}

func newBackend(t *testing.T, mode string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, done: make(chan struct{})}
	b.mode.Store(mode)
	b.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() {
				// Idle keep-alive connections stay in the gateway's pool after the
				// test; closing them at the end lets serve return.
				go func() {
					<-b.done
					conn.Close()
				}()
				b.serve(conn)
			})
		}
	})
	t.Cleanup(func() {
		close(b.done)
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *backend) url() string     { return "http://" + b.ln.Addr().String() }
func (b *backend) set(mode string) { b.mode.Store(mode) }

// holdUntilClosed keeps conn open, reading and discarding, until the gateway closes
// it (counted as released) or the test ends.
func (b *backend) holdUntilClosed(conn net.Conn) {
	if _, err := io.Copy(io.Discard, conn); err == nil || !errors.Is(err, net.ErrClosed) {
		b.released.Add(1)
	}
}

func (b *backend) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		mode := b.mode.Load().(string)
		if mode == "deaf" {
			// Accepts the connection and never reads or answers.
			select {
			case <-b.done:
			case <-time.After(time.Minute):
			}
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		// The mode of the moment the request arrived, not of when this pooled
		// connection started waiting for it.
		if mode = b.mode.Load().(string); mode == "deaf" {
			mode = "silent"
		}
		caller := req.Header.Get("X-Caller")
		if mode == "mixed" {
			// Every kind of broken answer among good ones, chosen by the caller's
			// number so each caller knows what it asked for.
			var n int
			fmt.Sscanf(caller, "c-%d", &n)
			mode = []string{"ok", "short-length", "short-chunked", "long-length", "ok"}[n%5]
		}
		body := fmt.Sprintf(`{"caller":%q}`, caller)
		switch mode {
		case "ok":
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			continue
		case "reset":
			// RST instead of FIN: SO_LINGER 0, then close.
			_ = conn.(*net.TCPConn).SetLinger(0)
			return
		case "half-close":
			_ = conn.(*net.TCPConn).CloseWrite()
			b.holdUntilClosed(conn)
			return
		case "silent":
			// Reads the request, never answers.
			b.holdUntilClosed(conn)
			return
		case "garbage":
			io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n\x00\x01binary")
			return
		case "html":
			page := "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
			fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s", len(page), page)
			continue
		case "short-length":
			// Content-Length promises more than is sent, then the connection ends.
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body)+100, body[:len(body)-2])
			return
		case "short-chunked":
			// A chunked body that stops before its last chunk.
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(body)-2, body[:len(body)-2])
			return
		case "long-length":
			// Content-Length promises less than is sent, and what follows looks like
			// the answer to the next request on this connection: a pooled
			// connection reused after it would hand another caller this answer.
			smuggled := `{"caller":"smuggled"}`
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"+
				"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				len(body)-2, body, len(smuggled), smuggled)
			continue
		case "stall-after-headers":
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body)+100, body[:5])
			b.holdUntilClosed(conn)
			return
		default:
			panic("backend: unknown mode " + mode)
		}
	}
}

// brokenConfig is a gateway in front of one backend: short timeouts, and a passive
// ejection short enough that recovery can be watched.
func brokenConfig(upstreamURL string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, roles: [provider]}
roles:
  app: {allow: ["* /api/**"]}
  provider: {allow: ["* /api/**"], mask: true}
upstreams:
  backend: {targets: [%q], response_timeout: 500ms, dial_timeout: 500ms, passive: {max_fails: 3, eject_for: 1s}}
routes:
  - {name: api, match: "* /api/**", upstream: backend}
masking: {fields: [phone], detect: [cn_mobile]}
`, auth.HashKey(appKey), auth.HashKey(providerKey), upstreamURL)
}

// outcome is what a caller got: a status and body, or an error reading either.
type outcome struct {
	status  int
	header  http.Header
	body    []byte
	err     error // from the round trip or from reading the body
	elapsed time.Duration
}

// call sends GET /api/orders as caller with key through client, with a client-side
// timeout of hangBound: an answer that takes longer is a hang.
func call(client *http.Client, base, key, caller string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/orders", nil)
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("X-Caller", caller)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return outcome{status: resp.StatusCode, header: resp.Header, body: b, err: err, elapsed: time.Since(start)}
}

func (g *testGateway) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(g.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// eventually retries check every 100ms until it returns "" or within is over, and
// fails with its last word.
func eventually(t *testing.T, within time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, within, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logLine returns the first log line with msg whose request_id is id (any id when
// id is ""), or nil.
func (g *testGateway) logLine(t *testing.T, msg, id string) map[string]any {
	t.Helper()
	for _, l := range g.logs.lines(t, msg) {
		if id == "" || l["request_id"] == id {
			return l
		}
	}
	return nil
}

// A backend that breaks the exchange before a response starts gets the caller an
// envelope: 502 when it answered wrongly or went away, 504 when it stayed silent past
// response_timeout. One warning names the request; /readyz stays 200 (a backend down
// is not this instance's fault, and every instance would see the same); and as soon
// as the backend behaves, requests succeed again, after at most passive.eject_for.
func TestBrokenUpstreamAnswersAnEnvelope(t *testing.T) {
	be := newBackend(t, "ok")
	g := startGateway(t, brokenConfig(be.url()))
	tests := []struct {
		mode       string
		name       string
		wantStatus int
		wantCode   string
	}{
		{"reset", "resets the connection after reading the request", 502, "upstream_error"},
		{"half-close", "closes its side without answering", 502, "upstream_error"},
		{"garbage", "answers bytes that are not HTTP", 502, "upstream_error"},
		{"silent", "reads the request and never answers", 504, "upstream_timeout"},
		{"deaf", "accepts the connection and never reads it", 504, "upstream_timeout"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be.set(tt.mode)
			o := call(g.client, g.url, appKey, fmt.Sprintf("c-%d", i))
			if o.err != nil || o.status != tt.wantStatus || code(t, o.body) != tt.wantCode {
				t.Fatalf("got %d %s (err %v), want %d %s", o.status, o.body, o.err, tt.wantStatus, tt.wantCode)
			}
			var env envelope
			_ = json.Unmarshal(o.body, &env)
			rid := o.header.Get("X-Request-Id")
			if env.RequestID != rid || env.Message == "" || !strings.HasPrefix(o.header.Get("Content-Type"), "application/json") {
				t.Errorf("envelope %+v, Content-Type %q", env, o.header.Get("Content-Type"))
			}
			if strings.Contains(env.Message, be.ln.Addr().String()) {
				t.Errorf("the envelope names the target: %q", env.Message)
			}
			if l := g.logLine(t, "upstream request failed", rid); l == nil || l["code"] != tt.wantCode || l["level"] != "WARN" {
				t.Errorf("log line %v, want a warning with code %s", l, tt.wantCode)
			}
			if l := g.logLine(t, "request", rid); l == nil || l["status"] != float64(tt.wantStatus) || l["error"] != tt.wantCode {
				t.Errorf("access log %v", l)
			}
			if st, body := g.readyz(t); st != 200 {
				t.Errorf("/readyz = %d %s with one upstream failing, want 200", st, body)
			}

			be.set("ok")
			caller := fmt.Sprintf("recovered-%d", i)
			eventually(t, 10*time.Second, "serving again once the backend behaves", func() string {
				o := call(g.client, g.url, appKey, caller)
				if o.err != nil || o.status != 200 || string(o.body) != `{"caller":"`+caller+`"}` {
					return fmt.Sprintf("%d %s %v", o.status, o.body, o.err)
				}
				return ""
			})
		})
	}
}

// A body that breaks off after the response has started cannot become an envelope:
// the status is already on its way. The gateway then aborts the response (HTTP/1.1:
// the connection closes before Content-Length or the last chunk; HTTP/2: the stream
// is reset), so the caller can never take a cut body for a whole one. A caller whose
// answer is masked gets 502 instead, since masking reads the body before anything is
// sent.
func TestTruncatedUpstreamBodyIsNeverPassedOffAsWhole(t *testing.T) {
	be := newBackend(t, "ok")
	g := startGateway(t, brokenConfig(be.url()))
	h1 := http1Client(t)
	for i, mode := range []string{"short-length", "short-chunked"} {
		for _, c := range []struct {
			name   string
			client *http.Client
			key    string
		}{{"HTTP/2", g.client, appKey}, {"HTTP/1.1", h1, appKey}, {"masked, HTTP/2", g.client, providerKey}} {
			t.Run(mode+", "+c.name, func(t *testing.T) {
				be.set(mode)
				caller := fmt.Sprintf("c-%d", i)
				o := call(c.client, g.url, c.key, caller)
				if o.elapsed > hangBound-time.Second {
					t.Fatalf("took %v", o.elapsed)
				}
				switch {
				case c.key == providerKey:
					if o.err != nil || o.status != 502 || code(t, o.body) != "upstream_error" {
						t.Fatalf("masked caller got %d %s (err %v), want 502 upstream_error", o.status, o.body, o.err)
					}
				case o.err == nil:
					t.Fatalf("caller read %d %q to the end without an error: a cut body passed for a whole one", o.status, o.body)
				case json.Valid(o.body):
					t.Fatalf("caller read valid JSON %q before the error", o.body)
				}
				// The body copy failure is logged (at debug: most such failures are
				// callers hanging up, which the access log shows).
				if !strings.Contains(g.logs.buf.String(), "ReverseProxy read error during body copy") && c.key != providerKey {
					t.Errorf("no log line for the cut body")
				}
				// And the access log has the request, marked aborted.
				if c.key != providerKey {
					found := false
					for _, l := range g.logs.lines(t, "request") {
						found = found || l["error"] == "aborted"
					}
					if !found {
						t.Errorf("no access-log line with error aborted")
					}
				}
				be.set("ok")
				eventually(t, 10*time.Second, "serving again", func() string {
					o := call(c.client, g.url, c.key, "after")
					if o.err != nil || o.status != 200 || string(o.body) != `{"caller":"after"}` {
						return fmt.Sprintf("%d %s %v", o.status, o.body, o.err)
					}
					return ""
				})
			})
		}
	}
}

// http1Client speaks HTTP/1.1 to the gateway over TLS, reusing connections.
func http1Client(t *testing.T) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: scanningTransport{tr}}
}

// Many callers at once, through pooled connections on both sides, against a backend
// that cuts every other answer short or sends more than it announced, the excess
// shaped as the answer to the next request on that connection. Whatever a caller
// gets is its own: its own 200 body, an envelope, or an error; never another
// caller's body and never the smuggled one.
func TestTruncatedAnswersNeverReachAnotherCaller(t *testing.T) {
	be := newBackend(t, "mixed")
	g := startGateway(t, brokenConfig(be.url()))
	clients := []struct {
		name   string
		client *http.Client
		key    string
	}{{"HTTP/2", g.client, appKey}, {"HTTP/1.1", http1Client(t), appKey}, {"masked", g.client, providerKey}}
	// net/http's Transport reports the excess bytes of a long-length answer through
	// the standard log package ("Unsolicited response received on idle HTTP
	// channel") and drops the connection; keep those lines out of the test output.
	var stdlog syncBuffer
	prev := log.Writer()
	log.SetOutput(&stdlog)
	defer log.SetOutput(prev)
	const callers = 150
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wrong  []string
	)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for n := range callers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c := clients[n%len(clients)]
			caller := fmt.Sprintf("c-%d", n)
			o := call(c.client, g.url, c.key, caller)
			var kind string
			switch {
			case o.elapsed >= hangBound:
				kind = "hang"
			case o.err != nil:
				kind = "cut"
			case o.status == 200 && string(o.body) == `{"caller":"`+caller+`"}`:
				kind = "200"
			case o.status == 200:
				kind = "200 as announced"
			default:
				kind = fmt.Sprintf("%d %s", o.status, code(t, o.body))
			}
			// A cut body is a prefix of the caller's own; a backend that announced
			// less than it sent gets exactly what it announced, also a prefix.
			if o.status == 200 && !strings.HasPrefix(`{"caller":"`+caller+`"}`, string(o.body)) {
				kind = "foreign"
			}
			mu.Lock()
			counts[c.name+" "+kind]++
			if kind == "foreign" || kind == "hang" {
				wrong = append(wrong, fmt.Sprintf("%s %s got %d %q (%v)", c.name, caller, o.status, o.body, o.err))
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("outcomes: %v; connections dropped for unsolicited bytes: %d", counts, strings.Count(stdlog.buf.String(), "Unsolicited response"))
	for _, w := range wrong {
		t.Error(w)
	}
	if counts["HTTP/2 200"] == 0 || counts["HTTP/1.1 200"] == 0 || counts["masked 200"] == 0 {
		t.Errorf("too few whole answers to judge: %v", counts)
	}
	if counts["HTTP/2 cut"]+counts["HTTP/1.1 cut"] == 0 {
		t.Errorf("no cut answers: the backend did not break anything")
	}
}

// A backend that sends its headers and part of the body, then nothing: the caller
// has the status, and no envelope can follow. There is no bound on how long a body
// may pause (a server-sent-events stream pauses for minutes), so the caller's own
// timeout ends it; the gateway then lets go of the backend connection at once and
// serves the next request. (docs/reliability.md, "Open": an idle-body limit per
// upstream belongs in proxy/.)
func TestUpstreamStallingAfterHeadersIsReleasedWhenTheCallerLeaves(t *testing.T) {
	be := newBackend(t, "stall-after-headers")
	g := startGateway(t, brokenConfig(be.url()))
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/2", g.client}, {"HTTP/1.1", http1Client(t)}} {
		t.Run(c.name, func(t *testing.T) {
			be.set("stall-after-headers")
			before := be.released.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond) // 3 × response_timeout
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/api/orders", nil)
			req.Header.Set("X-Api-Key", appKey)
			resp, err := c.client.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("a stalled body was read to the end")
			}
			eventually(t, hangBound, "the backend connection released after the caller left", func() string {
				if be.released.Load() == before {
					return "still held"
				}
				return ""
			})
			be.set("ok")
			if o := call(c.client, g.url, appKey, "next"); o.err != nil || o.status != 200 || string(o.body) != `{"caller":"next"}` {
				t.Fatalf("next request: %d %s %v", o.status, o.body, o.err)
			}
		})
	}
}

// redisWithPassword starts a real redis-server that requires testsecret.RedisPassword,
// and returns it with a function that sets the password again (after a Restart, which
// starts a fresh server).
func redisWithPassword(t *testing.T) (*testredis.Server, func()) {
	t.Helper()
	rs := testredis.Start(t)
	protect := func() {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		if err := c.ConfigSet(context.Background(), "requirepass", testsecret.RedisPassword).Err(); err != nil {
			t.Fatalf("CONFIG SET requirepass: %v", err)
		}
	}
	protect()
	return rs, protect
}

// redisGatewayConfig is signedConfig with Redis (300ms timeout, the password), a
// generous ip rate limit (so the limiter's Redis fallback runs), the relay to
// platformURL.
func redisGatewayConfig(upURL, platformURL, redisAddr string) string {
	cfg := signedConfig(upURL, platformURL, redisAddr)
	cfg = strings.Replace(cfg, "timeout: 300ms}", fmt.Sprintf("timeout: 300ms, password: %q}", testsecret.RedisPassword), 1)
	return cfg + "rate_limits: [{key: ip, rate: 1000/s, burst: 1000}]\n"
}

// redisProbe is what a gateway does with Redis at one moment: a signed call (needs
// a nonce), an API-key call (needs none), a relay call (token shared in Redis), and
// /readyz.
type redisProbe struct {
	signed, apiKey, relay int
	signedCode            string
	ready                 int
	took                  time.Duration // the slowest of the three calls
}

func probeRedis(t *testing.T, g *testGateway, nonce string) redisProbe {
	t.Helper()
	var p redisProbe
	body := `{"status":"done"}`
	timed := func(f func()) {
		start := time.Now()
		f()
		p.took = max(p.took, time.Since(start))
	}
	timed(func() {
		resp, out := g.do(t, "PUT", "/api/orders/1/status", partnerKey, strings.NewReader(body),
			signedHeaders(t, "PUT", "/api/orders/1/status", body, nonce, time.Now())...)
		p.signed, p.signedCode = resp.StatusCode, code(t, out)
	})
	timed(func() {
		resp, _ := g.do(t, "GET", "/api/services", appKey, nil)
		p.apiKey = resp.StatusCode
	})
	timed(func() {
		resp, _ := g.do(t, "POST", "/daojia/serviceUser/getAllServiceUser", appKey, strings.NewReader(`{}`))
		p.relay = resp.StatusCode
	})
	p.ready, _ = g.readyz(t)
	return p
}

// wantRedisDown checks the gateway's answers while Redis cannot be used: signed
// routes fail closed with 503 state_unavailable, everything else serves, /readyz is
// 503, and nothing waits on Redis for long.
func wantRedisDown(t *testing.T, p redisProbe) {
	t.Helper()
	if p.signed != 503 || p.signedCode != "state_unavailable" || p.apiKey != 200 || p.relay != 200 || p.ready != 503 {
		t.Fatalf("with Redis unusable: signed %d %s, API key %d, relay %d, /readyz %d; want 503 state_unavailable, 200, 200, 503",
			p.signed, p.signedCode, p.apiKey, p.relay, p.ready)
	}
	if p.took > hangBound {
		t.Fatalf("a call took %v with Redis unusable", p.took)
	}
}

// waitRedisBack polls until the gateway uses Redis again: /readyz 200 and a signed
// call accepted, then refused as a replay (so the nonce really went to Redis).
func waitRedisBack(t *testing.T, g *testGateway, what string) {
	t.Helper()
	n := 0
	eventually(t, 15*time.Second, what, func() string {
		n++
		nonce := fmt.Sprintf("back-%s-%04d", strings.ReplaceAll(what, " ", "-"), n)
		p := probeRedis(t, g, nonce)
		if p.ready != 200 || p.signed != 200 || p.apiKey != 200 || p.relay != 200 {
			return fmt.Sprintf("%+v", p)
		}
		if again := probeRedis(t, g, nonce); again.signed != 401 || again.signedCode != "replayed" {
			return fmt.Sprintf("replay answered %d %s", again.signed, again.signedCode)
		}
		return ""
	})
}

// startRedisGateway starts a gateway with Redis at redisAddr, in front of an
// upstream that answers ok and a 58到家 sandbox.
func startRedisGateway(t *testing.T, redisAddr string) *testGateway {
	t.Helper()
	up := okUpstream(t)
	platform := httptest.NewServer(daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"}))
	t.Cleanup(platform.Close)
	return startGateway(t, redisGatewayConfig(up.URL, platform.URL, redisAddr))
}

// Redis down when the gateway starts: it starts anyway, not ready, failing closed on
// signed routes only; once Redis comes up on its address, it is ready and uses it,
// with no restart.
func TestRedisDownAtStart(t *testing.T) {
	rs, protect := redisWithPassword(t)
	rs.Stop()
	g := startRedisGateway(t, rs.Addr)
	if st, body := g.readyz(t); st != 503 || !strings.Contains(body, "redis unreachable") {
		t.Fatalf("/readyz with Redis down at start = %d %s", st, body)
	}
	wantRedisDown(t, probeRedis(t, g, "down-at-start-1"))
	if l := g.logLine(t, "request", ""); l == nil {
		t.Fatal("no access log")
	}
	wantLogged(t, g, "state_unavailable", "shared state unavailable; fetching the 58到家 accessToken for this instance only", "rate limiting without Redis")

	rs.Restart()
	protect()
	waitRedisBack(t, g, "Redis started")
}

// wantLogged checks that an access-log line carries errCode and that each message
// was logged.
func wantLogged(t *testing.T, g *testGateway, errCode string, msgs ...string) {
	t.Helper()
	found := false
	for _, l := range g.logs.lines(t, "request") {
		if l["error"] == errCode {
			found = true
		}
	}
	if !found {
		t.Errorf("no access-log line with error %s", errCode)
	}
	for _, m := range msgs {
		if len(g.logs.lines(t, m)) == 0 {
			t.Errorf("nothing logged as %q", m)
		}
	}
}

// Redis slower than redis.timeout (every command held by CLIENT PAUSE): calls give
// up at the timeout rather than wait for Redis, signed routes answer 503, /readyz
// says 503, and when Redis answers again so does the gateway.
func TestRedisSlowerThanItsTimeout(t *testing.T) {
	rs, _ := redisWithPassword(t)
	g := startRedisGateway(t, rs.Addr)
	waitRedisBack(t, g, "Redis up")

	const pause = 4 * time.Second
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Password: testsecret.RedisPassword, Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	start := time.Now()
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	p := probeRedis(t, g, "slow-redis-1")
	if time.Since(start) >= pause {
		t.Fatalf("the gateway waited out Redis's %v pause instead of its 300ms timeout", pause)
	}
	wantRedisDown(t, p)
	wantLogged(t, g, "state_unavailable")
	waitRedisBack(t, g, "Redis answering again")
}

// Redis stopped while serving, then started again on the same address (empty, as a
// restart without persistence is): the gateway fails closed meanwhile and goes back
// to Redis by itself.
func TestRedisRestartedOnTheSameAddress(t *testing.T) {
	rs, protect := redisWithPassword(t)
	g := startRedisGateway(t, rs.Addr)
	waitRedisBack(t, g, "Redis up")
	const nonce = "before-the-restart-1"
	if p := probeRedis(t, g, nonce); p.signed != 200 {
		t.Fatalf("signed call before the restart: %+v", p)
	}

	rs.Stop()
	wantRedisDown(t, probeRedis(t, g, "while-stopped-1"))
	wantLogged(t, g, "state_unavailable", "rate limiting without Redis")

	rs.Restart()
	protect()
	waitRedisBack(t, g, "Redis restarted")
	// The restarted Redis is empty: the nonce used before is forgotten, so that
	// request could be replayed while its timestamp is within auth.timestamp_skew.
	// docs/security.md says so and asks for persistence on the Redis.
	if p := probeRedis(t, g, nonce); p.signed != 200 {
		t.Fatalf("a nonce from before an empty restart: %+v (security.md says it is forgotten)", p)
	}
}

// A backend that sends its headers and part of the body, then nothing: the gateway
// cuts the response at the upstream's read_timeout (nginx's proxy_read_timeout), so
// the caller learns at once that the answer is incomplete instead of waiting for its
// own timeout, and the backend connection is let go.
func TestUpstreamBodyStallIsCutAtReadTimeout(t *testing.T) {
	be := newBackend(t, "stall-after-headers")
	cfg := strings.Replace(brokenConfig(be.url()), "response_timeout: 500ms,", "response_timeout: 500ms, read_timeout: 300ms,", 1)
	g := startGateway(t, cfg)
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/2", g.client}, {"HTTP/1.1", http1Client(t)}} {
		t.Run(c.name, func(t *testing.T) {
			be.set("stall-after-headers")
			before := be.released.Load()
			o := call(c.client, g.url, appKey, "stalled")
			if o.err == nil {
				t.Fatalf("a stalled body was read to the end: %d %q", o.status, o.body)
			}
			if o.elapsed > hangBound-time.Second {
				t.Fatalf("the caller waited %v for a body stalled past read_timeout 300ms", o.elapsed)
			}
			eventually(t, hangBound, "the backend connection released", func() string {
				if be.released.Load() == before {
					return "still held"
				}
				return ""
			})
			if !strings.Contains(g.logs.buf.String(), "upstream response body stalled; cutting it") {
				t.Error("no log line for the stalled body")
			}
			be.set("ok")
			if o := call(c.client, g.url, appKey, "next"); o.err != nil || o.status != 200 || string(o.body) != `{"caller":"next"}` {
				t.Fatalf("next request: %d %s %v", o.status, o.body, o.err)
			}
		})
	}
}

package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/signgate/signgate/auth"
)

// wsUpstream is a real WebSocket server (x/net/websocket) that echoes every message
// on /api/live and /api/ops-live, whole, and remembers the handshake headers it was
// sent.
type wsUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newWSUpstream(t *testing.T) *wsUpstream {
	u := &wsUpstream{}
	echo := websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(ws, &msg) != nil || websocket.Message.Send(ws, msg) != nil {
				return
			}
		}
	})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "live") {
			echo.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *wsUpstream) handshakes() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.headers...)
}

// wsConfig puts a gateway with two websocket routes in front of upstreamURL, with
// TLS (wss://, as wx.connectSocket requires) or without (tls is "off").
func wsConfig(upstreamURL, tls, readTimeout, auditFile string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", shutdown_timeout: 5s}
tls: {mode: %s}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, roles: [provider]}
  - {id: ops-console, api_key_sha256: %q, roles: [ops]}
roles:
  resident_app: {allow: ["GET /api/live", "GET /api/ping"]}
  provider: {allow: ["GET /api/live"], mask: true}
  ops: {allow: ["GET /api/live", "GET /api/ops-live"], unmask: true}
upstreams: {backend: {targets: [%q], read_timeout: %s}}
routes:
  - {name: live, match: "GET /api/live", upstream: backend, websocket: true}
  - {name: ops-live, match: "GET /api/ops-live", upstream: backend, websocket: true}
  - {name: api, match: "* /api/**", upstream: backend}
masking: {fields: [phone]}
log: {audit_file: %q}
`, tls, auth.HashKey(appKey), auth.HashKey(providerKey), auth.HashKey(opsKey), upstreamURL, readTimeout, auditFile)
}

// dialWS opens a WebSocket through the gateway as the mini-program's wx.connectSocket
// would: wss, an Origin, and the API key as a header.
func dialWS(t *testing.T, g *testGateway, path, key string) *websocket.Conn {
	t.Helper()
	scheme := "wss://"
	if g.srv.cfg.TLS.Mode == "off" {
		scheme = "ws://"
	}
	cfg, err := websocket.NewConfig(scheme+g.srv.Addr().String()+path, "https://servicewechat.com")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true}
	cfg.Header = http.Header{"X-Api-Key": {key}}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// echoes sends msg and reads it back.
func echoes(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	_ = ws.SetDeadline(time.Now().Add(5 * time.Second))
	if err := websocket.Message.Send(ws, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		t.Fatalf("receive: %v", err)
	}
	if got != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// waitClosed waits until the gateway has closed ws, and fails if it has not after
// five seconds.
func waitClosed(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var msg string
	err := websocket.Message.Receive(ws, &msg)
	if err == nil {
		t.Fatalf("received %q, want the tunnel closed", msg)
	}
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		t.Fatal("the tunnel is still open after 5s")
	}
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("after 5s: %s", what)
}

func wsHandshake(path, key string, hdr ...string) []byte {
	return request("GET", path, key, append([]string{"Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Origin", "https://servicewechat.com"}, hdr...)...)
}

func TestWebSocketTunnel(t *testing.T) {
	up := newWSUpstream(t)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	g := startGateway(t, wsConfig(up.URL, "self_signed", "60s", auditFile))

	ws := dialWS(t, g, "/api/live", appKey)
	for _, msg := range []string{"hello", "订单 2026112300012 已接單", strings.Repeat("x", 70_000) /* several reads and writes */} {
		echoes(t, ws, msg)
	}
	h := up.handshakes()[0]
	if h.Get("X-Signgate-Client") != "property-miniapp" || h.Get("X-Api-Key") != "" || h.Get("X-Request-Id") == "" {
		t.Errorf("upstream saw client %q, key %q, request id %q; want the client's id, no key, an id",
			h.Get("X-Signgate-Client"), h.Get("X-Api-Key"), h.Get("X-Request-Id"))
	}
	if m := metricsText(t, g); !strings.Contains(m, `signgate_websocket_tunnels{route="live"} 1`) {
		t.Errorf("metrics lack one open tunnel on live:\n%s", grepLines(m, "websocket"))
	}

	ws.Close()
	waitFor(t, "an access line for the tunnel", func() bool { return len(g.logs.lines(t, "request")) > 0 })
	line := g.logs.lines(t, "request")[0]
	if line["status"] != float64(101) || line["route"] != "live" || line["client"] != "property-miniapp" {
		t.Errorf("access line %v, want status 101 on route live for property-miniapp", line)
	}
	waitFor(t, "the tunnel gauge back at 0", func() bool {
		return strings.Contains(metricsText(t, g), `signgate_websocket_tunnels{route="live"} 0`)
	})

	// An unmask role gets its tunnel, and an audit line once it closes.
	ops := dialWS(t, g, "/api/ops-live", opsKey)
	echoes(t, ops, "13812345678")
	ops.Close()
	waitFor(t, "an audit line for the ops tunnel", func() bool {
		b, _ := os.ReadFile(auditFile)
		return strings.Contains(string(b), `"route":"ops-live"`) && strings.Contains(string(b), `"client":"ops-console"`)
	})
}

// A handshake is refused, with the gateway's envelope and without reaching the
// upstream, wherever a request would be, and where a tunnel would escape a check.
func TestWebSocketRefusals(t *testing.T) {
	up := newWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "off", "60s", filepath.Join(t.TempDir(), "audit.log")))
	addr := g.srv.Addr().String()
	tests := []struct {
		name   string
		raw    []byte
		status int
		code   string
		msg    string
	}{
		{"no API key", wsHandshake("/api/live", ""), 401, "missing_credentials", ""},
		{"a role without the route", wsHandshake("/api/ops-live", appKey), 403, "forbidden", ""},
		{"a role whose answers are masked", wsHandshake("/api/live", providerKey), 403, "forbidden", "cannot be masked"},
		{"a route without websocket: true", wsHandshake("/api/ping", appKey), 400, "bad_request", "does not take WebSocket"},
		{"h2c on a websocket route", request("GET", "/api/live", appKey, "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c",
			"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"), 400, "bad_request", "not proxied"},
		{"websocket and another protocol", wsHandshake("/api/live", appKey, "Upgrade", "h2c"), 400, "bad_request", "not proxied"},
		{"POST with Upgrade: websocket", request("POST", "/api/live", appKey, "Connection", "Upgrade", "Upgrade", "websocket",
			"Content-Length", "0"), 400, "bad_request", "not proxied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sendRaw(t, addr, tt.raw)
			if a.status != tt.status || code(t, a.body) != tt.code || !strings.Contains(string(a.body), tt.msg) {
				t.Fatalf("got %d %s, want %d %s %q", a.status, a.body, tt.status, tt.code, tt.msg)
			}
		})
	}
	if n := len(up.handshakes()); n != 0 {
		t.Errorf("the upstream saw %d requests, want none", n)
	}
}

// A tunnel with no message either way for the upstream's read_timeout is closed, as
// nginx does; one that keeps talking stays open however long it lives.
func TestWebSocketIdleTimeout(t *testing.T) {
	up := newWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "off", "1s", filepath.Join(t.TempDir(), "audit.log")))
	ws := dialWS(t, g, "/api/live", appKey)
	for i := range 12 { // 2.4s of traffic, more than twice read_timeout
		echoes(t, ws, fmt.Sprint("ping ", i))
		time.Sleep(200 * time.Millisecond)
	}
	waitClosed(t, ws)
}

// A config reload leaves open tunnels be; shutdown closes them, and Serve returns
// without waiting for them to end on their own.
func TestWebSocketAcrossReloadAndShutdown(t *testing.T) {
	up := newWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "self_signed", "60s", filepath.Join(t.TempDir(), "audit.log")))
	ws := dialWS(t, g, "/api/live", appKey)
	echoes(t, ws, "before the reload")
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	echoes(t, ws, "after the reload")
	if err := g.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	waitClosed(t, ws)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
)

const (
	appKey      = "app-key-1234567890"
	providerKey = "provider-key-1234567890"
)

// syncBuffer is a log sink the server writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines whose msg is msg.
func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// everyLog holds every gateway log written during the package's tests, so TestMain
// can check afterwards that no line, on any path, held a full mobile number.
var everyLog struct {
	sync.Mutex
	bufs []*syncBuffer
}

func TestMain(m *testing.M) {
	code := checkSecrets(m.Run)
	everyLog.Lock()
	for _, b := range everyLog.bufs {
		b.mu.Lock()
		for _, line := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
			if mobileRE.Match(line) {
				fmt.Fprintf(os.Stderr, "FAIL: a log line holds a full mobile number: %s\n", line)
				code = 1
			}
		}
		b.mu.Unlock()
	}
	everyLog.Unlock()
	os.Exit(code)
}

type testGateway struct {
	srv    *Server
	url    string // https://127.0.0.1:port
	admin  string // http://127.0.0.1:port
	client *http.Client
	logs   *syncBuffer
	// stop shuts the gateway down as SIGTERM would and returns what Serve returned;
	// the test's cleanup does it otherwise.
	stop func() error
}

// baseConfig is a small gateway in front of upstreamURL; extra is appended verbatim.
func baseConfig(upstreamURL, extra string) string {
	return fmt.Sprintf(`
server:
  listen: "127.0.0.1:0"
  http_listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  max_body_bytes: 1024
  shutdown_timeout: 5s
tls:
  mode: self_signed
clients:
  - id: property-miniapp
    api_key_sha256: %q
    roles: [resident_app]
  - id: sunshine-housekeeping
    api_key_sha256: %q
    roles: [provider]
roles:
  resident_app: {allow: ["GET /api/services", "POST /api/orders", "GET /api/orders/*", "POST /api/upload", "GET /api/slow", "GET /api/events"]}
  provider:     {allow: ["PUT /api/orders/*/status"]}
upstreams:
  backend:
    targets: [%q]
    response_timeout: 300ms
routes:
  - {name: orders-create, match: "POST /api/orders", upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
cors:
  allow_origins: ["https://admin.example.com"]
%s`, auth.HashKey(appKey), auth.HashKey(providerKey), upstreamURL, extra)
}

func parseConfig(yaml string) (*config.Config, error) {
	return config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
}

func startGateway(t *testing.T, yaml string) *testGateway {
	t.Helper()
	return startGatewayFrom(t, func() (*config.Config, error) { return parseConfig(yaml) }, "")
}

// startGatewayFrom starts a gateway whose config comes from load, also used on
// Reload, watching watchPath when it is not "".
func startGatewayFrom(t *testing.T, load func() (*config.Config, error), watchPath string, opts ...func(logs *syncBuffer) Option) *testGateway {
	t.Helper()
	cfg, err := load()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	everyLog.Lock()
	everyLog.bufs = append(everyLog.bufs, logs)
	everyLog.Unlock()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var options []Option
	for _, o := range opts {
		options = append(options, o(logs))
	}
	srv, err := New(cfg, logger, options...)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetConfigSource(load, watchPath)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	g := &testGateway{
		srv:    srv,
		url:    "https://" + srv.Addr().String(),
		admin:  "http://" + srv.AdminAddr().String(),
		client: &http.Client{Transport: scanningTransport{tr}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		logs:   logs,
	}
	var once sync.Once
	var serveErr error
	g.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		scanMetrics(g)
		if err := g.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(tr.CloseIdleConnections)
	return g
}

func (g *testGateway) do(t *testing.T, method, path, key string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// seenHeaders is an upstream that answers with the headers it received.
func seenHeaders(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/slow":
			time.Sleep(time.Second)
		case "/api/upload":
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "uri": r.RequestURI})
	}))
	t.Cleanup(up.Close)
	return up
}

type envelope struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func TestErrorsAndAuth(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	tests := []struct {
		name, method, path, key string
		body                    string
		wantStatus              int
		wantCode                string
	}{
		{"no API key", "GET", "/api/services", "", "", 401, "missing_credentials"},
		{"unknown API key", "GET", "/api/services", "nope", "", 401, "unknown_key"},
		{"role does not allow the call", "GET", "/api/services", providerKey, "", 403, "forbidden"},
		{"method not allowed for the role", "DELETE", "/api/orders/7", appKey, "", 403, "forbidden"},
		{"no route for the path", "GET", "/elsewhere", appKey, "", 404, "no_route"},
		{"body over max_body_bytes", "POST", "/api/orders", appKey, strings.Repeat("x", 2000), 413, "body_too_large"},
		{"dot segments refused", "GET", "/api/x/../services", appKey, "", 400, "bad_request"},
		{"slow upstream times out", "GET", "/api/slow", appKey, "", 504, "upstream_timeout"},
		{"allowed call reaches the upstream", "GET", "/api/services?city=sh", appKey, "", 200, ""},
		{"provider role allowed on its pattern", "PUT", "/api/orders/42/status", providerKey, "{}", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, g.url+tt.path, strings.NewReader(tt.body))
			if tt.key != "" {
				req.Header.Set("X-Api-Key", tt.key)
			}
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			rid := resp.Header.Get("X-Request-Id")
			if len(rid) != 26 {
				t.Errorf("X-Request-Id = %q, want a 26-character ULID", rid)
			}
			if tt.wantCode == "" {
				return
			}
			var env envelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("error body is not the JSON envelope: %s", body)
			}
			if env.Code != tt.wantCode || env.Message == "" || env.RequestID != rid {
				t.Errorf("envelope %+v, want code %q with request_id %q", env, tt.wantCode, rid)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestUpstreamSeesIdentityNotCredentials(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	resp, body := g.do(t, "GET", "/api/services?b=2&a=1", appKey, nil,
		"X-Signgate-Client", "spoofed", "X-Signature", "abc", "X-Nonce", "n", "X-Timestamp", "1",
		"X-Request-Id", "caller-chosen.id:1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var seen struct {
		Headers http.Header
		URI     string
	}
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatal(err)
	}
	h := seen.Headers
	want := map[string]string{
		"X-Signgate-Client": "property-miniapp",
		"X-Request-Id":      "caller-chosen.id:1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-For":   "127.0.0.1",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("upstream saw %s = %q, want %q", k, got, v)
		}
	}
	if h.Get("X-Forwarded-Host") == "" {
		t.Error("upstream saw no X-Forwarded-Host")
	}
	for _, k := range []string{"X-Api-Key", "X-Signature", "X-Nonce", "X-Timestamp"} {
		if h.Get(k) != "" {
			t.Errorf("upstream saw %s; credentials must be stripped", k)
		}
	}
	if seen.URI != "/api/services?b=2&a=1" {
		t.Errorf("upstream saw %q, want path and query as sent", seen.URI)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "caller-chosen.id:1" {
		t.Errorf("valid incoming request id not kept: %q", got)
	}
	resp, _ = g.do(t, "GET", "/api/services", appKey, nil, "X-Request-Id", "bad id\twith spaces")
	if got := resp.Header.Get("X-Request-Id"); got == "bad id\twith spaces" || len(got) != 26 {
		t.Errorf("unsafe incoming request id kept: %q", got)
	}
}

func TestChunkedBodyOverLimit(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	// An io.Reader of unknown length is sent chunked: the limit must hold while reading.
	body := io.MultiReader(strings.NewReader(strings.Repeat("y", 4000)))
	resp, b := g.do(t, "POST", "/api/upload", appKey, body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"body_too_large"`) {
		t.Fatalf("status %d body %s, want 413 body_too_large", resp.StatusCode, b)
	}
}

func TestAccessLogAndMetrics(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	resp, _ := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(`{"service":"cleaning"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	g.do(t, "GET", "/api/services", "wrong", nil)
	g.do(t, "GET", "/nowhere", appKey, nil)

	lines := g.logs.lines(t, "request")
	if len(lines) != 3 {
		t.Fatalf("%d access-log lines, want 3", len(lines))
	}
	first := lines[0]
	for k, want := range map[string]any{
		"level": "INFO", "route": "orders-create", "client": "property-miniapp", "method": "POST",
		"path": "/api/orders", "status": float64(200), "bytes_in": float64(22), "remote_ip": "127.0.0.1",
		"request_id": resp.Header.Get("X-Request-Id"),
	} {
		if first[k] != want {
			t.Errorf("access log %s = %v, want %v", k, first[k], want)
		}
	}
	for _, k := range []string{"time", "duration_ms", "bytes_out"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access log lacks %s", k)
		}
	}
	if _, ok := first["error"]; ok {
		t.Errorf("successful request logged an error: %v", first["error"])
	}
	if lines[1]["error"] != "unknown_key" || lines[1]["status"] != float64(401) {
		t.Errorf("refused request logged %v", lines[1])
	}
	if lines[2]["route"] != "no_route" || lines[2]["error"] != "no_route" {
		t.Errorf("unrouted request logged %v", lines[2])
	}
	if strings.Contains(g.logs.buf.String(), appKey) {
		t.Error("an API key reached the log")
	}

	mresp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`signgate_requests_total{route="orders-create",status="200"} 1`,
		`signgate_requests_total{route="api",status="401"} 1`,
		`signgate_requests_total{route="no_route",status="404"} 1`,
		`signgate_auth_failures_total{reason="unknown_key"} 1`,
		`signgate_request_duration_seconds_bucket{route="orders-create"`,
		`# TYPE signgate_rate_limited_total counter`,
		`# TYPE signgate_upstream_errors_total counter`,
		`# TYPE signgate_daojia_token_fetches_total counter`,
		`# TYPE signgate_config_reloads_total counter`,
	} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(g.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestCORS(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	t.Run("preflight answered without an API key", func(t *testing.T) {
		resp, _ := g.do(t, "OPTIONS", "/api/orders", "", nil,
			"Origin", "https://admin.example.com", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "x-api-key, content-type")
		if resp.StatusCode != 204 {
			t.Fatalf("status %d, want 204", resp.StatusCode)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://admin.example.com" {
			t.Errorf("Allow-Origin = %q", got)
		}
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Api-Key") {
			t.Errorf("Allow-Headers = %q", resp.Header.Get("Access-Control-Allow-Headers"))
		}
	})
	t.Run("preflight from another origin refused", func(t *testing.T) {
		resp, _ := g.do(t, "OPTIONS", "/api/orders", "", nil,
			"Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
		if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("status %d allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("actual request gets allow headers", func(t *testing.T) {
		resp, _ := g.do(t, "GET", "/api/services", appKey, nil, "Origin", "https://admin.example.com")
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://admin.example.com" {
			t.Fatalf("status %d allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
			t.Errorf("Expose-Headers = %q", resp.Header.Get("Access-Control-Expose-Headers"))
		}
	})
}

func TestTLSEdge(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	t.Run("TLS 1.1 client refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
	t.Run("HTTP/2 negotiated", func(t *testing.T) {
		resp, _ := g.do(t, "GET", "/api/services", appKey, nil)
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s, want HTTP/2", resp.Proto)
		}
	})
	t.Run("plain HTTP redirected to HTTPS keeping path and query", func(t *testing.T) {
		resp, err := g.client.Get("http://" + g.srv.RedirectAddr().String() + "/api/orders/7?x=1&y=%20z")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "https://127.0.0.1:" + portOf(addr) + "/api/orders/7?x=1&y=%20z"
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Fatalf("status %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
}

// Behind a port mapping (docker -p 443:8443), redirects name the port clients use.
func TestRedirectToPublicHTTPSPort(t *testing.T) {
	up := seenHeaders(t)
	cfg := strings.Replace(baseConfig(up.URL, ""), `  http_listen: "127.0.0.1:0"`, `  http_listen: "127.0.0.1:0"
  public_https_port: 443`, 1)
	g := startGateway(t, cfg)
	for port, want := range map[string]string{"": "https://mp.example.com/api/orders/7?x=1", ":8080": "https://mp.example.com/api/orders/7?x=1"} {
		req, _ := http.NewRequest("GET", "http://"+g.srv.RedirectAddr().String()+"/api/orders/7?x=1", nil)
		req.Host = "mp.example.com" + port
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Fatalf("Host %q: status %d Location %q, want 308 %q", req.Host, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

func TestServerSentEventsStream(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer up.Close()
	defer close(release)
	g := startGateway(t, baseConfig(up.URL, ""))
	req, _ := http.NewRequest("GET", g.url+"/api/events", nil)
	req.Header.Set("X-Api-Key", appKey)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q, %v: the gateway buffered the stream", line, err)
	}
}

func TestPanicAnswers500Envelope(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	h := chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
		accessLog(logger, newMetrics(), time.Now, nil), recoverPanic(logger))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	var env envelope
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || rec.Code != 500 || env.Code != "internal" {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Error("the panic value reached the caller")
	}
	panics := logs.lines(t, "panic")
	if len(panics) != 1 || !strings.Contains(panics[0]["stack"].(string), "server_test.go") {
		t.Fatalf("panic log %v, want the stack", panics)
	}
}

func TestPublicRouteNeedsNoKey(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
upstreams: {backend: {targets: [%q]}}
routes: [{name: public, match: "GET /public/**", upstream: backend, public: true}]
`, up.URL))
	resp, body := g.do(t, "GET", "/public/terms", "", nil, "X-Api-Key", "ignored-and-stripped")
	if resp.StatusCode != 200 {
		t.Fatalf("public route: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "ignored-and-stripped") || strings.Contains(string(body), "X-Signgate-Client") {
		t.Errorf("the upstream saw a key or a client on a public route: %s", body)
	}
}

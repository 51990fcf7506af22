package server

import (
	"bytes"
	"errors"
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

	"github.com/signgate/signgate/internal/testsecret"
)

// The package's secret check. Every secret the tests configure comes from
// internal/testsecret, and every API key is one of the constants below; TestMain
// looks for all of them in everything the suite saw:
//   - every gateway log (access, audit, error, debug), as TestMain already does for
//     full mobile numbers;
//   - every answer a test client read from a gateway (scanningTransport, and the raw
//     exchanges of the hostile tests);
//   - every gateway's /metrics, read as it stops (startGatewayFrom);
//   - the tests' own output, t.Log and failures included (testsecret.Watch).
//
// A panic inside the gateway is recovered and logged, so it is covered by the logs;
// TestPanicLogNamesNoSecret puts a secret-holding value through that path on purpose.

// secretNeedles are the values that must never show: the configured secrets and the
// API keys, which config holds only as digests.
func secretNeedles() []string {
	runtimeNeedles.Lock()
	defer runtimeNeedles.Unlock()
	return append(append(testsecret.Values(), appKey, providerKey, partnerKey, opsKey), runtimeNeedles.v...)
}

// runtimeNeedles are secrets made while the tests run (the session_keys WeChat's
// stand-in hands out), looked for as the others are from the moment they are made.
var runtimeNeedles struct {
	sync.Mutex
	v []string
}

func addNeedle(s string) {
	runtimeNeedles.Lock()
	runtimeNeedles.v = append(runtimeNeedles.v, s)
	runtimeNeedles.Unlock()
}

// leaks collects where a secret was seen, for TestMain to report.
var leaks struct {
	sync.Mutex
	found []string
}

// noteLeaks records every needle found in b, saying where it was.
func noteLeaks(where string, b []byte) {
	found := testsecret.Find(b, secretNeedles()...)
	if len(found) == 0 {
		return
	}
	leaks.Lock()
	defer leaks.Unlock()
	for _, f := range found {
		leaks.found = append(leaks.found, fmt.Sprintf("%s holds %q", where, f))
	}
}

// checkSecrets runs m with the output watched and reports every leak; it returns
// the exit code, code or 1.
func checkSecrets(run func() int) int {
	stop := testsecret.Watch(secretNeedles()...)
	code := run()
	for _, f := range stop() {
		noteLeaks("the test output", []byte(f))
	}
	everyLog.Lock()
	for _, b := range everyLog.bufs {
		b.mu.Lock()
		noteLeaks("a gateway log", b.buf.Bytes())
		b.mu.Unlock()
	}
	everyLog.Unlock()
	leaks.Lock()
	defer leaks.Unlock()
	for _, l := range leaks.found {
		fmt.Fprintf(os.Stderr, "FAIL: a secret leaked: %s\n", l)
		code = 1
	}
	return code
}

// scanningTransport hands every answer body to noteLeaks once it is read or closed.
type scanningTransport struct{ base http.RoundTripper }

func (s scanningTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	if err != nil {
		noteLeaks("a client error", []byte(err.Error()))
		return nil, err
	}
	noteLeaks("an answer's headers", []byte(fmt.Sprint(resp.Header)))
	resp.Body = &scannedBody{ReadCloser: resp.Body, where: "the answer to " + r.Method + " " + r.URL.Path}
	return resp, nil
}

// scannedBody keeps what was read (up to 1 MB: a leak sits near the start of an
// error) and scans it on Close.
type scannedBody struct {
	io.ReadCloser
	where string
	mu    sync.Mutex
	buf   bytes.Buffer
	done  bool
}

func (b *scannedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	if b.buf.Len() < 1<<20 {
		b.buf.Write(p[:n])
	}
	b.mu.Unlock()
	return n, err
}

func (b *scannedBody) Close() error {
	b.mu.Lock()
	if !b.done {
		b.done = true
		noteLeaks(b.where, b.buf.Bytes())
	}
	b.mu.Unlock()
	return b.ReadCloser.Close()
}

// scanMetrics reads g's /metrics and scans it.
func scanMetrics(g *testGateway) {
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		return // the test that stopped it early says why
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	noteLeaks("/metrics", b)
}

// secretHolder is what a careless panic might carry: a value with a secret field.
type secretHolder struct {
	Client string
	Secret interface{ Reveal() string }
}

// A handler that panics with a value holding secrets (a config section, an error
// naming one) is answered 500 internal; the stack and the value go to the log, and
// the Secret type keeps the log free of the secret itself.
func TestPanicLogNamesNoSecret(t *testing.T) {
	cfg, err := parseConfig(signedConfig("http://127.0.0.1:1", "http://127.0.0.1:1", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		value any
	}{
		{"the whole config", cfg},
		{"a client with its secret", cfg.Clients[1]},
		{"the secret itself", cfg.Clients[1].Secret},
		{"an error formatting the 58到家 section", fmt.Errorf("relay broke: %v", cfg.Daojia)},
		{"an error formatting the secret with %s", fmt.Errorf("bad secret %s", cfg.Daojia.ServiceSecret)},
		{"a struct holding a secret behind an interface", secretHolder{"x", cfg.Daojia.ServiceSecret}},
		{"a wrapped error", fmt.Errorf("outer: %w", errors.New(fmt.Sprintf("%+v", cfg.Clients)))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			logger := slog.New(slog.NewJSONHandler(logs, nil))
			h := chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(tt.value) }),
				accessLog(slog.New(slog.DiscardHandler), newMetrics(), time.Now, nil), recoverPanic(logger))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			if rec.Code != 500 || code(t, rec.Body.Bytes()) != "internal" {
				t.Fatalf("answer %d %s, want 500 internal", rec.Code, rec.Body)
			}
			if p := logs.lines(t, "panic"); len(p) != 1 || !strings.Contains(fmt.Sprint(p[0]["panic"]), "[redacted]") {
				t.Fatalf("panic log %v, want the value with its secret redacted", p)
			}
			for _, where := range []struct {
				name string
				b    []byte
			}{{"the log", logs.buf.Bytes()}, {"the answer", rec.Body.Bytes()}} {
				if found := testsecret.Find(where.b); len(found) != 0 {
					t.Errorf("%s holds %q", where.name, found)
				}
			}
		})
	}
}

package tlsedge

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects JSON log lines from an Edge that logs from another goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func newEdge(t *testing.T, o Options) *Edge {
	t.Helper()
	if o.Logger == nil {
		o.Logger, _ = testLogger()
	}
	e, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return e
}

// serve runs an http.Server on 127.0.0.1 with cfg, the way the gateway's server does
// (ServeTLS with empty file names, so the certificate comes from GetCertificate), and
// returns its address. httptest.Server is not used: StartTLS fills Certificates with
// its own cert, which Go serves instead of GetCertificate to clients without SNI.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln := listen(t)
	serveOn(t, ln, cfg)
	return ln.Addr().String()
}

// listen binds a free 127.0.0.1 port and closes it when t ends. ACME tests bind
// before New, as the server does, so the Edge can be told its listen address.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// serveOn is serve on a listener the caller bound.
func serveOn(t *testing.T, ln net.Listener, cfg *tls.Config) {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		// Refused handshakes are what several tests are about; keep them off stderr.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
}

// handshake completes a TLS handshake with addr and returns what was negotiated.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// wantServerRefused fails unless err is an alert sent by the server, so a client that
// could not even build its ClientHello does not pass for a refusal.
func wantServerRefused(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("handshake succeeded, want the server to refuse it")
	}
	if !strings.Contains(err.Error(), "remote error") {
		t.Fatalf("handshake error = %v, want an alert from the server (remote error)", err)
	}
}

func rootsOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := SelfSigned(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writePair writes c as PEM cert and PKCS#8 key files, as an operator's tooling would.
func writePair(t *testing.T, certPath, keyPath string, c tls.Certificate) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

package tlsedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testpebble"
	"github.com/signgate/signgate/internal/testredis"
)

const testDomain = "signgate.test"

// acmeInstance is one gateway instance in acme mode, wired as the server wires it:
// the TLS listener serves Edge.TLSConfig, the HTTP listener serves the redirect inside
// Edge.HTTPChallengeHandler, both bound before New and Run.
type acmeInstance struct {
	edge              *Edge
	tlsAddr, httpAddr string
	logs              *logBuffer
}

// startACME binds the listeners (unless given), builds the Edge for o, lets before
// adjust it, and runs it until t ends. Pass httpLn nil with o.HTTPListen "" for an
// instance without HTTP.
func startACME(t *testing.T, o Options, tlsLn, httpLn net.Listener, before func(*Edge)) *acmeInstance {
	t.Helper()
	if tlsLn == nil {
		tlsLn = listen(t)
	}
	o.Mode, o.Listen = "acme", tlsLn.Addr().String()
	if httpLn != nil {
		o.HTTPListen = httpLn.Addr().String()
	}
	logger, logs := testLogger()
	o.Logger = logger
	e := newEdge(t, o)
	if before != nil {
		before(e)
	}
	serveOn(t, tlsLn, e.TLSConfig())
	inst := &acmeInstance{edge: e, tlsAddr: tlsLn.Addr().String(), logs: logs}
	if httpLn != nil {
		srv := &http.Server{
			Handler:           e.HTTPChallengeHandler(RedirectHandler(o.Listen)),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		go func() { _ = srv.Serve(httpLn) }()
		t.Cleanup(func() { _ = srv.Close() })
		inst.httpAddr = httpLn.Addr().String()
	}

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
	})
	return inst
}

// pebbleOptions points acme mode at p.
func pebbleOptions(p *testpebble.Server) Options {
	return Options{
		Domains: []string{testDomain},
		Email:   "ops@example.com",
		CA:      p.DirectoryURL,
		CARoot:  p.RootsPEMPath,
	}
}

func waitReady(t *testing.T, insts ...*acmeInstance) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, in := range insts {
		for !in.edge.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("no certificate after 30s; log:\n%s", in.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func issuerRoots(t *testing.T, p *testpebble.Server) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.IssuerRootPEM(t)) {
		t.Fatal("pebble's issuer root does not parse")
	}
	return pool
}

func TestACMEObtainsCertificateFromPebble(t *testing.T) {
	p := testpebble.Start(t)
	storageDir := t.TempDir()
	o := pebbleOptions(p)
	o.StorageDir = storageDir

	t.Run("not ready and no certificate before Run", func(t *testing.T) {
		o := o
		o.Mode = "acme"
		e := newEdge(t, o)
		if e.Ready() {
			t.Error("Ready() before Run")
		}
		if _, err := handshake(serve(t, e.TLSConfig()), &tls.Config{ServerName: testDomain, InsecureSkipVerify: true}); err == nil {
			t.Error("handshake succeeded before Run")
		}
	})

	in := startACME(t, o, nil, listen(t), nil)
	waitReady(t, in)
	roots := issuerRoots(t, p)

	tests := []struct {
		name     string
		client   *tls.Config
		refused  bool
		wantALPN string
	}{
		{"TLS 1.2 handshake verifies against pebble's root", &tls.Config{
			ServerName: testDomain, RootCAs: roots, MaxVersion: tls.VersionTLS12,
		}, false, ""},
		{"TLS 1.3 handshake verifies against pebble's root", &tls.Config{
			ServerName: testDomain, RootCAs: roots, MinVersion: tls.VersionTLS13,
		}, false, ""},
		{"HTTP/2 is offered", &tls.Config{
			ServerName: testDomain, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"},
		}, false, "h2"},
		{"TLS 1.1 refused", &tls.Config{
			ServerName: testDomain, RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
		}, true, ""},
		{"a name without a certificate is refused", &tls.Config{
			ServerName: "other.test", InsecureSkipVerify: true,
		}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := handshake(in.tlsAddr, tt.client)
			if tt.refused {
				wantServerRefused(t, err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			leaf := st.PeerCertificates[0]
			if !slices.Equal(leaf.DNSNames, []string{testDomain}) {
				t.Errorf("certificate for %v, want [%s]", leaf.DNSNames, testDomain)
			}
			if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) < 3 {
				t.Errorf("verified chain %d long, want leaf, intermediate and root", len(st.VerifiedChains))
			}
			if st.NegotiatedProtocol != tt.wantALPN {
				t.Errorf("ALPN %q, want %q", st.NegotiatedProtocol, tt.wantALPN)
			}
		})
	}

	t.Run("a client without SNI gets the first domain's certificate", func(t *testing.T) {
		st, err := handshake(in.tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{
			DNSName: testDomain, Roots: roots, Intermediates: intermediates(st.PeerCertificates[1:]),
		}); err != nil {
			t.Errorf("certificate served without SNI: %v", err)
		}
	})

	t.Run("the certificate is kept under storage_dir", func(t *testing.T) {
		matches, _ := filepath.Glob(filepath.Join(storageDir, "certificates", "*", testDomain, testDomain+".crt"))
		if len(matches) != 1 {
			t.Errorf("certificate files under %s: %v", storageDir, matches)
		}
	})

	t.Run("the HTTP listener still redirects what is not a challenge", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, path := range []string{"/api/orders", "/.well-known/acme-challenge/unknown-token"} {
			resp, err := c.Get("http://" + in.httpAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect {
				t.Errorf("GET %s = %d, want 308", path, resp.StatusCode)
			}
		}
	})

	t.Run("certmagic logs through slog", func(t *testing.T) {
		out := in.logs.String()
		if !strings.Contains(out, `"component":"certmagic"`) || !strings.Contains(out, "certificate obtained successfully") {
			t.Errorf("log has no certmagic lines:\n%s", out)
		}
	})
}

func TestACMEInstancesSharingRedisObtainOneCertificate(t *testing.T) {
	p := testpebble.Start(t)
	srv := testredis.Start(t)
	var certWrites atomic.Int64
	instance := func() *acmeInstance {
		o := pebbleOptions(p)
		o.Storage = countingStorage{newRedisStorage(t, srv, 0, "signgate:"), &certWrites}
		return startACME(t, o, nil, listen(t), nil)
	}
	a, b := instance(), instance()
	waitReady(t, a, b)

	if n := certWrites.Load(); n != 1 {
		t.Errorf("certificates written to storage: %d, want 1 (one order for the fleet)", n)
	}
	roots := issuerRoots(t, p)
	var serials []string
	for _, in := range []*acmeInstance{a, b} {
		st, err := handshake(in.tlsAddr, &tls.Config{ServerName: testDomain, RootCAs: roots})
		if err != nil {
			t.Fatalf("handshake with %s: %v", in.tlsAddr, err)
		}
		serials = append(serials, st.PeerCertificates[0].SerialNumber.String())
	}
	if serials[0] != serials[1] {
		t.Errorf("instances serve serials %v, want one certificate", serials)
	}
}

// countingStorage counts the certificates stored (".crt" keys): one per order.
type countingStorage struct {
	*RedisStorage
	certWrites *atomic.Int64
}

func (c countingStorage) Store(ctx context.Context, key string, value []byte) error {
	if strings.HasSuffix(key, ".crt") {
		c.certWrites.Add(1)
	}
	return c.RedisStorage.Store(ctx, key, value)
}

// TestACMEChallengesValidated has pebble really validate, resolving the test domain to
// 127.0.0.1 and connecting to this instance's listeners, with one challenge type
// enabled at a time: each path the server wires must work on its own.
func TestACMEChallengesValidated(t *testing.T) {
	tests := []struct {
		name    string
		http    bool   // serve HTTP-01; TLS-ALPN-01 is turned off when true
		wantLog string // certmagic's line for answering pebble's validation request
	}{
		{"HTTP-01 through HTTPChallengeHandler", true, `"msg":"served key authentication","component":"certmagic","identifier":"signgate.test","challenge":"http-01"`},
		{"TLS-ALPN-01 through the TLS listener", false, `"msg":"served key authentication certificate","component":"certmagic","server_name":"signgate.test","challenge":"tls-alpn-01"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsLn := listen(t)
			var httpLn net.Listener
			po := testpebble.Options{Validate: true, TLSPort: tlsLn.Addr().(*net.TCPAddr).Port}
			if tt.http {
				httpLn = listen(t)
				po.HTTPPort = httpLn.Addr().(*net.TCPAddr).Port
			}
			p := testpebble.StartWith(t, po)
			o := pebbleOptions(p)
			o.StorageDir = t.TempDir()
			in := startACME(t, o, tlsLn, httpLn, func(e *Edge) {
				e.acme.issuer.DisableTLSALPNChallenge = tt.http
			})
			waitReady(t, in)
			if !strings.Contains(in.logs.String(), tt.wantLog) {
				t.Errorf("no validation request was answered by this instance; log:\n%s", in.logs)
			}
			if _, err := handshake(in.tlsAddr, &tls.Config{ServerName: testDomain, RootCAs: issuerRoots(t, p)}); err != nil {
				t.Fatalf("handshake: %v", err)
			}
		})
	}
}

func intermediates(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

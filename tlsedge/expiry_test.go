package tlsedge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testpebble"
)

// certUntil makes a self-signed certificate for names, valid until notAfter (whole
// seconds, as X.509 stores it).
func certUntil(t *testing.T, notAfter time.Time, cn string, dnsNames []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func wantCertificates(t *testing.T, e *Edge, want ...CertificateExpiry) {
	t.Helper()
	got := e.Certificates()
	if !slices.EqualFunc(got, want, func(a, b CertificateExpiry) bool {
		return a.Name == b.Name && a.NotAfter.Equal(b.NotAfter)
	}) {
		t.Fatalf("Certificates() = %v, want %v", got, want)
	}
}

func TestCertificatesExpirySelfSignedAndOff(t *testing.T) {
	t.Run("self_signed: localhost, a year from now", func(t *testing.T) {
		e := newEdge(t, Options{Mode: "self_signed", Hosts: []string{"api.example.com"}})
		leaf := e.cert.Load().Leaf
		wantCertificates(t, e, CertificateExpiry{Name: "localhost", NotAfter: leaf.NotAfter})
		if d := time.Until(leaf.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Errorf("self-signed certificate expires in %v, want about a year", d)
		}
	})
	t.Run("off: no certificate", func(t *testing.T) {
		e := newEdge(t, Options{Mode: "off"})
		wantCertificates(t, e)
		if d := e.ACMEDomains(); d != nil {
			t.Errorf("ACMEDomains() = %v outside acme mode", d)
		}
	})
}

func TestCertificatesExpiryFilesFollowsReload(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	firstUntil := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	writePair(t, certPath, keyPath, certUntil(t, firstUntil, "edge", []string{"api.example.com", "www.example.com"}))

	e := newEdge(t, Options{Mode: "files", CertFile: certPath, KeyFile: keyPath, PollInterval: 20 * time.Millisecond})
	wantCertificates(t, e, CertificateExpiry{Name: "api.example.com", NotAfter: firstUntil})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// The renewed pair an operator drops in: the metric must follow it, or the
	// alarm keeps ringing after the fix (or, worse, stays quiet before it).
	secondUntil := time.Date(2031, 4, 5, 6, 7, 8, 0, time.UTC)
	writePair(t, certPath, keyPath, certUntil(t, secondUntil, "edge", nil, net.IPv4(192, 0, 2, 10)))
	eventually(t, "Certificates() does not report the reloaded pair", func() bool {
		got := e.Certificates()
		return len(got) == 1 && got[0].NotAfter.Equal(secondUntil)
	})
	wantCertificates(t, e, CertificateExpiry{Name: "192.0.2.10", NotAfter: secondUntil})
}

func TestCertName(t *testing.T) {
	until := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		cert tls.Certificate
		want string
	}{
		{"first DNS name", certUntil(t, until, "cn", []string{"a.example.com", "b.example.com"}, net.IPv4(192, 0, 2, 1)), "a.example.com"},
		{"IP address without DNS names", certUntil(t, until, "cn", nil, net.IPv4(192, 0, 2, 1)), "192.0.2.1"},
		{"common name when there are no SANs", certUntil(t, until, "legacy.example.com", nil), "legacy.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := certName(tt.cert.Leaf); got != tt.want {
				t.Errorf("certName = %q, want %q", got, tt.want)
			}
			tt.cert.Leaf = nil // as a loader might leave it: parsed from the chain
			if got := leafOf(tt.cert.Certificate, nil); got == nil || certName(got) != tt.want {
				t.Errorf("leafOf did not parse the chain's leaf")
			}
		})
	}
}

// In acme mode the metric reports the certificate pebble issued for each domain, and
// nothing before it is there.
func TestCertificatesExpiryACME(t *testing.T) {
	p := testpebble.Start(t)
	o := pebbleOptions(p)
	o.StorageDir = t.TempDir()
	in := startACME(t, o, nil, listen(t), func(e *Edge) {
		if got := e.Certificates(); len(got) != 0 {
			t.Errorf("Certificates() before Run = %v, want none", got)
		}
	})
	waitReady(t, in)
	st, err := handshake(in.tlsAddr, &tls.Config{ServerName: testDomain, RootCAs: issuerRoots(t, p)})
	if err != nil {
		t.Fatal(err)
	}
	wantCertificates(t, in.edge, CertificateExpiry{Name: testDomain, NotAfter: st.PeerCertificates[0].NotAfter})
	if d := in.edge.ACMEDomains(); !slices.Equal(d, []string{testDomain}) {
		t.Errorf("ACMEDomains() = %v, want [%s]", d, testDomain)
	}
}

// failureLog records OnRenewalFailure calls.
type failureLog struct {
	mu    sync.Mutex
	names []string
}

func (f *failureLog) record(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names = append(f.names, name)
}

func (f *failureLog) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.names)
}

// A CA that cannot validate the domain (pebble really validating, nobody answering
// its challenges) makes every order fail: each failed attempt reaches
// OnRenewalFailure with the domain, and no certificate is reported.
func TestACMERenewalFailuresReported(t *testing.T) {
	p := testpebble.StartWith(t, testpebble.Options{Validate: true})
	var failures failureLog
	o := pebbleOptions(p)
	o.StorageDir = t.TempDir()
	o.OnRenewalFailure = failures.record
	in := startACME(t, o, nil, listen(t), nil)
	eventually30s(t, "no failed order was reported", func() bool { return len(failures.all()) > 0 })
	for _, name := range failures.all() {
		if name != testDomain {
			t.Errorf("OnRenewalFailure(%q), want %q", name, testDomain)
		}
	}
	if got := in.edge.Certificates(); len(got) != 0 {
		t.Errorf("Certificates() = %v after failed orders, want none", got)
	}
}

func TestCertmagicEventsMapped(t *testing.T) {
	var failures failureLog
	a := &acmeSource{domains: []string{"api.example.com"}, onFailure: failures.record}
	ctx := context.Background()
	for _, ev := range []struct {
		name string
		data map[string]any
	}{
		{"cert_failed", map[string]any{"renewal": true, "identifier": "api.example.com"}},
		{"cert_failed", map[string]any{"renewal": false, "identifier": "api.example.com"}},
		{"cert_failed", map[string]any{"identifier": "attacker-chosen.example"}},
		{"cert_failed", map[string]any{}},
		{"cert_obtained", map[string]any{"identifier": "api.example.com"}},
		{"cert_obtaining", map[string]any{"identifier": "api.example.com"}},
	} {
		if err := a.onCertmagicEvent(ctx, ev.name, ev.data); err != nil {
			t.Errorf("%s: returned %v; an error would abort certmagic's operation", ev.name, err)
		}
	}
	want := []string{"api.example.com", "api.example.com", "other", "other"}
	if got := failures.all(); !slices.Equal(got, want) {
		t.Errorf("OnRenewalFailure calls %v, want %v", got, want)
	}
	none := &acmeSource{domains: []string{"api.example.com"}}
	if err := none.onCertmagicEvent(ctx, "cert_failed", map[string]any{"identifier": "api.example.com"}); err != nil {
		t.Error(err)
	}
}

// eventually30s is eventually with room for an ACME exchange.
func eventually30s(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

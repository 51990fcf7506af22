package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/internal/testpebble"
)

// metricValue reads one series' value from a /metrics page; ok is false when the
// series is absent. series is written as the exposition format prints it, e.g.
// `signgate_tls_certificate_expiry_timestamp_seconds{name="localhost"}`.
func metricValue(t *testing.T, text, series string) (v float64, ok bool) {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		rest, found := strings.CutPrefix(line, series+" ")
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			t.Fatalf("%s: value %q: %v", series, rest, err)
		}
		return v, true
	}
	return 0, false
}

func certExpirySeries(name string) string {
	return fmt.Sprintf("signgate_tls_certificate_expiry_timestamp_seconds{name=%q}", name)
}

// servedNotAfter is the NotAfter of the certificate the gateway's edge serves for
// serverName.
func servedNotAfter(t *testing.T, g *testGateway, serverName string) time.Time {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(g.url, "https://"), &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].NotAfter
}

// writeCertFiles writes a self-signed pair for dnsName valid until notAfter, as an
// operator's tooling would for tls.mode files, and returns the two paths.
func writeCertFiles(t *testing.T, dnsName string, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{dnsName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// waitReadyz polls /readyz until it answers 200, for at most 30s.
func waitReadyz(t *testing.T, g *testGateway) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(g.admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after 30s: no certificate", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signgate_tls_certificate_expiry_timestamp_seconds{name} reports the certificate the
// edge serves, in each TLS mode, as the NotAfter a client sees in the handshake.
func TestExpiryMetricPerTLSMode(t *testing.T) {
	const domain = "api.signgate.test"
	filesUntil := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		tls      func(t *testing.T) string // the tls section
		wantName string
		// wantUntil is the NotAfter the metric must report; zero means whatever the
		// handshake shows (generated at start or issued by the CA).
		wantUntil time.Time
	}{
		{"self_signed", func(*testing.T) string { return "tls:\n  mode: self_signed\n" }, "localhost", time.Time{}},
		{"files", func(t *testing.T) string {
			certFile, keyFile := writeCertFiles(t, domain, filesUntil)
			return fmt.Sprintf("tls: {mode: files, cert_file: %q, key_file: %q}\n", certFile, keyFile)
		}, domain, filesUntil},
		{"acme", func(t *testing.T) string {
			pebble := testpebble.Start(t) // fails, not skips, without pebble
			return fmt.Sprintf("tls: {mode: acme, domains: [%s], email: ops@signgate.test, ca: %q, ca_root: %q, storage_dir: %q}\n",
				domain, pebble.DirectoryURL, pebble.RootsPEMPath, t.TempDir())
		}, domain, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := okUpstream(t)
			cfg := replaceOnce(t, baseConfig(up.URL, ""), "tls:\n  mode: self_signed\n", tt.tls(t))
			g := startGateway(t, cfg)
			waitReadyz(t, g)
			served := servedNotAfter(t, g, tt.wantName)
			if !tt.wantUntil.IsZero() && !served.Equal(tt.wantUntil) {
				t.Fatalf("the edge serves a certificate valid until %v, want %v", served, tt.wantUntil)
			}
			text := metricsText(t, g)
			got, ok := metricValue(t, text, certExpirySeries(tt.wantName))
			if !ok {
				t.Fatalf("/metrics lacks %s:\n%s", certExpirySeries(tt.wantName), grepLines(text, "signgate_tls_"))
			}
			if want := float64(served.Unix()); got != want {
				t.Errorf("%s = %v, want %v (%v)", certExpirySeries(tt.wantName), got, want, served)
			}
			if tt.name == "acme" {
				// At zero from the start, so increase() in the alert rule sees the
				// first failure too.
				if v, ok := metricValue(t, text, `signgate_tls_renewal_failures_total{name="`+domain+`"}`); !ok || v != 0 {
					t.Errorf("renewal failures for %s = %v (present %v), want 0", domain, v, ok)
				}
			}
			if n := strings.Count(text, "signgate_tls_certificate_expiry_timestamp_seconds{"); n != 1 {
				t.Errorf("%d expiry series, want 1:\n%s", n, grepLines(text, "signgate_tls_"))
			}
		})
	}
}

// A reload that swaps the certificate (the renewed pair under new file names, as
// cert-manager or certbot hooks do) moves the metric to the new certificate, and
// the old name's series goes: the alarm clears once the fix is live, not before.
func TestExpiryMetricFollowsReload(t *testing.T) {
	up := okUpstream(t)
	oldUntil := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	newUntil := time.Date(2030, 9, 1, 0, 0, 0, 0, time.UTC)
	oldCert, oldKey := writeCertFiles(t, "old.signgate.test", oldUntil)
	newCert, newKey := writeCertFiles(t, "api.signgate.test", newUntil)
	var renewed atomic.Bool
	load := func() (*config.Config, error) {
		certFile, keyFile := oldCert, oldKey
		if renewed.Load() {
			certFile, keyFile = newCert, newKey
		}
		return parseConfig(replaceOnce(t, baseConfig(up.URL, ""), "tls:\n  mode: self_signed\n",
			fmt.Sprintf("tls: {mode: files, cert_file: %q, key_file: %q}\n", certFile, keyFile)))
	}
	g := startGatewayFrom(t, load, "")
	if v, _ := metricValue(t, metricsText(t, g), certExpirySeries("old.signgate.test")); v != float64(oldUntil.Unix()) {
		t.Fatalf("before the reload: %v, want %v", v, oldUntil.Unix())
	}
	renewed.Store(true)
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	text := metricsText(t, g)
	if v, ok := metricValue(t, text, certExpirySeries("api.signgate.test")); !ok || v != float64(newUntil.Unix()) {
		t.Errorf("after the reload %s = %v (present %v), want %v", certExpirySeries("api.signgate.test"), v, ok, newUntil.Unix())
	}
	if _, ok := metricValue(t, text, certExpirySeries("old.signgate.test")); ok {
		t.Errorf("the replaced certificate still has a series:\n%s", grepLines(text, "signgate_tls_"))
	}
}

// An ACME CA that cannot validate the domain (pebble really validating, nobody
// answering on the ports it checks) fails every order: the renewal-failure counter
// climbs for that domain, and no expiry series is made up meanwhile.
func TestACMERenewalFailuresCounted(t *testing.T) {
	pebble := testpebble.StartWith(t, testpebble.Options{Validate: true})
	up := okUpstream(t)
	cfg := replaceOnce(t, baseConfig(up.URL, ""), "tls:\n  mode: self_signed\n", fmt.Sprintf(
		"tls: {mode: acme, domains: [api.signgate.test], email: ops@signgate.test, ca: %q, ca_root: %q, storage_dir: %q}\n",
		pebble.DirectoryURL, pebble.RootsPEMPath, t.TempDir()))
	g := startGateway(t, cfg)
	series := `signgate_tls_renewal_failures_total{name="api.signgate.test"}`
	deadline := time.Now().Add(30 * time.Second)
	for {
		text := metricsText(t, g)
		if v, ok := metricValue(t, text, series); ok && v >= 1 {
			if strings.Contains(text, "signgate_tls_certificate_expiry_timestamp_seconds{") {
				t.Errorf("an expiry series exists without a certificate:\n%s", grepLines(text, "signgate_tls_"))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s of failing orders, /metrics has no %s >= 1:\n%s", series, grepLines(text, "signgate_tls_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signgate_daojia_token_expiry_timestamp_seconds is 0 until the relay holds a token,
// then when that token expires: fetched now, valid for the sandbox's 2h.
func TestExpiryOfDaojiaTokenGauge(t *testing.T) {
	sb := daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})
	platform := httptest.NewServer(sb)
	defer platform.Close()
	g := startGateway(t, signedConfig("http://127.0.0.1:1", platform.URL, ""))
	const series = "signgate_daojia_token_expiry_timestamp_seconds"

	if v, ok := metricValue(t, metricsText(t, g), series); !ok || v != 0 {
		t.Fatalf("before any relay call %s = %v (present %v), want 0", series, v, ok)
	}
	before := time.Now()
	resp, body := g.do(t, "POST", "/daojia/serviceUser/getAllServiceUser", appKey, strings.NewReader(`{}`))
	if resp.StatusCode != 200 {
		t.Fatalf("relay call: %d %s", resp.StatusCode, body)
	}
	after := time.Now()
	v, ok := metricValue(t, metricsText(t, g), series)
	if !ok {
		t.Fatalf("/metrics lacks %s", series)
	}
	// The lifetime counts from just before the token request.
	lo, hi := before.Add(daojia.DefaultTokenTTL), after.Add(daojia.DefaultTokenTTL)
	if v < float64(lo.UnixMilli())/1e3-0.001 || v > float64(hi.UnixMilli())/1e3+0.001 || math.IsNaN(v) {
		t.Errorf("%s = %v (%v), want between %v and %v", series, v, time.UnixMilli(int64(v*1e3)), lo, hi)
	}
}

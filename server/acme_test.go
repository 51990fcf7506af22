package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testpebble"
	"github.com/signgate/signgate/internal/testredis"
)

// The mini-program's domain gets a real certificate from an ACME CA (pebble here),
// kept in the Redis the fleet shares; /readyz says 503 until it is there.
func TestACMECertificateFromPebble(t *testing.T) {
	pebble := testpebble.Start(t)
	rs := testredis.Start(t)
	up := okUpstream(t)
	cfg := baseConfig(up.URL, fmt.Sprintf("redis: {addrs: [%q]}\n", rs.Addr))
	cfg = replaceOnce(t, cfg, "tls:\n  mode: self_signed\n", fmt.Sprintf(
		"tls: {mode: acme, domains: [api.signgate.test], email: ops@signgate.test, ca: %q, ca_root: %q}\n",
		pebble.DirectoryURL, pebble.RootsPEMPath))
	g := startGateway(t, cfg)

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(g.admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after 30s: no certificate", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pebble.IssuerRootPEM(t))
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "api.signgate.test", MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
	req, _ := http.NewRequest("GET", g.url+"/api/services", nil)
	req.Header.Set("X-Api-Key", appKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("handshake with the ACME certificate, verified against pebble's root: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Subject.CommonName == "signgate self-signed" {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	i := strings.Index(s, old)
	if i < 0 {
		t.Fatalf("config template lacks %q", old)
	}
	return s[:i] + new + s[i+len(old):]
}

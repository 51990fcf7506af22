package tlsedge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedCertificate(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	c, err := SelfSigned([]string{"api.test", "10.0.0.5", "", "localhost", "[2001:db8::1]"}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf

	if leaf.Subject.CommonName != "signgate self-signed" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if k, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", c.PrivateKey)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.AddDate(1, 0, 0)) {
		t.Errorf("valid %v .. %v, want now-1h .. now+1y", leaf.NotBefore, leaf.NotAfter)
	}
	if got := strings.Join(leaf.DNSNames, ","); got != "localhost,api.test" {
		t.Errorf("DNS SANs = %s, want localhost,api.test (IPs apart, no duplicates)", got)
	}
	if got := strings.Join(ipStrings(leaf), ","); got != "127.0.0.1,::1,10.0.0.5,2001:db8::1" {
		t.Errorf("IP SANs = %s", got)
	}

	roots := rootsOf(leaf)
	tests := []struct {
		name string
		ok   bool
	}{
		{"localhost", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"api.test", true},
		{"10.0.0.5", true},
		{"2001:db8::1", true},
		{"example.org", false},
		{"10.0.0.6", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{
				DNSName:     tt.name,
				Roots:       roots,
				CurrentTime: now,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if (err == nil) != tt.ok {
				t.Errorf("verify for %s: %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestSelfSignedEachCallNewKey(t *testing.T) {
	a, b := selfSigned(t), selfSigned(t)
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two calls gave the same serial number")
	}
	if a.PrivateKey.(*ecdsa.PrivateKey).Equal(b.PrivateKey) {
		t.Error("two calls gave the same key")
	}
}

func TestSelfSignedModeServesVerifiableCertificate(t *testing.T) {
	logger, logs := testLogger()
	e := newEdge(t, Options{Mode: "self_signed", Hosts: []string{"gw.test"}, Logger: logger})
	addr := serve(t, e.TLSConfig())
	leaf := e.cert.Load().Leaf

	for _, serverName := range []string{"localhost", "127.0.0.1", "gw.test"} {
		t.Run(serverName, func(t *testing.T) {
			_, err := handshake(addr, &tls.Config{RootCAs: rootsOf(leaf), ServerName: serverName})
			if err != nil {
				t.Errorf("handshake as %s: %v", serverName, err)
			}
		})
	}

	t.Run("startup warns that clients will not trust it", func(t *testing.T) {
		out := logs.String()
		if !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, "WeChat") || !strings.Contains(out, "curl -k") {
			t.Errorf("startup log = %s, want a warning about trust and curl -k", out)
		}
	})
}

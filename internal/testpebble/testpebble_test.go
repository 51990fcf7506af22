package testpebble

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

func TestStartServesDirectory(t *testing.T) {
	s := Start(t)

	roots, err := os.ReadFile(s.RootsPEMPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		t.Fatalf("RootsPEMPath %s holds no certificate", s.RootsPEMPath)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(s.DirectoryURL)
	if err != nil {
		t.Fatalf("GET %s trusting RootsPEMPath: %v", s.DirectoryURL, err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"newAccount", "newNonce", "newOrder"} {
		if _, ok := dir[k]; !ok {
			t.Errorf("directory has no %s: %v", k, dir)
		}
	}

	t.Run("issuer root is a CA distinct from the HTTPS root", func(t *testing.T) {
		blk, _ := pem.Decode(s.IssuerRootPEM(t))
		root, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !root.IsCA {
			t.Errorf("issuer root %s is not a CA", root.Subject)
		}
		https, _ := pem.Decode(roots)
		if string(https.Bytes) == string(blk.Bytes) {
			t.Error("IssuerRootPEM returned the HTTPS root")
		}
	})

	t.Run("Stop ends it", func(t *testing.T) {
		s.Stop()
		s.Stop() // idempotent
		c.CloseIdleConnections()
		if _, err := c.Get(s.DirectoryURL); err == nil {
			t.Error("directory still answers after Stop")
		}
	})
}

func TestTwoServersDoNotCollide(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.DirectoryURL == b.DirectoryURL {
		t.Errorf("both at %s", a.DirectoryURL)
	}
}

func TestDNSStub(t *testing.T) {
	addr, err := startDNSStub(t)
	if err != nil {
		t.Fatal(err)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, host := range []string{"signgate.test", "a.b.example.org"} {
		ips, err := r.LookupHost(ctx, host)
		if err != nil || len(ips) != 1 || ips[0] != "127.0.0.1" {
			t.Errorf("LookupHost(%s) = %v, %v; want [127.0.0.1]", host, ips, err)
		}
	}
}

func TestMissingPebbleNamesTheFix(t *testing.T) {
	t.Setenv(EnvPebble, "/nonexistent/pebble")
	_, err := findPebble()
	if err == nil || err.Error() != `pebble not found: SIGNGATE_PEBBLE="/nonexistent/pebble": exec: "/nonexistent/pebble": stat /nonexistent/pebble: no such file or directory` {
		t.Errorf("findPebble() error = %v", err)
	}
	t.Setenv(EnvPebble, "")
	t.Setenv("PATH", t.TempDir())
	if _, err := findPebble(); err == nil || err.Error() != "pebble not found: apt-get install pebble (Debian) or set SIGNGATE_PEBBLE" {
		t.Errorf("findPebble() without pebble on PATH: %v", err)
	}
}

package tlsedge

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseMinVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    uint16
		wantErr bool
	}{
		{"1.2", tls.VersionTLS12, false},
		{"1.3", tls.VersionTLS13, false},
		{"1.1", 0, true},
		{"1.0", 0, true},
		{"", 0, true},
		{"TLS1.2", 0, true},
		{" 1.2", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMinVersion(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseMinVersion(%q) = %#x, %v; want %#x, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"acme without domains", Options{Mode: "acme", StorageDir: "/tmp/x"}, "tls.domains: at least one domain is required"},
		{"acme wildcard", Options{Mode: "acme", Domains: []string{"*.example.com"}, StorageDir: "/tmp/x"}, "tls.domains[0]: \"*.example.com\": wildcard certificates need the DNS-01 challenge"},
		{"acme domain with a port", Options{Mode: "acme", Domains: []string{"a.test", "b.test:443"}, StorageDir: "/tmp/x"}, `tls.domains[1]: "b.test:443" is not a host name`},
		{"acme without storage", Options{Mode: "acme", Domains: []string{"a.test"}}, "tls.storage_dir: required"},
		{"acme with a missing ca_root", Options{Mode: "acme", Domains: []string{"a.test"}, StorageDir: "/tmp/x", CARoot: "/nonexistent/root.pem"}, "tls.ca_root: open /nonexistent/root.pem"},
		{"acme with a ca_root that is not PEM", Options{Mode: "acme", Domains: []string{"a.test"}, StorageDir: "/tmp/x", CARoot: "/dev/null"}, "tls.ca_root: /dev/null holds no PEM certificate"},
		{"acme with TLS 1.1 minimum", Options{Mode: "acme", Domains: []string{"a.test"}, StorageDir: "/tmp/x", MinVersion: "1.1"}, `tls.min_version: unsupported TLS version "1.1"`},
		{"unknown mode", Options{Mode: "selfsigned"}, `tls.mode "selfsigned"`},
		{"empty mode", Options{}, `tls.mode ""`},
		{"TLS 1.1 minimum", Options{Mode: "self_signed", MinVersion: "1.1"}, `tls.min_version: unsupported TLS version "1.1"`},
		{"files mode without cert_file", Options{Mode: "files", KeyFile: "k.pem"}, "tls.cert_file: required"},
		{"files mode without key_file", Options{Mode: "files", CertFile: "c.pem"}, "tls.key_file: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger, _ = testLogger()
			e, err := New(tt.opts)
			if err == nil {
				t.Fatalf("New = %v, nil; want error %q", e, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestOffModeHasNoTLSConfig(t *testing.T) {
	e := newEdge(t, Options{Mode: "off"})
	if cfg := e.TLSConfig(); cfg != nil {
		t.Errorf("TLSConfig() = %v, want nil when tls.mode is off", cfg)
	}
}

func TestProtocolVersions(t *testing.T) {
	tests := []struct {
		name                 string
		minVersion           string
		clientMin, clientMax uint16
		want                 uint16 // 0: the server must refuse
	}{
		{"TLS 1.1 client refused", "1.2", tls.VersionTLS10, tls.VersionTLS11, 0},
		{"TLS 1.2 client accepted", "1.2", tls.VersionTLS12, tls.VersionTLS12, tls.VersionTLS12},
		{"TLS 1.3 client accepted", "1.2", tls.VersionTLS12, tls.VersionTLS13, tls.VersionTLS13},
		{"min 1.3: TLS 1.2 client refused", "1.3", tls.VersionTLS12, tls.VersionTLS12, 0},
		{"min 1.3: TLS 1.3 client accepted", "1.3", tls.VersionTLS13, tls.VersionTLS13, tls.VersionTLS13},
		{"min defaults to 1.2", "", tls.VersionTLS12, tls.VersionTLS12, tls.VersionTLS12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEdge(t, Options{Mode: "self_signed", MinVersion: tt.minVersion})
			addr := serve(t, e.TLSConfig())
			st, err := handshake(addr, &tls.Config{
				RootCAs:    rootsOf(e.cert.Load().Leaf),
				MinVersion: tt.clientMin,
				MaxVersion: tt.clientMax,
			})
			if tt.want == 0 {
				wantServerRefused(t, err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tt.want {
				t.Errorf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.want))
			}
		})
	}
}

func TestTLS12CipherSuites(t *testing.T) {
	e := newEdge(t, Options{Mode: "self_signed"})

	t.Run("only ECDHE with AEAD is configured", func(t *testing.T) {
		suites := e.TLSConfig().CipherSuites
		if len(suites) == 0 {
			t.Fatal("CipherSuites is empty: Go's defaults would include CBC suites")
		}
		for _, id := range suites {
			name := tls.CipherSuiteName(id)
			aead := strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")
			if !strings.HasPrefix(name, "TLS_ECDHE_") || !aead {
				t.Errorf("suite %s is not ECDHE with AEAD", name)
			}
		}
	})

	addr := serve(t, e.TLSConfig())
	tests := []struct {
		name    string
		suites  []uint16
		refused bool
	}{
		{"CBC-only client refused", []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		}, true},
		{"AES-GCM client accepted", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, false},
		{"ChaCha20-Poly1305 client accepted", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := handshake(addr, &tls.Config{
				RootCAs:      rootsOf(e.cert.Load().Leaf),
				MaxVersion:   tls.VersionTLS12,
				CipherSuites: tt.suites,
			})
			if tt.refused {
				wantServerRefused(t, err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.CipherSuite != tt.suites[0] {
				t.Errorf("negotiated %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tt.suites[0]))
			}
		})
	}
}

func TestALPN(t *testing.T) {
	e := newEdge(t, Options{Mode: "self_signed"})
	addr := serve(t, e.TLSConfig())
	roots := rootsOf(e.cert.Load().Leaf)

	tests := []struct {
		name      string
		transport *http.Transport
		wantProto string // as the handler saw it
		wantALPN  string
	}{
		{"HTTP/2 client negotiates h2", &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
		}, "HTTP/2.0", "h2"},
		{"HTTP/1.1-only client gets http/1.1", &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}},
		}, "HTTP/1.1", "http/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.transport.CloseIdleConnections()
			c := &http.Client{Transport: tt.transport, Timeout: 5 * time.Second}
			resp, err := c.Get("https://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tt.wantProto || resp.TLS.NegotiatedProtocol != tt.wantALPN {
				t.Errorf("served %q over ALPN %q, want %q over %q", body, resp.TLS.NegotiatedProtocol, tt.wantProto, tt.wantALPN)
			}
		})
	}
}

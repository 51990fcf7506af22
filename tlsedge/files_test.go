package tlsedge

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// servedCert returns the leaf certificate a fresh handshake with addr sees.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	// Verification is beside the point here: the test asks which certificate is live.
	st, err := handshake(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return st.PeerCertificates[0].Raw
}

// eventually polls cond until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFilesModeReloads(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certA, certB := selfSigned(t), selfSigned(t)
	writePair(t, certPath, keyPath, certA)

	logger, logs := testLogger()
	e := newEdge(t, Options{Mode: "files", CertFile: certPath, KeyFile: keyPath, PollInterval: 20 * time.Millisecond, Logger: logger})
	addr := serve(t, e.TLSConfig())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	if !bytes.Equal(servedCert(t, addr), certA.Certificate[0]) {
		t.Fatal("does not serve cert A from the files at startup")
	}

	writePair(t, certPath, keyPath, certB)
	eventually(t, "new handshakes still do not see cert B", func() bool {
		return bytes.Equal(servedCert(t, addr), certB.Certificate[0])
	})
	if !strings.Contains(logs.String(), "tls certificate reloaded") {
		t.Errorf("no reload logged: %s", logs.String())
	}

	if err := os.WriteFile(certPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "broken pair not logged at error", func() bool {
		return strings.Contains(logs.String(), `"level":"ERROR","msg":"tls certificate reload failed; keeping the current certificate"`)
	})
	if !bytes.Equal(servedCert(t, addr), certB.Certificate[0]) {
		t.Error("after garbage was written, cert B is no longer served")
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Errorf("broken pair logged at error %d times, want once", n)
	}
}

func TestFilesModeRunStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certPath, keyPath, selfSigned(t))
	e := newEdge(t, Options{Mode: "files", CertFile: certPath, KeyFile: keyPath, PollInterval: time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestFilesModeBadPairs(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	certB, keyB := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	writePair(t, certA, keyA, selfSigned(t))
	writePair(t, certB, keyB, selfSigned(t))
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name, cert, key string
		wantErr         []string
	}{
		{"missing cert file", missing, keyA, []string{"tls.cert_file", missing}},
		{"missing key file", certA, missing, []string{"tls.key_file", missing}},
		{"cert file is not PEM", garbage, keyA, []string{"tls.cert_file", garbage, "no PEM CERTIFICATE block"}},
		{"key file is not PEM", certA, garbage, []string{"tls.key_file", garbage, "no PEM PRIVATE KEY block"}},
		{"cert and key swapped", keyA, certA, []string{"tls.cert_file", keyA}},
		{"key does not match cert", certA, keyB, []string{certA, keyB, "does not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := testLogger()
			_, err := New(Options{Mode: "files", CertFile: tt.cert, KeyFile: tt.key, Logger: logger})
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

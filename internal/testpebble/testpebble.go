// Package testpebble starts pebble, Let's Encrypt's ACME test server, for tests: on
// free loopback ports, with an HTTPS certificate made for the run, stopped when the
// test ends.
//
// ACME tests run against the real server, never a fake: what matters (account
// registration, orders, nonces, the issued chain) is what a fake gets subtly wrong. A
// missing pebble fails the test instead of skipping it, so a CI box without it cannot
// silently pass the ACME half.
package testpebble

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testproc"
)

// EnvPebble names the environment variable that overrides where pebble is found.
const EnvPebble = "SIGNGATE_PEBBLE"

const (
	startAttempts = 5                // fresh ports tried when a chosen one was taken meanwhile
	readyTimeout  = 10 * time.Second // from exec to the first directory answer
	stopTimeout   = 5 * time.Second  // SIGTERM grace before SIGKILL
)

// Options changes how pebble validates challenges. The zero value is what Start uses.
type Options struct {
	// Validate makes pebble really validate challenges: it resolves each domain with
	// a DNS stub answering 127.0.0.1 and connects to HTTPPort (HTTP-01) or TLSPort
	// (TLS-ALPN-01) there. Without it, PEBBLE_VA_ALWAYS_VALID=1 makes every
	// challenge pass unchecked.
	Validate bool
	// HTTPPort and TLSPort are where pebble validates HTTP-01 and TLS-ALPN-01 on
	// 127.0.0.1; 0 means a free port nobody listens on.
	HTTPPort, TLSPort int
}

// Server is one pebble process owned by a test.
type Server struct {
	// DirectoryURL is the ACME directory, https://127.0.0.1:PORT/dir.
	DirectoryURL string
	// RootsPEMPath is the PEM file of the CA that signed pebble's HTTPS certificate,
	// for clients of DirectoryURL to trust. It is not the root of the certificates
	// pebble issues: see IssuerRootPEM.
	RootsPEMPath string

	mgmtURL string
	client  *http.Client // trusts RootsPEMPath

	mu   sync.Mutex
	proc *testproc.Process // nil once stopped
}

// Start starts pebble for t with challenge validation off (PEBBLE_VA_ALWAYS_VALID=1),
// no validation sleeps and no random nonce rejection, waits until its directory
// answers, and stops it in t.Cleanup. It fails t when pebble is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with o.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := findPebble()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	roots, certFile, keyFile, err := writeHTTPSCert(dir)
	if err != nil {
		t.Fatalf("testpebble: HTTPS certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(roots)
	s := &Server{
		RootsPEMPath: filepath.Join(dir, "roots.pem"),
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		},
	}
	if err := os.WriteFile(s.RootsPEMPath, roots, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)

	var args []string
	env := append(environWithoutPebble(),
		"PEBBLE_VA_NOSLEEP=1",      // no random 0–15 s wait before each validation
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce answers
	)
	if o.Validate {
		dns, err := startDNSStub(t)
		if err != nil {
			t.Fatalf("testpebble: DNS stub: %v", err)
		}
		args = append(args, "-dnsserver", dns)
	} else {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}

	var lastErr error
	for range startAttempts {
		// Another process can take a port between our Close and pebble's bind; that
		// shows up as an early exit, and fresh ports are the cure.
		ports, err := testproc.FreePorts(4)
		if err != nil {
			t.Fatalf("testpebble: pick ports: %v", err)
		}
		httpPort, tlsPort := o.HTTPPort, o.TLSPort
		if httpPort == 0 {
			httpPort = ports[2]
		}
		if tlsPort == 0 {
			tlsPort = ports[3]
		}
		cfgFile := filepath.Join(dir, "pebble-config.json")
		if err := writeConfig(cfgFile, ports[0], ports[1], httpPort, tlsPort, certFile, keyFile); err != nil {
			t.Fatal(err)
		}
		s.DirectoryURL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])) + "/dir"
		s.mgmtURL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		if lastErr = s.launch(bin, dir, cfgFile, args, env); lastErr == nil {
			return s
		}
	}
	t.Fatalf("testpebble: %v", lastErr)
	return nil
}

// IssuerRootPEM returns the root pebble signs certificates with (its management
// endpoint's /roots/0), for verifying an issued chain. Pebble makes a new root on
// every start.
func (s *Server) IssuerRootPEM(t testing.TB) []byte {
	t.Helper()
	resp, err := s.client.Get(s.mgmtURL + "/roots/0")
	if err != nil {
		t.Fatalf("testpebble: issuer root: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("testpebble: issuer root: %s %q %v", resp.Status, b, err)
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("testpebble: issuer root is not a PEM certificate: %q", b)
	}
	return b
}

// Stop stops pebble now (SIGTERM, then SIGKILL after a grace period) and waits for it
// to exit. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop(stopTimeout)
	}
}

// launch starts pebble and waits until its directory answers. On failure the process
// is gone and the error carries the tail of its log.
func (s *Server) launch(bin, dir, cfgFile string, args, env []string) error {
	logFile := filepath.Join(dir, "pebble.log")
	out, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(bin, append([]string{"-config", cfgFile, "-strict=false"}, args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, out, out, dir
	p, err := testproc.Start(cmd)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	if err := p.WaitReady(readyTimeout, 20*time.Millisecond, "directory not answering", s.directoryAnswers); err != nil {
		s.Stop()
		return fmt.Errorf("pebble at %s: %w%s", s.DirectoryURL, err, testproc.LogTail(logFile, "pebble"))
	}
	return nil
}

// directoryAnswers reports whether pebble's ACME directory answers 200.
func (s *Server) directoryAnswers() error {
	resp, err := s.client.Get(s.DirectoryURL)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// writeConfig writes pebble's JSON config. Both listeners are on 127.0.0.1 only.
func writeConfig(path string, acmePort, mgmtPort, httpPort, tlsPort int, certFile, keyFile string) error {
	type pebbleConfig struct {
		ListenAddress                  string `json:"listenAddress"`
		ManagementListenAddress        string `json:"managementListenAddress"`
		Certificate                    string `json:"certificate"`
		PrivateKey                     string `json:"privateKey"`
		HTTPPort                       int    `json:"httpPort"`
		TLSPort                        int    `json:"tlsPort"`
		OCSPResponderURL               string `json:"ocspResponderURL"`
		ExternalAccountBindingRequired bool   `json:"externalAccountBindingRequired"`
	}
	b, err := json.MarshalIndent(map[string]pebbleConfig{"pebble": {
		ListenAddress:           net.JoinHostPort("127.0.0.1", strconv.Itoa(acmePort)),
		ManagementListenAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(mgmtPort)),
		Certificate:             certFile,
		PrivateKey:              keyFile,
		HTTPPort:                httpPort,
		TLSPort:                 tlsPort,
	}}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// environWithoutPebble is this process's environment minus PEBBLE_* variables, so a
// PEBBLE_VA_ALWAYS_VALID exported in the developer's shell cannot turn validation off
// behind a test's back.
func environWithoutPebble() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			env = append(env, kv)
		}
	}
	return env
}

func findPebble() (string, error) {
	return testproc.Find("pebble", "pebble", EnvPebble)
}

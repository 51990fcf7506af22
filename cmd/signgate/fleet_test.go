package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testpebble"
	"github.com/signgate/signgate/internal/testproc"
	"github.com/signgate/signgate/internal/testredis"
)

// TestFleetActsAsOne runs what deploy/docker-compose.yml runs, as processes: two
// gateways sharing one redis-server. A nonce used on one is a replay on the other, a
// rate limit holds across both, one 58到家 accessToken serves both, killing one
// mid-load loses no request a client could retry on the other, and two instances in
// acme mode serve one certificate.
func TestFleetActsAsOne(t *testing.T) {
	rs := testredis.Start(t)
	var served atomic.Int64
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "ok")
	})}
	upURL := serveOnLoopback(t, &up)
	// The sandbox's address goes into the config, and each instance's admin address
	// (for /metrics) into its environment, before the processes start: the config
	// must name the sandbox, and a gateway's log names only its main listener.
	addrs, release := reserveLoopbackAddrs(t, 3)
	sandboxAddr, adminA, adminB := addrs[0], addrs[1], addrs[2]
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "${ADMIN_LISTEN:-127.0.0.1:0}", shutdown_timeout: 2s}
tls: {mode: "off"}
redis: {addrs: [%q]}
clients:
  - {id: app, api_key_sha256: %q, roles: [app]}
  - {id: partner, api_key_sha256: %q, secret: partner-secret, signature: hmac-sha256, roles: [app]}
roles: {app: {allow: ["* /api/**", "POST /daojia/**"]}}
rate_limits:
  - {key: client, routes: [limited], rate: 1/h, burst: 4}
upstreams: {backend: {targets: [%q]}}
daojia: {base_url: "http://%s", service_key: "2801200042", service_secret: fleet-daojia-secret}
routes:
  - {name: limited, match: "GET /api/limited", upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
  - {name: daojia-relay, match: "POST /daojia/**", daojia: relay}
`, rs.Addr, auth.HashKey("app-key"), auth.HashKey("partner-key"), upURL, sandboxAddr))
	release()
	// The sandbox reads the same file, so it knows the fleet's 58到家 account.
	startSandbox(t, sandboxAddr, cfg)
	a := startProcess(t, []string{"ADMIN_LISTEN=" + adminA}, "serve", "-config", cfg)
	b := startProcess(t, []string{"ADMIN_LISTEN=" + adminB}, "serve", "-config", cfg)
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(p *gatewayProcess, path, key string, hdr map[string]string) (int, error) {
		req, _ := http.NewRequest("GET", "http://"+p.listen+path, nil)
		req.Header.Set("X-Api-Key", key)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	t.Run("a nonce used on one instance is a replay on the other", func(t *testing.T) {
		h, _ := auth.SignRequest("GET", "/api/signed", nil, []byte("partner-secret"), time.Now(), "fleet-nonce-1")
		if code, err := get(a, "/api/signed", "partner-key", h); code != 200 {
			t.Fatalf("instance A: %d %v", code, err)
		}
		if code, err := get(b, "/api/signed", "partner-key", h); code != 401 {
			t.Fatalf("instance B with the same nonce: %d %v, want 401 replayed", code, err)
		}
	})
	t.Run("a rate limit holds across both instances", func(t *testing.T) {
		admitted := 0
		for i := range 10 {
			p := a
			if i%2 == 1 {
				p = b
			}
			if code, _ := get(p, "/api/limited", "app-key", nil); code == 200 {
				admitted++
			}
		}
		if admitted != 4 {
			t.Fatalf("admitted %d of 10 across two instances, want the burst of 4", admitted)
		}
	})
	t.Run("both instances relay with one 58到家 token", func(t *testing.T) {
		// 20 calls on each instance, released together: on each, many callers find no
		// token at once, and the two instances race for it through Redis.
		const perInstance = 20
		start := make(chan struct{})
		errs := make(chan error, 2*perInstance)
		var wg sync.WaitGroup
		for i := range 2 * perInstance {
			p, name := a, "A"
			if i%2 == 1 {
				p, name = b, "B"
			}
			wg.Go(func() {
				<-start
				userID := fmt.Sprintf("fleet-user-%d", i)
				if err := relaySaveUser(client, p, userID); err != nil {
					errs <- fmt.Errorf("instance %s, %s: %w", name, userID, err)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		fetchesA := tokenFetches(t, client, adminA)
		fetchesB := tokenFetches(t, client, adminB)
		if fetchesA["ok"]+fetchesB["ok"] != 1 || fetchesA["error"]+fetchesB["error"] != 0 {
			t.Errorf("token fetches: A %v, B %v; want one ok fetch across the fleet", fetchesA, fetchesB)
		}
	})
	t.Run("killing one instance mid-load loses nothing the other can serve", func(t *testing.T) {
		var failed, retried, ok atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					first, other := a, b
					if (w+i)%2 == 1 {
						first, other = b, a
					}
					code, err := get(first, "/api/services", "app-key", nil)
					if err != nil || code >= 500 {
						// What a client behind an L4 balancer does: try the other one.
						retried.Add(1)
						code, err = get(other, "/api/services", "app-key", nil)
					}
					if err != nil || code != 200 {
						failed.Add(1)
						t.Logf("failed after retry: first %s, then %s: %d %v", first.listen, other.listen, code, err)
						continue
					}
					ok.Add(1)
				}
			})
		}
		time.Sleep(300 * time.Millisecond)
		if err := a.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		_ = a.cmd.Wait()
		t.Logf("%d requests served, %d retried on the survivor, %d failed", ok.Load(), retried.Load(), failed.Load())
		if failed.Load() != 0 || ok.Load() == 0 || retried.Load() == 0 {
			t.Fatalf("%d failed (want 0), %d ok, %d retried (want some: A was killed)", failed.Load(), ok.Load(), retried.Load())
		}
	})
	t.Run("both instances serve one ACME certificate", func(t *testing.T) {
		const domain = "api.signgate.test"
		// Each instance's listeners on fixed ports: pebble must be told where to
		// validate before the gateways start, and certmagic, given port 0, would try
		// to bind :80 and :443 itself for its challenges.
		addrs, release := reserveLoopbackAddrs(t, 6)
		envA := []string{"LISTEN=" + addrs[0], "HTTP_LISTEN=" + addrs[1], "ADMIN_LISTEN=" + addrs[2]}
		envB := []string{"LISTEN=" + addrs[3], "HTTP_LISTEN=" + addrs[4], "ADMIN_LISTEN=" + addrs[5]}
		// Pebble validates for real, resolving the domain to 127.0.0.1 and connecting
		// to A's listeners, as a CA reaches one address of a fleet. Both challenge
		// ports point there, since certmagic picks HTTP-01 or TLS-ALPN-01 at random.
		pebble := testpebble.StartWith(t, testpebble.Options{Validate: true, HTTPPort: portOf(t, addrs[1]), TLSPort: portOf(t, addrs[0])})
		cfg := writeFile(t, fmt.Sprintf(`
server:
  listen: "${LISTEN}"
  http_listen: "${HTTP_LISTEN}"
  admin_listen: "${ADMIN_LISTEN}"
  shutdown_timeout: 2s
tls: {mode: acme, domains: [%s], email: ops@signgate.test, ca: %q, ca_root: %q}
redis: {addrs: [%q]}
clients: [{id: app, api_key_sha256: %q, roles: [app]}]
roles: {app: {allow: ["* /api/**"]}}
upstreams: {backend: {targets: [%q]}}
routes: [{name: api, match: "* /api/**", upstream: backend}]
`, domain, pebble.DirectoryURL, pebble.RootsPEMPath, rs.Addr, auth.HashKey("app-key"), upURL))
		release()
		a := startProcess(t, envA, "serve", "-config", cfg)
		b := startProcess(t, envB, "serve", "-config", cfg)
		// Ready means every domain has a certificate. A, up first, takes the lock in
		// Redis and orders; B waits on that lock, then finds A's certificate there.
		waitReadyz(t, client, 30*time.Second, addrs[2], addrs[5])

		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pebble.IssuerRootPEM(t)) {
			t.Fatal("pebble's issuer root does not parse")
		}
		var serials []string
		for _, p := range []*gatewayProcess{a, b} {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.listen,
				&tls.Config{ServerName: domain, RootCAs: roots})
			if err != nil {
				t.Fatalf("handshake with %s for %s, verified against pebble's root: %v", p.listen, domain, err)
			}
			serials = append(serials, conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16))
			conn.Close()
		}
		if serials[0] != serials[1] {
			t.Errorf("A serves serial %s, B %s: want one certificate for the fleet", serials[0], serials[1])
		}
	})
}

// serveOnLoopback serves srv on a free loopback port until the test ends.
func serveOnLoopback(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// reserveLoopbackAddrs holds n free 127.0.0.1 ports open until release (or the end
// of the test), so that a server picking its own ports meanwhile (pebble) cannot
// land on one. Release just before starting the processes that bind them.
func reserveLoopbackAddrs(t *testing.T, n int) (addrs []string, release func()) {
	t.Helper()
	var lns []net.Listener
	release = func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Cleanup(release)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, release
}

// portOf is the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("no port in %q", addr)
	}
	return n
}

// startSandbox runs `signgate sandbox` on addr with cfg's 58到家 account until the
// test ends.
func startSandbox(t *testing.T, addr, cfg string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "sandbox.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(binary, "sandbox", "-listen", addr, "-config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := testproc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	// Ready is a connection that succeeds: the test need not parse its log.
	if err := p.WaitReady(10*time.Second, 20*time.Millisecond, "not accepting connections", func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("signgate sandbox on %s: %v%s", addr, err, testproc.LogTail(logFile, "sandbox"))
	}
}

// relaySaveUser saves one 58到家 service user through p's relay route and checks
// that the sandbox accepted the call: HTTP 200, code 0, the userId echoed.
func relaySaveUser(client *http.Client, p *gatewayProcess, userID string) error {
	req, _ := http.NewRequest("POST", "http://"+p.listen+"/daojia/serviceUser/saveServiceUser",
		strings.NewReader(`{"userId":"`+userID+`","userName":"张三"}`))
	req.Header.Set("X-Api-Key", "app-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer struct {
		Code *int `json:"code"`
		Data struct {
			UserID string `json:"userId"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.Code == nil ||
		*answer.Code != 0 || answer.Data.UserID != userID {
		return fmt.Errorf("HTTP %d %s; want 200, code 0 and the userId", resp.StatusCode, body)
	}
	return nil
}

// tokenFetches reads signgate_daojia_token_fetches_total by result from the admin
// listener at admin. A result never counted is absent, as zero.
func tokenFetches(t *testing.T, client *http.Client, admin string) map[string]float64 {
	t.Helper()
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	const prefix = `signgate_daojia_token_fetches_total{result="`
	fetches := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		result, value, ok := strings.Cut(rest, `"} `)
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			t.Fatalf("metrics line %q does not parse", sc.Text())
		}
		fetches[result] = v
	}
	if err := sc.Err(); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s %v", admin, resp.Status, err)
	}
	return fetches
}

// waitReadyz waits until every admin listener's /readyz answers 200.
func waitReadyz(t *testing.T, client *http.Client, timeout time.Duration, admins ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, admin := range admins {
		for {
			status := "no answer"
			resp, err := client.Get("http://" + admin + "/readyz")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				status = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz after %v: %s %v", admin, timeout, status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testredis"
)

// TestFleetActsAsOne runs what deploy/docker-compose.yml runs, as processes: two
// gateways sharing one redis-server. A nonce used on one is a replay on the other, a
// rate limit holds across both, and killing one mid-load loses no request a client
// could retry on the other.
func TestFleetActsAsOne(t *testing.T) {
	rs := testredis.Start(t)
	var served atomic.Int64
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "ok")
	})}
	upURL := serveOnLoopback(t, &up)
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", shutdown_timeout: 2s}
tls: {mode: "off"}
redis: {addrs: [%q]}
clients:
  - {id: app, api_key_sha256: %q, roles: [app]}
  - {id: partner, api_key_sha256: %q, secret: partner-secret, signature: hmac-sha256, roles: [app]}
roles: {app: {allow: ["* /api/**"]}}
rate_limits:
  - {key: client, routes: [limited], rate: 1/h, burst: 4}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: limited, match: "GET /api/limited", upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
`, rs.Addr, auth.HashKey("app-key"), auth.HashKey("partner-key"), upURL))
	a := startProcess(t, nil, "serve", "-config", cfg)
	b := startProcess(t, nil, "serve", "-config", cfg)
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

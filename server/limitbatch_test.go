package server

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// batchTopology is a Redis the gateway is configured with, and how a test reads a
// key back from it: on a Cluster, from the master serving the key's slot.
type batchTopology struct {
	name    string
	addrs   []string
	masters []string
	node    func(t *testing.T, key string) string
}

func batchTopologies(t *testing.T) []batchTopology {
	single := testredis.Start(t)
	cluster := testredis.StartCluster(t)
	masters, err := cluster.Masters()
	if err != nil {
		t.Fatal(err)
	}
	return []batchTopology{
		{"single", []string{single.Addr}, []string{single.Addr}, func(*testing.T, string) string { return single.Addr }},
		{"cluster", cluster.Addrs(), masters, func(t *testing.T, key string) string {
			addr, err := cluster.MasterOf(key)
			if err != nil {
				t.Fatal(err)
			}
			return addr
		}},
	}
}

// batchConfig has a signing partner whose role allows GET /api/** only, an ip
// rule and a client rule, both per hour so nothing refills during a test.
func batchConfig(upstreamURL string, addrs []string, prefix string, ipBurst, clientBurst int) string {
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = strconv.Quote(a)
	}
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", max_body_bytes: 4096}
tls: {mode: self_signed}
redis: {addrs: [%s], key_prefix: %q, timeout: 2s}
clients:
  - {id: sunshine-housekeeping, api_key_sha256: %q, secret: %q, signature: hmac-sha256, roles: [reader]}
roles:
  reader: {allow: ["GET /api/**"]}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: api, match: "* /api/**", upstream: backend}
rate_limits:
  - {key: ip, rate: 1/h, burst: %d}
  - {key: client, rate: 1/h, burst: %d}
`, strings.Join(quoted, ", "), prefix, auth.HashKey(partnerKey), partnerSecret, upstreamURL, ipBurst, clientBurst)
}

// The client rule's bucket, as the gateway names it (limitRules, limitKey).
func clientBucket(prefix string, clientBurst int) string {
	return prefix + "rl:" + state.HashTag("sunshine-housekeeping") + ":client@:1/h:b" + strconv.Itoa(clientBurst)
}

func nonceKey(prefix, nonce string) string {
	return prefix + "nonce:" + state.HashTag("sunshine-housekeeping") + ":" + nonce
}

// A signed, rate-limited request's decisions (its address's budget, its nonce, its
// client's budget) are made in one script, and in the order they would be made one
// by one: what a refused request leaves behind in Redis is what it left when they
// were. On a Cluster the address's bucket lives in another slot than the client's
// nonces and budget, so two scripts go out side by side; a refusal by the address
// gives back what the other took.
func TestBatchedDecisionsKeepTheirOrder(t *testing.T) {
	up := okUpstream(t)
	for _, tp := range batchTopologies(t) {
		t.Run(tp.name, func(t *testing.T) {
			prefix := func(t *testing.T) string { return "sg:" + t.Name() + ":" }
			signed := func(g *testGateway, method, nonce string) (int, string) {
				resp, body := g.do(t, method, "/api/items", partnerKey, nil, signedHeaders(t, method, "/api/items", "", nonce, time.Now())...)
				return resp.StatusCode, code(t, body)
			}
			exists := func(t *testing.T, key string) bool {
				v, err := testredis.Do(tp.node(t, key), "EXISTS", key)
				if err != nil {
					t.Fatal(err)
				}
				return v.(int64) == 1
			}
			// spent reads how many requests the client's bucket holds (1/h: one
			// hour of PTTL each).
			spent := func(t *testing.T, key string) int {
				v, err := testredis.Do(tp.node(t, key), "PTTL", key)
				if err != nil {
					t.Fatal(err)
				}
				ms := v.(int64)
				if ms < 0 {
					return 0
				}
				return int((time.Duration(ms)*time.Millisecond + time.Minute) / time.Hour)
			}

			t.Run("refused by its address: no nonce recorded, no client budget spent", func(t *testing.T) {
				p := prefix(t)
				g := startGateway(t, batchConfig(up.URL, tp.addrs, p, 2, 10))
				for i, want := range []int{200, 200, 429} {
					if got, c := signed(g, "GET", fmt.Sprintf("addr-nonce-%d", i)); got != want {
						t.Fatalf("request %d: %d %s, want %d", i, got, c, want)
					}
				}
				if !exists(t, nonceKey(p, "addr-nonce-1")) || exists(t, nonceKey(p, "addr-nonce-2")) {
					t.Error("want the admitted request's nonce recorded and the refused one's not")
				}
				if n := spent(t, clientBucket(p, 10)); n != 2 {
					t.Errorf("the client's bucket holds %d requests, want the 2 admitted", n)
				}
			})
			t.Run("replayed: no client budget spent", func(t *testing.T) {
				p := prefix(t)
				g := startGateway(t, batchConfig(up.URL, tp.addrs, p, 100, 10))
				if got, c := signed(g, "GET", "replay-nonce-1"); got != 200 {
					t.Fatalf("first: %d %s", got, c)
				}
				if got, c := signed(g, "GET", "replay-nonce-1"); got != 401 || c != "replayed" {
					t.Fatalf("replay: %d %s, want 401 replayed", got, c)
				}
				if n := spent(t, clientBucket(p, 10)); n != 1 {
					t.Errorf("the client's bucket holds %d requests, want 1", n)
				}
			})
			t.Run("bad signature: the address's budget spent, nothing else", func(t *testing.T) {
				p := prefix(t)
				g := startGateway(t, batchConfig(up.URL, tp.addrs, p, 2, 10))
				forged := signedHeaders(t, "GET", "/api/items", "", "forged-nonce-1", time.Now())
				for i := 1; i < len(forged); i += 2 {
					if forged[i-1] == "X-Signature" {
						forged[i] = strings.Repeat("0", 64)
					}
				}
				for i := range 2 {
					resp, body := g.do(t, "GET", "/api/items", partnerKey, nil, forged...)
					if resp.StatusCode != 401 || code(t, body) != "invalid_signature" {
						t.Fatalf("forgery %d: %d %s, want 401 invalid_signature", i, resp.StatusCode, body)
					}
					if resp.Header.Get("RateLimit-Remaining") != strconv.Itoa(1-i) {
						t.Errorf("forgery %d: RateLimit-Remaining %q, want %d", i, resp.Header.Get("RateLimit-Remaining"), 1-i)
					}
				}
				resp, body := g.do(t, "GET", "/api/items", partnerKey, nil, forged...)
				if resp.StatusCode != 429 || code(t, body) != "rate_limited" || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("third forgery from the address: %d %s %v, want 429 with Retry-After", resp.StatusCode, body, resp.Header)
				}
				if got, c := signed(g, "GET", "forged-nonce-1"); got != 429 {
					t.Fatalf("the genuine request: %d %s, want 429: its address spent its budget", got, c)
				}
				if exists(t, nonceKey(p, "forged-nonce-1")) || exists(t, clientBucket(p, 10)) {
					t.Error("a forgery or a request refused by its address recorded its nonce or spent its client's budget")
				}
			})
			t.Run("forbidden by RBAC: nonce recorded, client budget not spent", func(t *testing.T) {
				p := prefix(t)
				g := startGateway(t, batchConfig(up.URL, tp.addrs, p, 100, 10))
				if got, c := signed(g, "DELETE", "rbac-nonce-1"); got != 403 || c != "forbidden" {
					t.Fatalf("DELETE: %d %s, want 403 forbidden", got, c)
				}
				if got, c := signed(g, "DELETE", "rbac-nonce-1"); got != 401 || c != "replayed" {
					t.Fatalf("the same DELETE again: %d %s, want 401 replayed", got, c)
				}
				if exists(t, clientBucket(p, 10)) {
					t.Error("a forbidden request spent its client's budget")
				}
			})
			t.Run("client budget refuses after the address's", func(t *testing.T) {
				p := prefix(t)
				g := startGateway(t, batchConfig(up.URL, tp.addrs, p, 100, 2))
				for i, want := range []int{200, 200, 429} {
					resp, body := g.do(t, "GET", "/api/items", partnerKey, nil, signedHeaders(t, "GET", "/api/items", "", fmt.Sprintf("client-nonce-%d", i), time.Now())...)
					if resp.StatusCode != want {
						t.Fatalf("request %d: %d %s, want %d", i, resp.StatusCode, body, want)
					}
					// The client's rule binds harder: its headers are the ones sent.
					if got := resp.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(max(1-i, 0)) {
						t.Errorf("request %d: RateLimit-Remaining %q, want %d", i, got, max(1-i, 0))
					}
				}
				if !exists(t, nonceKey(p, "client-nonce-2")) {
					t.Error("a request refused by its client's budget did not record its nonce, as it did before batching")
				}
			})
		})
	}
}

// Counts the commands the gateway sends Redis for signed, rate-limited requests, with
// MONITOR: one script run each (EVALSHA) on one server, where before batching each
// made three round trips (SET NX for the nonce, then an EVALSHA per rule). On a
// Cluster, one script per slot: two, sent together in one pipeline.
func TestSignedRateLimitedRequestIsOneRoundTrip(t *testing.T) {
	up := okUpstream(t)
	for _, tp := range batchTopologies(t) {
		t.Run(tp.name, func(t *testing.T) {
			g := startGateway(t, batchConfig(up.URL, tp.addrs, "sg:", 1000, 1000))
			send := func(nonce string) {
				resp, body := g.do(t, "GET", "/api/items", partnerKey, nil, signedHeaders(t, "GET", "/api/items", "", nonce, time.Now())...)
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
			}
			send("warm-up-nonce") // loads the script
			var mons []*monitor
			for _, a := range tp.masters { // a replica's MONITOR shows what it replicates
				mons = append(mons, startMonitor(t, a))
			}
			const n = 20
			for i := range n {
				send(fmt.Sprintf("counted-nonce-%02d", i))
			}
			calls := map[string]int{}
			for _, m := range mons {
				for _, c := range m.stop(t) {
					calls[c]++
				}
			}
			want := map[string]int{"evalsha": n}
			if tp.name == "cluster" {
				want["evalsha"] = 2 * n
			}
			// The cluster client's own look at the slot map may come at any time.
			delete(calls, "cluster")
			if fmt.Sprint(calls) != fmt.Sprint(want) {
				t.Fatalf("the gateway sent Redis %v for %d signed, rate-limited requests; want %v", calls, n, want)
			}
			t.Logf("%s: %d requests, commands sent %v", tp.name, n, calls)
		})
	}
}

// monitor records the commands a Redis server receives from its clients (MONITOR),
// leaving out those a script runs.
type monitor struct {
	conn net.Conn
	done chan []string
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(c)
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR on %s: %q %v", addr, line, err)
	}
	m := &monitor{conn: c, done: make(chan []string, 1)}
	go func() {
		var cmds []string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				m.done <- cmds
				return
			}
			// +1733450000.123456 [0 127.0.0.1:40000] "evalsha" "…"; a script's own
			// commands say [0 lua].
			_, rest, ok := strings.Cut(line, "] \"")
			if !ok || strings.Contains(line, " lua] ") {
				continue
			}
			name, _, _ := strings.Cut(rest, "\"")
			cmds = append(cmds, strings.ToLower(name))
		}
	}()
	return m
}

// stop ends the monitor and returns the commands it saw.
func (m *monitor) stop(t *testing.T) []string {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // the last lines in flight
	m.conn.Close()
	return <-m.done
}

// BenchmarkSignedRateLimited is row 8 of the load test in-process: a signed
// (hmac-sha256) request under an ip and a client limit, nonces and limits in a real
// redis-server, through the handler chain to an upstream. "batched" is the gateway
// as it runs (one script per request); "three-round-trips" turns batching off, which
// is how every request went before: an EVALSHA for the ip rule, a SET NX for the
// nonce, an EVALSHA for the client rule. Signing the request is in the loop, alike
// for both.
func BenchmarkSignedRateLimited(b *testing.B) {
	rs := testredis.Start(b)
	up := benchUpstream(b)
	cfg, err := parseConfig(fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
redis: {addrs: [%q]}
clients:
  - {id: sunshine-housekeeping, api_key_sha256: %q, secret: %q, signature: hmac-sha256, roles: [reader]}
roles: {reader: {allow: ["GET /api/**"]}}
upstreams: {backend: {targets: [%q]}}
routes: [{name: api, match: "* /api/**", upstream: backend}]
rate_limits:
  - {key: ip, rate: 1000000/s, burst: 1000000}
  - {key: client, rate: 1000000/s, burst: 1000000}
`, rs.Addr, auth.HashKey(partnerKey), partnerSecret, up.URL))
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	for _, tc := range []struct {
		name    string
		batched bool
	}{{"batched", true}, {"three-round-trips", false}} {
		b.Run(tc.name, func(b *testing.B) {
			srv, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), WithJSONAccessLog(io.Discard),
				func(d *deps) { d.batchLimits = tc.batched })
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.gw.Load().retire(nil); srv.deps.store.Close() })
			h := http.HandlerFunc(srv.serveGateway)
			b.ReportAllocs()
			b.SetParallelism(16) // many requests in flight, as under load
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "/api/items", nil)
					req.RemoteAddr = "192.0.2.1:40000"
					req.Header.Set("X-Api-Key", partnerKey)
					hdr, _ := auth.SignRequest("GET", "/api/items", nil, []byte(partnerSecret), time.Now(), fmt.Sprintf("bench-nonce-%d", n.Add(1)))
					for k, v := range hdr {
						req.Header.Set(k, v)
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}

// reportCPU reports the CPU time this process spent per op (user + system, all
// threads): the figure the load test's "CPU s / 10k req" column is made of, which a
// wall-clock ns/op on a shared machine is not. Call the function it returns when the
// loop is done.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

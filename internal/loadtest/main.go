// Command loadtest compares, on this machine and in one run, the upstream called
// directly, a bare proxy.Pool (httputil.ReverseProxy with the gateway's transport and
// rewrite) and signgate on an API-key route. It drives each with wrk and prints
// throughput, p50 and p99 and the ratios. `make loadtest` runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/server"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "wrk duration per target")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of one row's run to this file")
	profileRow := flag.Int("profile-row", 2, "the row -cpuprofile profiles (0 upstream, 1 bare, 2 API key, 3 hmac memory, 4 hmac Redis, 5 orders, 6 orders masked, 7 local limit, 8 Redis limit)")
	flag.Parse()
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest needs wrk: apt-get install wrk")
		os.Exit(1)
	}
	if err := run(*duration, *conns, *threads, *cpuProfile, *profileRow); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// payload is a typical small JSON answer of the backend (a service list entry).
var payload = []byte(`{"code":0,"data":[{"id":1,"name":"日常保洁","price":"50.00","unit":"hour"},{"id":2,"name":"空调清洗","price":"120.00","unit":"unit"}]}`)

// orders is a provider's order list: 20 orders with owners' phones in fields and in
// free text, about 5 KB.
var orders = func() []byte {
	var b strings.Builder
	b.WriteString(`{"code":0,"data":[`)
	for i := range 20 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"orderId":"20261123%05d","service":"日常保洁","status":2,"price":"50.00",`+
			`"owner":{"name":"张三","phone":"1381234%04d","address":"上海市浦东新区XX路%d号"},`+
			`"remark":"到了请打 +86 139-1234-%04d 谢谢","staff":[{"name":"王阿姨","userPhone":"1860000%04d"}]}`, i, i, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}()

func run(duration time.Duration, conns, threads int, cpuProfile string, profileRow int) error {
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("the Redis row needs redis-server: apt-get install redis-server")
	}

	upstream, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/orders" {
			_, _ = w.Write(orders)
			return
		}
		_, _ = w.Write(payload)
	}))
	if err != nil {
		return err
	}

	pool, err := proxy.New(proxy.Options{
		Name: "bare", Targets: []string{"http://" + upstream}, DialTimeout: 3 * time.Second,
		ResponseTimeout: 15 * time.Second, Transport: proxy.NewTransport(proxy.TransportOptions{}), Logger: quiet,
	})
	if err != nil {
		return err
	}
	bare, err := serve(pool)
	if err != nil {
		return err
	}

	const key, signKey, signSecret, maskedKey = "loadtest-key", "loadtest-signing-key", "loadtest-secret", "loadtest-provider-key"
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devNull.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// startGateway runs signgate with TLS off, so the comparison is the proxy path.
	// The access log is part of the cost being measured: it is written, with one
	// write(2) a line as on stdout in production, to /dev/null.
	startGateway := func(redisAddr string) (string, error) {
		redis := ""
		if redisAddr != "" {
			redis = fmt.Sprintf("redis: {addrs: [%q]}", redisAddr)
		}
		yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: "off"}
%s
clients:
  - {id: loadtest, api_key_sha256: %q, roles: [app]}
  - {id: signer, api_key_sha256: %q, secret: %q, signature: hmac-sha256, roles: [app]}
  - {id: provider, api_key_sha256: %q, roles: [provider]}
roles:
  app: {allow: ["GET /api/services", "GET /api/limited", "* /api/orders/**"]}
  provider: {allow: ["* /api/orders/**"], mask: true}
masking: {fields: [phone, mobile, userPhone, contactPhone], detect: [cn_mobile]}
upstreams: {backend: {targets: ["http://%s"]}}
routes:
  - {name: orders, match: "* /api/orders/**", upstream: backend}
  - {name: services, match: "GET /api/services", upstream: backend}
  - {name: limited, match: "GET /api/limited", upstream: backend}
# Limits high enough never to refuse: the rows measure the cost of deciding.
rate_limits:
  - {key: ip, routes: [limited], rate: 1000000/s, burst: 1000000}
  - {key: client, routes: [limited], rate: 1000000/s, burst: 1000000}
`, redis, auth.HashKey(key), auth.HashKey(signKey), signSecret, auth.HashKey(maskedKey), upstream)
		cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			return "", err
		}
		srv, err := server.New(cfg, slog.New(slog.NewJSONHandler(devNull, nil)))
		if err != nil {
			return "", err
		}
		if err := srv.Listen(); err != nil {
			return "", err
		}
		go srv.Serve(ctx)
		return srv.Addr().String(), nil
	}
	gw, err := startGateway("")
	if err != nil {
		return err
	}
	redisAddr, stopRedis, err := startRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	gwRedis, err := startGateway(redisAddr)
	if err != nil {
		return err
	}

	// Signed requests each need a fresh nonce, and wrk cannot compute HMAC: the
	// signatures are made ahead, more than the run can use, and a wrk Lua script
	// hands each out once.
	signed, err := signedRequests(signSecret, int(duration.Seconds()+1)*60000)
	if err != nil {
		return err
	}
	defer os.Remove(signed)

	targets := []struct{ name, url, key, signed string }{
		{"upstream direct", "http://" + upstream + "/api/services", "", ""},
		{"bare ReverseProxy", "http://" + bare + "/api/services", "", ""},
		{"signgate API key + RBAC", "http://" + gw + "/api/services", key, ""},
		{"signgate hmac, memory", "http://" + gw + "/api/services", signKey, signed},
		{"signgate hmac, Redis", "http://" + gwRedis + "/api/services", signKey, signed},
		{"signgate orders, unmasked", "http://" + gw + "/api/orders", key, ""},
		{"signgate orders, masked", "http://" + gw + "/api/orders", maskedKey, ""},
		{"signgate API key, local limit", "http://" + gw + "/api/limited", key, ""},
		{"signgate API key, Redis limit", "http://" + gwRedis + "/api/limited", key, ""},
	}
	fmt.Printf("wrk -t%d -c%d -d%s --latency, HTTP/1.1 keep-alive, %d-byte JSON body (orders: %d bytes), GOMAXPROCS=%s\n\n",
		threads, conns, duration, len(payload), len(orders), strconv.Itoa(runtime.GOMAXPROCS(0)))
	fmt.Printf("%-28s %12s %10s %10s\n", "target", "req/s", "p50", "p99")
	var results []result
	for i, t := range targets {
		if i == profileRow && cpuProfile != "" {
			f, err := os.Create(cpuProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		r, err := wrk(t.url, t.key, t.signed, duration, conns, threads)
		if i == profileRow && cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		results = append(results, r)
		fmt.Printf("%-28s %12.0f %10s %10s\n", t.name, r.rps, r.p50, r.p99)
	}
	fmt.Printf("\nbare / direct:                 %.2f×\nsigngate API key / bare:       %.2f×\n"+
		"signgate hmac memory / API key: %.2f×\nsigngate hmac Redis / API key:  %.2f×\n"+
		"orders masked / unmasked:       %.2f×\n"+
		"local limit / API key:          %.2f×\nRedis limit / API key:          %.2f×\n",
		results[1].rps/results[0].rps, results[2].rps/results[1].rps,
		results[3].rps/results[2].rps, results[4].rps/results[2].rps, results[6].rps/results[5].rps,
		results[7].rps/results[2].rps, results[8].rps/results[2].rps)
	return nil
}

// signedRequests writes n lines "timestamp nonce signature" for GET /api/services
// with an empty body, each with its own nonce.
func signedRequests(secret string, n int) (string, error) {
	f, err := os.CreateTemp("", "signgate-signed-*.txt")
	if err != nil {
		return "", err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	now := time.Now()
	for i := range n {
		nonce := fmt.Sprintf("lt-%010d", i)
		h, err := auth.SignRequest("GET", "/api/services", nil, []byte(secret), now, nonce)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(w, "%s %s %s\n", h["X-Timestamp"], h["X-Nonce"], h["X-Signature"])
	}
	return f.Name(), w.Flush()
}

// startRedis runs a redis-server on a free loopback port for the Redis row.
func startRedis() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("redis-server did not start on %s", addr)
}

// signedScript hands each wrk thread its own share of the pre-signed lines, so no
// nonce is sent twice.
const signedScript = `
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  key, path, nthreads = args[1], args[2], tonumber(args[3])
  lines, idx = {}, 0
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then lines[#lines + 1] = line end
    i = i + 1
  end
end
function request()
  idx = idx + 1
  local ts, nonce, sig = lines[idx]:match("(%S+) (%S+) (%S+)")
  return wrk.format("GET", nil, {["X-Api-Key"] = key, ["X-Timestamp"] = ts, ["X-Nonce"] = nonce, ["X-Signature"] = sig})
end
`

func serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go (&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	return ln.Addr().String(), nil
}

type result struct {
	rps      float64
	p50, p99 time.Duration
}

var (
	rpsLine = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctLine = regexp.MustCompile(`^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)`)
	non2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrk(url, key, signed string, d time.Duration, conns, threads int) (result, error) {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + d.String(), "--latency"}
	switch {
	case signed != "":
		script, err := os.CreateTemp("", "signgate-wrk-*.lua")
		if err != nil {
			return result{}, err
		}
		defer os.Remove(script.Name())
		if _, err := script.WriteString(signedScript); err != nil {
			return result{}, err
		}
		script.Close()
		args = append(args, "-s", script.Name(), url, "--", key, signed, strconv.Itoa(threads))
	case key != "":
		args = append(args, "-H", "X-Api-Key: "+key, url)
	default:
		args = append(args, url)
	}
	out, err := exec.Command("wrk", args...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	if m := non2xx.FindSubmatch(out); m != nil {
		return result{}, fmt.Errorf("%s non-2xx answers:\n%s", m[1], out)
	}
	var r result
	if m := rpsLine.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := pctLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		lat := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	if r.rps == 0 {
		return r, fmt.Errorf("could not read wrk output:\n%s", out)
	}
	return r, nil
}

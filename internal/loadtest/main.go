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
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the signgate run to this file")
	flag.Parse()
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest needs wrk: apt-get install wrk")
		os.Exit(1)
	}
	if err := run(*duration, *conns, *threads, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// payload is a typical small JSON answer of the backend (a service list entry).
var payload = []byte(`{"code":0,"data":[{"id":1,"name":"日常保洁","price":"50.00","unit":"hour"},{"id":2,"name":"空调清洗","price":"120.00","unit":"unit"}]}`)

func run(duration time.Duration, conns, threads int, cpuProfile string) error {
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))

	upstream, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
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

	const key = "loadtest-key"
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: "off"}
clients: [{id: loadtest, api_key_sha256: %q, roles: [app]}]
roles: {app: {allow: ["GET /api/services", "* /api/orders/**"]}}
upstreams: {backend: {targets: ["http://%s"]}}
routes:
  - {name: orders, match: "* /api/orders/**", upstream: backend}
  - {name: services, match: "GET /api/services", upstream: backend}
`, auth.HashKey(key), upstream)
	cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		return err
	}
	// The access log is part of the cost being measured: it is written, with one
	// write(2) a line as on stdout in production, to /dev/null.
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devNull.Close()
	srv, err := server.New(cfg, slog.New(slog.NewJSONHandler(devNull, nil)))
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)

	targets := []struct{ name, url, key string }{
		{"upstream direct", "http://" + upstream + "/api/services", ""},
		{"bare ReverseProxy", "http://" + bare + "/api/services", ""},
		{"signgate (API key + RBAC)", "http://" + srv.Addr().String() + "/api/services", key},
	}
	fmt.Printf("wrk -t%d -c%d -d%s --latency, HTTP/1.1 keep-alive, %d-byte JSON body, GOMAXPROCS=%s\n\n",
		threads, conns, duration, len(payload), strconv.Itoa(runtime.GOMAXPROCS(0)))
	fmt.Printf("%-28s %12s %10s %10s\n", "target", "req/s", "p50", "p99")
	var results []result
	for i, t := range targets {
		if i == len(targets)-1 && cpuProfile != "" {
			f, err := os.Create(cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		r, err := wrk(t.url, t.key, duration, conns, threads)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		results = append(results, r)
		fmt.Printf("%-28s %12.0f %10s %10s\n", t.name, r.rps, r.p50, r.p99)
	}
	fmt.Printf("\nbare / direct:     %.2f×\nsigngate / bare:   %.2f×\nsigngate / direct: %.2f×\n",
		results[1].rps/results[0].rps, results[2].rps/results[1].rps, results[2].rps/results[0].rps)
	return nil
}

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

func wrk(url, key string, d time.Duration, conns, threads int) (result, error) {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + d.String(), "--latency"}
	if key != "" {
		args = append(args, "-H", "X-Api-Key: "+key)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
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

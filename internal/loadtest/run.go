package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// measured is one row's result: the median of its runs, column by column.
type measured struct {
	row       row
	rps       float64
	spread    float64 // (max − min) / median of req/s over the runs
	p50, p99  time.Duration
	cpuPer10k time.Duration // the system under test's CPU time per 10 000 requests
	rss       int64         // at the end of the run
	allocs    float64       // heap allocations per request; -1 when unknown
	errors    []string      // wrk's socket errors, when any run had some
}

func run(ctx context.Context, o options) error {
	var rows, tail []row // tail: the idle and soak rows, run once after the rounds
	for _, r := range allRows {
		switch {
		case o.rows != nil && !o.rows[r.id]:
		case r.idle || r.soak:
			tail = append(tail, r)
		default:
			rows = append(rows, r)
		}
	}
	selected := append(slices.Clone(rows), tail...)
	if err := requireTools(selected); err != nil {
		return err
	}
	if slices.ContainsFunc(tail, func(r row) bool { return r.idle }) {
		// Before any system starts: they inherit the raised limit.
		if err := raiseFileLimit(o.idleConns + 1024); err != nil {
			return err
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "signgate-loadtest-")
	if err != nil {
		return err
	}
	// nginx's workers drop root for nobody and must reach their temp paths below.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "loadtest: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	started := time.Now()
	loadBefore := loadAverage()
	fmt.Fprintln(os.Stderr, "loadtest: building signgate and starting the upstream on core", loadCore)
	l, err := newLab(dir, root, selected)
	if err != nil {
		return err
	}
	defer l.close()
	l.idleConns = o.idleConns

	// Rounds rather than rows: every row runs once, then every row again, so a burst
	// of other work on the machine lands on one run of many rows, not on every run of
	// one row, and the medians stay comparable.
	runs := make([][]measured, len(rows))
	for round := range o.repeat {
		for i, r := range rows {
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "loadtest: round %d/%d, row %s: %s%s\n", round+1, o.repeat, r.id, r.name, tlsSuffix(r.tls))
			profile := round == 0 && o.cpuProfile != "" && r.id == o.profileRow
			m, err := l.measure(ctx, o, r, i*100+round*10, profile)
			if err != nil {
				return fmt.Errorf("row %s (%s%s): %w", r.id, r.name, tlsSuffix(r.tls), err)
			}
			fmt.Fprintf(os.Stderr, "loadtest:   %.0f req/s, p50 %s, p99 %s, %s CPU s per 10k, RSS %s\n",
				m.rps, fmtLatency(m.p50), fmtLatency(m.p99), fmtCPU(m.cpuPer10k), fmtBytes(m.rss))
			runs[i] = append(runs[i], m)
		}
	}
	results := make([]measured, len(rows))
	for i := range rows {
		results[i] = median(runs[i])
	}
	idles, soaks, err := l.runTail(ctx, o, tail)
	if err != nil {
		return err
	}

	rep := report{
		opts: o, results: results, idle: idles, soak: soaks, started: started, took: time.Since(started),
		machine: describeMachine(), loadBefore: loadBefore, loadAfter: loadAverage(),
	}
	text := rep.markdown()
	fmt.Print(text)
	if o.writeDoc {
		path := o.doc
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		if err := writeDoc(path, text); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "loadtest: wrote", path)
	}
	return nil
}

// runTail runs the idle and soak rows, once each. This process is their client: it
// moves to the load core for them, as wrk runs there, so the proxy core stays the
// proxy's.
func (l *lab) runTail(ctx context.Context, o options, tail []row) ([]idleResult, []soakResult, error) {
	if len(tail) == 0 {
		return nil, nil, nil
	}
	restore, err := pinSelf(loadCore)
	if err != nil {
		return nil, nil, err
	}
	defer restore()
	var idles []idleResult
	var soaks []soakResult
	for _, r := range tail {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if r.idle {
			fmt.Fprintf(os.Stderr, "loadtest: row %s: %s%s, %d idle connections\n", r.id, r.name, tlsSuffix(r.tls), o.idleConns)
			m, err := l.measureIdle(ctx, o, r)
			if err != nil {
				return nil, nil, fmt.Errorf("row %s (%s%s): %w", r.id, r.name, tlsSuffix(r.tls), err)
			}
			fmt.Fprintf(os.Stderr, "loadtest:   %d of %d open after %s (opened in %s, %d failed), RSS %s → %s, goroutines %d → %d\n",
				m.open, m.want, o.idleSettle, m.openTook.Round(time.Millisecond), m.failed, fmtBytes(m.rssBefore), fmtBytes(m.rssOpen), m.goBefore, m.goOpen)
			idles = append(idles, m)
			continue
		}
		fmt.Fprintf(os.Stderr, "loadtest: row %s: %s, %.0f req/s for %s\n", r.id, r.name, o.soakRate, o.soakFor)
		m, err := l.measureSoak(ctx, o, r)
		if err != nil {
			return nil, nil, fmt.Errorf("row %s (%s): %w", r.id, r.name, err)
		}
		f, last := m.first(), m.last()
		fmt.Fprintf(os.Stderr, "loadtest:   %.0f req/s answered, %d non-2xx, %d failed; RSS %s → %s, goroutines %d → %d\n",
			float64(m.answered)/m.took.Seconds(), m.non2xx, m.failed, fmtBytes(f.rss), fmtBytes(last.rss), f.goroutines, last.goroutines)
		soaks = append(soaks, m)
	}
	return idles, soaks, nil
}

// pinSelf moves every thread of this process to core (threads it starts later
// inherit that) and returns what puts them back where they were.
func pinSelf(core string) (func(), error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	var was string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			was = strings.TrimSpace(v)
		}
	}
	pid := strconv.Itoa(os.Getpid())
	if out, err := exec.Command("taskset", "-a", "-p", "-c", core, pid).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("taskset -a -p -c %s %s: %v\n%s", core, pid, err, out)
	}
	return func() {
		if was != "" {
			_ = exec.Command("taskset", "-a", "-p", "-c", was, pid).Run()
		}
	}, nil
}

func tlsSuffix(on bool) string {
	if on {
		return ", TLS"
	}
	return ""
}

// measure runs one row once: start its system, warm it up, run wrk reading the
// system's CPU time (and allocations) around the run, read its RSS, stop it.
func (l *lab) measure(ctx context.Context, o options, r row, runID int, profile bool) (measured, error) {
	s, err := l.start(r)
	if err != nil {
		return measured{}, err
	}
	defer s.stop()
	scheme := "http"
	if r.tls {
		scheme = "https"
	}
	w := wrkRun{dir: l.dir, url: scheme + "://" + s.addr + r.req.path, req: r.req, conns: o.connections, threads: o.threads}
	if r.oneConn {
		w.conns, w.threads = 1, 1
	}
	if r.req.session {
		token, err := l.login(scheme + "://" + s.addr)
		if err != nil {
			return measured{}, fmt.Errorf("login: %w", err)
		}
		w.req.bearer = token
	}
	if r.cached {
		if err := checkCacheHit(r, w.url); err != nil {
			return measured{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	// The signed rows need a fresh nonce per request, signed ahead: enough for the
	// rate seen in the warm-up, twice over.
	perSecond := 60000.0
	if o.warmup > 0 {
		warm := w
		warm.duration, warm.runID = o.warmup, runID
		warm.signed = signedCount(perSecond, o.warmup)
		res, err := warm.run()
		if err != nil {
			return measured{}, fmt.Errorf("warm-up: %w", err)
		}
		perSecond = max(2*res.rps, 10000)
	}
	w.duration, w.runID = o.duration, runID+1
	w.signed = signedCount(perSecond, o.duration)

	hitsBefore := cacheHits(r, s.metrics)
	mallocsBefore := mallocs(s.metrics)
	cpuBefore, err := cpuTime(s.proc.pids())
	if err != nil {
		return measured{}, err
	}
	var profiled chan error
	if profile {
		profiled = make(chan error, 1)
		go func() { profiled <- fetchProfile(ctx, s.admin, o.duration, o.cpuProfile) }()
	}
	res, err := w.run()
	if err != nil {
		return measured{}, err
	}
	cpuAfter, err := cpuTime(s.proc.pids())
	if err != nil {
		return measured{}, err
	}
	mallocsAfter := mallocs(s.metrics)
	if hitsBefore >= 0 {
		// The measured run must have been hits too, not bypasses (a Redis slower
		// than signgate's 100 ms cache timeout is skipped) or misses.
		hits := cacheHits(r, s.metrics) - hitsBefore
		if share := hits / float64(res.requests); share < minHitShare {
			return measured{}, fmt.Errorf("only %.0f of the %d measured requests (%.1f %%) were cache hits (signgate_cache_requests_total); at least %.0f %% must be",
				hits, res.requests, 100*share, 100*minHitShare)
		}
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			return measured{}, fmt.Errorf("cpu profile: %w", err)
		}
		fmt.Fprintln(os.Stderr, "loadtest: wrote the CPU profile of row", r.id, "to", o.cpuProfile)
	}
	if err := s.proc.alive(); err != nil {
		return measured{}, err
	}
	m := measured{row: r, rps: res.rps, p50: res.p50, p99: res.p99, allocs: -1,
		cpuPer10k: (cpuAfter - cpuBefore) * 10000 / time.Duration(res.requests)}
	if mallocsBefore >= 0 && mallocsAfter >= mallocsBefore {
		m.allocs = float64(mallocsAfter-mallocsBefore) / float64(res.requests)
	}
	if res.errors != "" {
		m.errors = []string{res.errors}
	}
	m.rss, err = rssBytes(s.proc.pids())
	return m, err
}

// minHitShare is the share of a cached signgate row's measured requests that must be
// cache hits. Not all: an entry that expires during the run is fetched again.
const minHitShare = 0.99

// checkCacheHit sends the row's request until the cache answers it: the first one
// may fill it, and one of the next few must be a hit (Cache-Status "signgate; hit",
// nginx's X-Cache-Status HIT). A cached row that measured misses would measure the
// wrong thing, so it fails instead.
func checkCacheHit(r row, url string) error {
	header, want := "Cache-Status", "signgate; hit"
	if r.system == sysNginx {
		header, want = "X-Cache-Status", "HIT"
	}
	// No Accept-Encoding, as wrk sends none: the content coding is part of the key.
	tr := &http.Transport{DisableCompression: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var seen []string
	for range 10 {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if r.req.apiKey != "" {
			req.Header.Set("X-Api-Key", r.req.apiKey)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("cache check: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("cache check: GET %s: %s", url, resp.Status)
		}
		v := resp.Header.Get(header)
		if strings.HasPrefix(v, want) {
			return nil
		}
		seen = append(seen, fmt.Sprintf("%q", v))
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("NO CACHE HIT: %d requests to %s, none answered from the cache (%s: %s)",
		len(seen), url, header, strings.Join(seen, ", "))
}

// cacheHits reads how many of the services route's requests signgate has answered
// from its cache; -1 for a row that is not a cached signgate row. A cached row's
// counter that cannot be read fails the row later, as too few hits.
func cacheHits(r row, metrics string) float64 {
	if !r.cached || r.system != sysSigngate {
		return -1
	}
	const series = `signgate_cache_requests_total{result="hit",route="services"}`
	return max(0, scrape(metrics, series)[series])
}

// signedCount is how many pre-signed requests a run of d at perSecond needs, with a
// second to spare.
func signedCount(perSecond float64, d time.Duration) int {
	return int(perSecond * (d.Seconds() + 1))
}

// median takes each column's median over the runs separately.
func median(runs []measured) measured {
	out := runs[0]
	pick := func(get func(measured) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	out.rps = pick(func(m measured) float64 { return m.rps })
	lo, hi := runs[0].rps, runs[0].rps
	for _, r := range runs {
		lo, hi = min(lo, r.rps), max(hi, r.rps)
	}
	if out.rps > 0 {
		out.spread = (hi - lo) / out.rps
	}
	out.p50 = time.Duration(pick(func(m measured) float64 { return float64(m.p50) }))
	out.p99 = time.Duration(pick(func(m measured) float64 { return float64(m.p99) }))
	out.cpuPer10k = time.Duration(pick(func(m measured) float64 { return float64(m.cpuPer10k) }))
	out.allocs = pick(func(m measured) float64 { return m.allocs })
	out.rss = int64(pick(func(m measured) float64 { return float64(m.rss) }))
	out.errors = nil
	for _, r := range runs {
		out.errors = append(out.errors, r.errors...)
	}
	return out
}

// mallocs reads go_memstats_mallocs_total from a Prometheus text endpoint; -1 when
// there is none or it cannot be read.
func mallocs(url string) int64 {
	return int64(scrape(url, "go_memstats_mallocs_total")["go_memstats_mallocs_total"])
}

// scrape reads unlabelled samples from a Prometheus text endpoint; a name it cannot
// read is -1, as is every name when url is "".
func scrape(url string, names ...string) map[string]float64 {
	out := make(map[string]float64, len(names))
	for _, n := range names {
		out[n] = -1
	}
	if url == "" {
		return out
	}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if _, want := out[name]; !ok || !want {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// fetchProfile writes signgate's CPU profile over d (/debug/pprof/profile on the
// admin listener, server.pprof: true) to path.
func fetchProfile(ctx context.Context, admin string, d time.Duration, path string) error {
	secs := max(1, int(d.Seconds()))
	return fetchPprof(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs), path)
}

// fetchPprof saves what the pprof endpoint at url answers to path.
func fetchPprof(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// moduleRoot is the directory of signgate's go.mod, where ./cmd/signgate is built
// and docs/ lives.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the load test inside the signgate module (make loadtest, or go run ./internal/loadtest from the repository)")
	}
	return filepath.Dir(mod), nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakResult is what a soak row measured: a paced, steady rate for a while, with
// the system's RSS and goroutines read at even intervals.
type soakResult struct {
	row      row
	rate     float64 // asked, req/s
	conns    int
	took     time.Duration
	answered int64 // requests answered, 2xx or not
	non2xx   int64
	failed   int64 // no answer: refused, reset, timed out
	firstErr string
	// samples[0] is before the load; then one every -soak-every, the last at
	// -soak-duration, all while the load runs. samples[1] ends the warm-up.
	samples []soakSample
}

type soakSample struct {
	at         time.Duration
	rss        int64
	goroutines int // -1 without a /metrics
	fds        int // open sockets and files: goroutines that move with them are connections
}

// first, last and peak are the samples the report compares: after the warm-up, at
// the end, and the highest of each column from the warm-up on.
func (s soakResult) first() soakSample { return s.samples[1] }
func (s soakResult) last() soakSample  { return s.samples[len(s.samples)-1] }
func (s soakResult) peak() soakSample {
	p := s.first()
	for _, x := range s.samples[1:] {
		p.rss, p.goroutines = max(p.rss, x.rss), max(p.goroutines, x.goroutines)
	}
	return p
}

// flat is the verdict on leaks: RSS at the end within 10 % of RSS after the warm-up,
// and goroutines within 5 of theirs, or within 5 once two for each upstream
// connection opened or closed in between are taken out (the client's connections are
// fixed, so the system's descriptors move with its upstream pool, and Go's Transport
// runs two goroutines a connection).
func (s soakResult) flat() (rss, goroutines bool) {
	f, l := s.first(), s.last()
	rss = l.rss <= f.rss+f.rss/10 && l.rss >= f.rss-f.rss/10
	within5 := func(d int) bool { return d >= -5 && d <= 5 }
	goroutines = f.goroutines >= 0 && (within5(l.goroutines-f.goroutines) || within5(s.unexplained()))
	return rss, goroutines
}

// unexplained is the goroutines' change from the warm-up reading to the last that
// the system's open connections do not account for.
func (s soakResult) unexplained() int {
	f, l := s.first(), s.last()
	return (l.goroutines - f.goroutines) - 2*(l.fds-f.fds)
}

// measureSoak starts r's system and sends it o.soakRate req/s over o.soakConns
// keep-alive connections for o.soakFor, reading its RSS and go_goroutines every
// o.soakEvery.
func (l *lab) measureSoak(ctx context.Context, o options, r row) (soakResult, error) {
	if r.tls {
		return soakResult{}, fmt.Errorf("row %s: the soak client speaks plain HTTP only", r.id)
	}
	s, err := l.start(r)
	if err != nil {
		return soakResult{}, err
	}
	defer s.stop()
	res := soakResult{row: r, rate: o.soakRate, conns: o.soakConns}
	read := func(at time.Duration) error {
		rss, err := rssBytes(s.proc.pids())
		if err != nil {
			return err
		}
		g := int(scrape(s.metrics, "go_goroutines")["go_goroutines"])
		res.samples = append(res.samples, soakSample{at: at, rss: rss, goroutines: g, fds: fdCount(s.proc.pids())})
		return nil
	}
	if err := read(0); err != nil {
		return soakResult{}, err
	}

	url := "http://" + s.addr + r.req.path
	var answered, non2xx, failed atomic.Int64
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if res.firstErr == "" {
			res.firstErr = err.Error()
		}
		mu.Unlock()
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	send := func(client *http.Client) {
		req, err := http.NewRequestWithContext(loadCtx, http.MethodGet, url, nil)
		if err != nil {
			panic(err) // url is built above and parses
		}
		if r.req.apiKey != "" {
			req.Header.Set("X-Api-Key", r.req.apiKey)
		}
		resp, err := client.Do(req)
		if err != nil {
			if loadCtx.Err() == nil {
				failed.Add(1)
				fail(err)
			}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered.Add(1)
		if resp.StatusCode/100 != 2 {
			non2xx.Add(1)
			fail(fmt.Errorf("answered %s", resp.Status))
		}
	}
	// A connection each: a shared pool would open more as bursts come, and the
	// system's goroutines (one per connection) would creep with it.
	clients := make([]*http.Client, o.soakConns)
	for i := range clients {
		tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	// First one request on every connection at once, so all are open, and the
	// system's upstream pool (two goroutines a connection in Go) has grown to what
	// that many requests at once need, before the warm-up reading: growth after it is
	// the system's own, not the pools filling.
	var prime sync.WaitGroup
	for _, c := range clients {
		prime.Go(func() { send(c) })
	}
	prime.Wait()

	// Open loop: request k is due at start + k/rate, whoever sends it, so one slow
	// answer holds up one connection, not the schedule.
	start := time.Now()
	var next atomic.Int64
	var workers sync.WaitGroup
	for _, c := range clients {
		workers.Go(func() {
			for {
				k := next.Add(1) - 1
				due := start.Add(time.Duration(float64(k) / o.soakRate * float64(time.Second)))
				select {
				case <-loadCtx.Done():
					return
				case <-time.After(time.Until(due)):
				}
				send(c)
			}
		})
	}
	// The readings drive the run: the load stops right after the last one, so every
	// reading but the first is taken under load.
	var readErr error
	for k := 1; time.Duration(k)*o.soakEvery <= o.soakFor && readErr == nil; k++ {
		at := time.Duration(k) * o.soakEvery
		select {
		case <-ctx.Done():
			readErr = ctx.Err()
		case <-time.After(time.Until(start.Add(at))):
			readErr = read(at)
		}
	}
	stopLoad()
	workers.Wait()
	res.took = time.Since(start)
	res.answered, res.non2xx, res.failed = answered.Load(), non2xx.Load(), failed.Load()
	if readErr != nil {
		return soakResult{}, readErr
	}
	if res.answered == 0 {
		return soakResult{}, fmt.Errorf("no request was answered: %s", res.firstErr)
	}
	return res, s.proc.alive()
}

func (rep report) soakTable(b *strings.Builder) {
	o := rep.opts
	fmt.Fprintf(b, "Steady load (`-soak-rate %.0f -soak-conns %d -soak-duration %s`): a paced Go client sends %s req/s "+
		"over %d keep-alive connections for %s; the system's VmRSS and `go_goroutines` are read before, then every %s "+
		"under load; the first reading under load ends the warm-up:\n\n",
		o.soakRate, o.soakConns, o.soakFor, fmtCount(int(o.soakRate)), o.soakConns, o.soakFor, o.soakEvery)
	var rows [][]string
	for _, m := range rep.soak {
		f, l, p := m.first(), m.last(), m.peak()
		before := m.samples[0]
		rssFlat, goFlat := m.flat()
		flat := func(ok bool) string {
			if ok {
				return "flat"
			}
			return "**not flat**"
		}
		rows = append(rows, []string{m.row.num, m.row.name, fmt.Sprintf("%.0f", float64(m.answered)/m.took.Seconds()),
			fmtCount(int(m.non2xx)), fmtCount(int(m.failed)),
			fmt.Sprintf("%s / %s / %s / %s", fmtMB(before.rss), fmtMB(f.rss), fmtMB(l.rss), fmtMB(p.rss)), flat(rssFlat),
			fmt.Sprintf("%d / %d / %d / %d", before.goroutines, f.goroutines, l.goroutines, p.goroutines), flat(goFlat)})
	}
	b.WriteString(table([]string{"#", "system under test", "req/s answered", "non-2xx", "failed",
		"RSS MB: before / warm / last / max", "", "goroutines: before / warm / last / max", ""}, "llrrrrlrl", rows))
	b.WriteString("\nwarm: the first reading under load; max: the highest from it on. Flat: the last reading within 10 % of warm (RSS); within ±5 of it (goroutines), " +
		"or within ±5 once two goroutines for each upstream connection opened or closed in between (the change in open file descriptors) are taken out: " +
		"signgate runs one goroutine per client connection and Go's Transport two per upstream connection, so its count moves with its upstream pool.\n")
	for _, m := range rep.soak {
		var rss, g, fds []string
		for _, x := range m.samples {
			rss = append(rss, fmtMB(x.rss))
			g = append(g, strconv.Itoa(x.goroutines))
			fds = append(fds, strconv.Itoa(x.fds))
		}
		fmt.Fprintf(b, "\nRow %s, every %s from before the load: RSS MB %s; goroutines %s; open fds %s.\n", m.row.id, o.soakEvery,
			strings.Join(rss, ", "), strings.Join(g, ", "), strings.Join(fds, ", "))
		if m.firstErr != "" {
			fmt.Fprintf(b, "\nRow %s: %s non-2xx, %s failed; the first: %s\n", m.row.id, fmtCount(int(m.non2xx)), fmtCount(int(m.failed)), m.firstErr)
		}
	}
}

// soakTargets: issue 8 asks for flat goroutines and RSS at 1 000 req/s for a minute;
// a gentler or shorter run reports its figures without a verdict.
func (rep report) soakTargets() [][]string {
	var out [][]string
	for _, m := range rep.soak {
		f, l := m.first(), m.last()
		rssFlat, goFlat := m.flat()
		label := fmt.Sprintf("API key + RBAC (6), %s req/s for %s: RSS and goroutines flat", fmtCount(int(m.rate)), rep.opts.soakFor)
		v := verdict(rssFlat && goFlat)
		if m.rate < 1000 || rep.opts.soakFor < time.Minute {
			v = "for reference"
		}
		measured := fmt.Sprintf("RSS %s %%, goroutines %s", signed(int(math.Round(100*float64(l.rss-f.rss)/float64(f.rss)))), signed(l.goroutines-f.goroutines))
		if d := l.goroutines - f.goroutines; d < -5 || d > 5 {
			measured += fmt.Sprintf(" (%s beside the connections)", signed(m.unexplained()))
		}
		out = append(out, []string{label, measured, "", v})
	}
	return out
}

// signed writes n with its sign, and 0 as ±0.
func signed(n int) string {
	if n == 0 {
		return "±0"
	}
	return fmt.Sprintf("%+d", n)
}

func fmtMB(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

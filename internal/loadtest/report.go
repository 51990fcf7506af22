package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// report renders the results as the Markdown that goes to stdout and, with
// -write-doc, between the markers of docs/performance.md.
type report struct {
	opts                  options
	results               []measured
	idle                  []idleResult
	soak                  []soakResult
	started               time.Time
	took                  time.Duration
	machine               string
	loadBefore, loadAfter string
}

func (rep report) get(id string) (measured, bool) {
	for _, m := range rep.results {
		if m.row.id == id {
			return m, true
		}
	}
	return measured{}, false
}

func (rep report) markdown() string {
	var b strings.Builder
	o := rep.opts
	fmt.Fprintf(&b, "%s, `%s`, %s.\n\n", rep.started.Format("2006-01-02 15:04 MST"), command(o.args), rep.took.Round(time.Second))
	fmt.Fprintf(&b, "Machine: %s. Load average (1 min) %s before, %s after.\n\n", rep.machine, rep.loadBefore, rep.loadAfter)
	warm := "no warm-up"
	if o.warmup > 0 {
		warm = "a " + o.warmup.String() + " warm-up"
	}
	if len(rep.results) > 0 {
		fmt.Fprintf(&b, "`wrk -t%d -c%d -d%s --latency`, HTTP/1.1 keep-alive. %s, each row once per round "+
			"(its system started afresh, %s, one measured run); each column is the median over the rounds. "+
			"The upstream answers %d bytes of JSON (row 9: a %d-byte order list).\n\n",
			o.threads, o.connections, o.duration, rounds(o.repeat), warm, len(payload), len(orders))
	}

	var throughput, latency [][]string
	for _, m := range rep.results {
		if m.row.oneConn {
			continue
		}
		ratio := "—"
		if d, ok := rep.get(m.row.directID()); ok && d.rps > 0 {
			ratio = fmt.Sprintf("%.2f×", m.rps/d.rps)
		}
		tls := "off"
		if m.row.tls {
			tls = "on"
		}
		allocs := "—"
		if m.allocs >= 0 {
			allocs = fmt.Sprintf("%.0f", m.allocs)
		}
		throughput = append(throughput, []string{m.row.num, m.row.name, tls, fmt.Sprintf("%.0f", m.rps),
			fmt.Sprintf("%.0f %%", 100*m.spread), ratio,
			fmtLatency(m.p50), fmtLatency(m.p99), fmtCPU(m.cpuPer10k), fmtBytes(m.rss), allocs})
	}
	if len(throughput) > 0 {
		b.WriteString(table([]string{"#", "system under test", "TLS", "req/s", "spread", "× direct", "p50", "p99",
			"CPU s / 10k req", "RSS", "allocs / req"}, "lllrrrrrrrr", throughput))
		b.WriteString("\nspread: (highest − lowest) / median req/s over the rounds. Direct rows: the CPU, RSS and allocations are the upstream's own (on core 0, with wrk). " +
			"RSS: VmRSS at the end of the run; nginx: master + worker summed. allocs / req: `go_memstats_mallocs_total` over the run; " +
			"— where the process has no such counter (nginx) or its admin endpoint is off (Caddy).\n")
		if slices.ContainsFunc(rep.results, func(m measured) bool { return m.row.cached }) {
			fmt.Fprintf(&b, "\nCached rows (6c, 6r, 3c): row 6's request (3c: row 3's) answered from a warm response cache. "+
				"signgate: the route has `cache: {ttl: 60s, scope: all}`, with the in-process tier and no Redis (6c), or "+
				"`cache.memory_bytes: 0` and redis-server on core %s, so every hit is read from Redis (6r). "+
				"nginx: `proxy_cache` with its keys_zone in shared memory and its files on tmpfs, `proxy_cache_valid 200 60s`. "+
				"Before wrk starts, one request fills the cache and the next must be a hit (`Cache-Status: signgate; hit`, "+
				"nginx's `$upstream_cache_status` HIT), or the row fails; signgate's rows fail too unless "+
				"`signgate_cache_requests_total` counts at least %.0f %% of the measured requests as hits.\n",
				loadCore, 100*minHitShare)
		}
		if _, ok := rep.get("6t"); ok {
			b.WriteString("\nTraced row (6t): row 6 with `tracing: {sample_ratio: 1}`, every request's spans (server, auth, upstream) " +
				"batched and exported over OTLP/HTTP protobuf to the upstream process, which reads and acknowledges them as a collector would.\n")
		}
	}

	direct, haveDirect := rep.get("lat1")
	for _, m := range rep.results {
		if !m.row.oneConn {
			continue
		}
		add50, add99 := "—", "—"
		if haveDirect && m.row.id != "lat1" {
			add50, add99 = "+"+fmtLatency(m.p50-direct.p50), "+"+fmtLatency(m.p99-direct.p99)
		}
		core := "core " + proxyCore
		switch {
		case m.row.system == sysDirect:
			core = "—"
		case m.row.sameCore:
			core = "core " + loadCore + ", with wrk"
		}
		latency = append(latency, []string{m.row.num, m.row.name, core, fmtLatency(m.p50), fmtLatency(m.p99), add50, add99})
	}
	if len(latency) > 0 {
		fmt.Fprintf(&b, "\nLatency at one connection (`wrk -t1 -c1 -d%s`, TLS off; wrk and the upstream on core %s, "+
			"the proxy on core %s as above, or on core %s with them):\n\n", o.duration, loadCore, proxyCore, loadCore)
		b.WriteString(table([]string{"#", "system under test", "proxy on", "p50", "p99", "p50 added", "p99 added"}, "lllrrrr", latency))
	}

	if len(rep.idle) > 0 {
		paragraph(&b)
		rep.idleTable(&b)
	}
	if len(rep.soak) > 0 {
		paragraph(&b)
		rep.soakTable(&b)
	}

	if t := rep.targets(); len(t) > 0 {
		b.WriteString("\nIssue 8's targets (and issue 17's, for the cached rows), from this run:\n\n")
		b.WriteString(table([]string{"target", "measured", "by CPU / req", ""}, "lrrl", t))
	}
	for _, m := range rep.results {
		for _, e := range m.errors {
			fmt.Fprintf(&b, "\nRow %s: wrk reported %s\n", m.row.id, e)
		}
	}
	return b.String()
}

// targets compares the run with issue 8's targets, for the rows it has.
func (rep report) targets() [][]string {
	var out [][]string
	// Beside req/s, the same ratio by CPU time per request: what each would serve
	// with its core to itself, whatever held back the other core.
	ratio := func(label, a, b string, want float64) {
		x, ok1 := rep.get(a)
		y, ok2 := rep.get(b)
		if !ok1 || !ok2 || y.rps == 0 {
			return
		}
		r := x.rps / y.rps
		byCPU := "—"
		if x.cpuPer10k > 0 {
			byCPU = fmt.Sprintf("%.2f×", float64(y.cpuPer10k)/float64(x.cpuPer10k))
		}
		v := "for reference"
		if want > 0 {
			v = verdict(r >= want)
		}
		out = append(out, []string{label, fmt.Sprintf("%.2f×", r), byCPU, v})
	}
	ratio("signgate plain (5) ≥ 1.3× Caddy (4)", "5", "4", 1.3)
	ratio("… with TLS (5 / 4, TLS on)", "5tls", "4tls", 1.3)
	ratio("signgate plain (5) ≥ 0.65× nginx (3)", "5", "3", 0.65)
	ratio("… with TLS (5 / 3, TLS on)", "5tls", "3tls", 0.65)
	ratio("signgate plain (5) ≥ 1.1× bare ReverseProxy (2)", "5", "2", 1.1)
	ratio("signgate plain (5) / proxy.Pool alone (2p): the middleware's cost", "5", "2p", 0)
	ratio("fully featured route (9) ≥ Caddy (4)", "9", "4", 1.0)
	ratio("cached route, in-process hit (6c) ≥ 2× uncached (6)", "6c", "6", 2)
	ratio("cached route, Redis hit (6r) ≥ uncached (6)", "6r", "6", 1)
	ratio("in-process hit (6c) ≥ 0.6× nginx proxy_cache hit (3c)", "6c", "3c", 0.6)
	ratio("traced at ratio 1.0 (6t) ≥ 0.85× untraced (6)", "6t", "6", 0.85)
	ratio("hmac + nonces and limits in Redis (8) ≥ 0.85× local limits (7)", "8", "7", 0.85)
	ratio("… on a Redis Cluster (8k / 7)", "8k", "7", 0)
	ratio("WeChat-session route (6w) ≥ 0.9× API key alone (6)", "6w", "6", 0.9)
	ratio("booking validated (11v) ≥ 0.85× unvalidated (11)", "11v", "11", 0.85)
	added := func(label, id string, pick func(measured) time.Duration, limit time.Duration) {
		d, ok1 := rep.get("lat1")
		m, ok2 := rep.get(id)
		if !ok1 || !ok2 {
			return
		}
		a := pick(m) - pick(d)
		out = append(out, []string{label, "+" + fmtLatency(a), "", verdict(a <= limit)})
	}
	p50 := func(m measured) time.Duration { return m.p50 }
	p99 := func(m measured) time.Duration { return m.p99 }
	for _, c := range []struct{ id, what string }{
		{"lat5", "plain route (5)"}, {"lat6", "API key + RBAC (6)"},
		{"lat5c", "plain route (5), one core"}, {"lat6c", "API key + RBAC (6), one core"},
	} {
		added(c.what+", p50 added at 1 connection ≤ 100 µs", c.id, p50, 100*time.Microsecond)
		added(c.what+", p99 added at 1 connection ≤ 400 µs", c.id, p99, 400*time.Microsecond)
	}
	out = append(out, rep.idleTargets()...)
	out = append(out, rep.soakTargets()...)
	return out
}

// paragraph ends b with a blank line, whatever the section before it ended with.
func paragraph(b *strings.Builder) {
	if !strings.HasSuffix(b.String(), "\n\n") {
		b.WriteString("\n")
	}
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "**missed**"
}

// table renders an aligned Markdown table; align has one 'l' or 'r' per column.
func table(head []string, align string, rows [][]string) string {
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], displayWidth(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-displayWidth(c))
			if align[i] == 'r' {
				fmt.Fprintf(&b, " %s%s |", pad, c)
			} else {
				fmt.Fprintf(&b, " %s%s |", c, pad)
			}
		}
		b.WriteString("\n")
	}
	line(head)
	b.WriteString("|")
	for i := range head {
		if align[i] == 'r' {
			fmt.Fprintf(&b, " %s: |", strings.Repeat("-", width[i]-1))
		} else {
			fmt.Fprintf(&b, " %s |", strings.Repeat("-", width[i]))
		}
	}
	b.WriteString("\n")
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// displayWidth counts CJK characters as two columns, as terminals show them.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x2E80 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func rounds(n int) string {
	if n == 1 {
		return "One round"
	}
	return fmt.Sprintf("%d rounds", n)
}

func fmtLatency(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtLatency(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func fmtCPU(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

// fmtCount writes n with a space between thousands, as the prose does: 10 000.
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && c != '-' && s[i-1] != '-' {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// command is how this run was started, as a reader would type it.
func command(args []string) string {
	if len(args) == 0 {
		return "go run ./internal/loadtest"
	}
	return "go run ./internal/loadtest " + strings.Join(args, " ")
}

// describeMachine names the CPU, kernel, OS and the versions of every program in the
// table.
func describeMachine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	osName := "Linux"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		if m := regexp.MustCompile(`(?m)^PRETTY_NAME="?([^"\n]+)"?$`).FindSubmatch(b); m != nil {
			osName = string(m[1])
		}
	}
	version := func(re string, argv ...string) string {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if m := regexp.MustCompile(re).FindSubmatch(out); m != nil {
			return string(m[1])
		}
		return "?"
	}
	return fmt.Sprintf("nproc %d, %s, kernel %s, %s; %s, nginx %s, Caddy %s, redis-server %s, wrk %s",
		runtime.NumCPU(), cpu, kernel, osName, runtime.Version(),
		version(`nginx/(\S+)`, "nginx", "-v"),
		version(`v?(\d+\.\d+\.\d+\S*)`, "caddy", "version"),
		version(`v=(\S+)`, "redis-server", "--version"),
		version(`wrk (?:debian/)?(\S+)`, "wrk", "-v"))
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// The generated part of docs/performance.md's load-test section sits between these;
// the notes around them are written by hand.
const (
	docBegin = "<!-- loadtest:begin (written by go run ./internal/loadtest -write-doc) -->"
	docEnd   = "<!-- loadtest:end -->"
)

func writeDoc(path, text string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(doc, []byte(docBegin))
	j := bytes.Index(doc, []byte(docEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q … %q markers to write the table between", path, docBegin, docEnd)
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(docBegin)])
	out.WriteString("\n\n")
	out.WriteString(text)
	out.WriteString("\n")
	out.Write(doc[j:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}

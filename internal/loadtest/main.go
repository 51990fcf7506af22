// Command loadtest measures signgate side by side with the proxies an operator would
// pick instead (nginx, Caddy, a bare httputil.ReverseProxy) in front of the same
// upstream, on this machine, and writes the table to docs/performance.md.
//
// Every system under test runs as its own process pinned to core 1 (`taskset -c 1`,
// GOMAXPROCS=1 for the Go ones); wrk, the upstream, redis-server and the 58到家 sandbox
// share core 0. So each proxy gets the same one-core budget, and "× direct" reads as
// "how close this proxy comes to not being the bottleneck": with core 0 doing the same
// wrk and upstream work per request in every row, a proxy that cost nothing would
// reach 1.0×.
//
// `make loadtest` installs the tools (scripts/loadtest-deps) and runs it. The same
// binary serves as the upstream and the bare proxy: `loadtest upstream …` and
// `loadtest bare …` are the subcommands it starts itself with.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "upstream":
			os.Exit(upstreamMain(os.Args[2:]))
		case "bare":
			os.Exit(bareMain(os.Args[2:]))
		}
	}
	os.Exit(loadtestMain(os.Args[1:]))
}

// options are the load test's flags.
type options struct {
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	repeat      int
	rows        map[string]bool // nil: every row
	cpuProfile  string
	heapProfile string // with idle rows: signgate's heap once its connections sit idle
	profileRow  string
	writeDoc    bool
	doc         string
	keep        bool
	args        []string

	idleConns  int           // connections the idle rows open
	idleSettle time.Duration // how long they sit idle before the figures are read
	soakRate   float64       // req/s the soak rows send
	soakConns  int           // over this many keep-alive connections
	soakFor    time.Duration
	soakEvery  time.Duration // how often the soak rows read RSS and goroutines
}

func loadtestMain(args []string) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	var o options
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "wrk duration of each measured run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured wrk run before each row's measured runs (0: none)")
	fs.IntVar(&o.connections, "connections", 64, "wrk connections (the latency rows use 1)")
	fs.IntVar(&o.threads, "threads", 1, "wrk threads; wrk has one core (core 0), shared with the upstream")
	fs.IntVar(&o.repeat, "repeat", 3, "measured runs per row; the table reports the median")
	rows := fs.String("rows", "", "comma-separated row ids to run (default: all): "+strings.Join(rowIDs(), ","))
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of -profile-row's first measured run (a signgate or the bare row) to this file, from /debug/pprof/profile")
	fs.StringVar(&o.heapProfile, "heapprofile", "", "write a heap profile of signgate (/debug/pprof/heap) to this file once an idle row's connections sit idle; the row id is added to the name")
	fs.StringVar(&o.profileRow, "profile-row", "5", "the signgate or bare row -cpuprofile profiles")
	fs.BoolVar(&o.writeDoc, "write-doc", false, "write the tables into the load-test section of -doc")
	fs.StringVar(&o.doc, "doc", "docs/performance.md", "the document -write-doc updates (between its loadtest:begin and loadtest:end markers)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs) for inspection")
	fs.IntVar(&o.idleConns, "idle-conns", 10000, "keep-alive connections the idle rows open and leave idle")
	fs.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "how long the idle rows' connections sit idle before RSS is read")
	fs.Float64Var(&o.soakRate, "soak-rate", 1000, "req/s the soak rows send, paced")
	fs.IntVar(&o.soakConns, "soak-conns", 32, "keep-alive connections the soak rows send over")
	fs.DurationVar(&o.soakFor, "soak-duration", time.Minute, "how long the soak rows send")
	fs.DurationVar(&o.soakEvery, "soak-every", 5*time.Second, "how often the soak rows read RSS and goroutines; the first reading after the start ends the warm-up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.repeat < 1 || o.connections < 1 || o.threads < 1 || o.threads > o.connections {
		fmt.Fprintln(os.Stderr, "loadtest: -repeat, -connections and -threads must be at least 1, and -threads at most -connections")
		return 2
	}
	if o.idleConns < 1 || o.soakRate <= 0 || o.soakConns < 1 || o.soakEvery <= 0 || o.soakFor < 2*o.soakEvery {
		fmt.Fprintln(os.Stderr, "loadtest: -idle-conns, -soak-rate, -soak-conns and -soak-every must be positive, and -soak-duration at least twice -soak-every")
		return 2
	}
	if *rows != "" {
		o.rows = make(map[string]bool)
		known := make(map[string]bool)
		for _, id := range rowIDs() {
			known[id] = true
		}
		for _, id := range strings.Split(*rows, ",") {
			id = strings.TrimSpace(id)
			if !known[id] {
				fmt.Fprintf(os.Stderr, "loadtest: -rows: unknown row %q (rows: %s)\n", id, strings.Join(rowIDs(), ","))
				return 2
			}
			o.rows[id] = true
		}
	}
	if o.cpuProfile != "" {
		r, ok := rowByID(o.profileRow)
		if !ok || (r.system != sysSigngate && r.system != sysBare && r.system != sysPool) {
			fmt.Fprintf(os.Stderr, "loadtest: -profile-row %q is not a signgate or bare row\n", o.profileRow)
			return 2
		}
		if o.rows != nil && !o.rows[o.profileRow] {
			fmt.Fprintf(os.Stderr, "loadtest: -profile-row %s is not among -rows\n", o.profileRow)
			return 2
		}
	}
	o.args = args

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	}
	return 0
}

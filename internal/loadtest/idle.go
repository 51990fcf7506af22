package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// idleResult is what an idle row measured: the system under test holding many
// keep-alive connections, each idle after one answer.
type idleResult struct {
	row      row
	want     int // connections asked for
	opened   int // connections that got a 2xx answer and were left open
	failed   int // connections refused, reset, closed or answered non-2xx
	firstErr string
	openTook time.Duration // from the first dial to the last answer

	// Read after -idle-settle with the connections idle.
	open                int   // of the opened, still open (the client's view)
	fds                 int   // the system's open file descriptors
	rssBefore, rssOpen  int64 // VmRSS before the first dial, and with the connections open
	goBefore, goOpen    int   // go_goroutines; -1 without a /metrics
	heapOpen, stackOpen int64 // go_memstats_heap_inuse_bytes and _stack_inuse_bytes; -1 without
}

// dialParallel is how many connections the idle client opens at once: enough to
// keep the proxy busy, few enough that no SYN waits in an overflowing backlog.
const dialParallel = 64

// measureIdle starts r's system, reads its RSS, opens o.idleConns connections that
// each send one GET and read the answer, leaves them idle for o.idleSettle and reads
// RSS, goroutines and how many connections are still open.
func (l *lab) measureIdle(ctx context.Context, o options, r row) (idleResult, error) {
	s, err := l.start(r)
	if err != nil {
		return idleResult{}, err
	}
	defer s.stop()
	if err := checkFileLimit(s.proc.pids(), o.idleConns+256); err != nil {
		return idleResult{}, err
	}
	res := idleResult{row: r, want: o.idleConns}
	before := scrape(s.metrics, "go_goroutines")
	res.goBefore = int(before["go_goroutines"])
	if res.rssBefore, err = rssBytes(s.proc.pids()); err != nil {
		return idleResult{}, err
	}

	var conf *tls.Config
	if r.tls {
		if conf, err = l.clientTLS(); err != nil {
			return idleResult{}, err
		}
		conf.ServerName, _, _ = net.SplitHostPort(s.addr)
	}
	c := &idleClient{addr: s.addr, tls: conf, req: idleRequest(s.addr, r.req)}
	defer c.close()
	started := time.Now()
	c.openAll(ctx, o.idleConns)
	res.openTook = time.Since(started)
	res.opened, res.failed, res.firstErr = int(c.opened.Load()), int(c.failed.Load()), c.firstError()
	if res.opened == 0 {
		return idleResult{}, fmt.Errorf("no connection got an answer: %s", res.firstErr)
	}
	select {
	case <-ctx.Done():
		return idleResult{}, ctx.Err()
	case <-time.After(o.idleSettle):
	}

	res.open = int(c.open.Load())
	res.fds = fdCount(s.proc.pids())
	if res.rssOpen, err = rssBytes(s.proc.pids()); err != nil {
		return idleResult{}, err
	}
	after := scrape(s.metrics, "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	if o.heapProfile != "" && r.system == sysSigngate {
		path := o.heapProfile + "." + r.id
		if err := fetchPprof(ctx, "http://"+s.admin+"/debug/pprof/heap?gc=1", path); err != nil {
			return idleResult{}, fmt.Errorf("heap profile: %w", err)
		}
		fmt.Fprintln(os.Stderr, "loadtest: wrote the heap profile of row", r.id, "to", path)
	}
	res.goOpen = int(after["go_goroutines"])
	res.heapOpen, res.stackOpen = int64(after["go_memstats_heap_inuse_bytes"]), int64(after["go_memstats_stack_inuse_bytes"])
	return res, s.proc.alive()
}

// clientTLS trusts the lab's one certificate, as a client would trust the real one;
// HTTP/1.1 only, so each connection is a keep-alive connection, not an h2 session.
func (l *lab) clientTLS() (*tls.Config, error) {
	pem, err := os.ReadFile(l.cert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", l.cert)
	}
	return &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}, nil
}

// idleRequest is the one GET each idle connection sends, as raw HTTP/1.1.
func idleRequest(addr string, req request) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: signgate-loadtest-idle\r\n", req.path, addr)
	if req.apiKey != "" {
		fmt.Fprintf(&b, "X-Api-Key: %s\r\n", req.apiKey)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// idleClient holds the idle connections. A goroutine per connection blocks reading
// it, so open counts down the moment the server closes one (its idle timeout, say).
type idleClient struct {
	addr string
	tls  *tls.Config // nil: plain TCP
	req  []byte

	mu       sync.Mutex
	conns    []net.Conn
	firstErr error

	opened, failed, open atomic.Int64
	watchers             sync.WaitGroup
}

// openAll opens n connections, dialParallel at a time, and returns when each has its
// answer or has failed.
func (c *idleClient) openAll(ctx context.Context, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(dialParallel, n) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if err := c.openOne(ctx); err != nil {
					c.failed.Add(1)
					c.mu.Lock()
					if c.firstErr == nil {
						c.firstErr = err
					}
					c.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}

// openOne dials, sends the GET, reads the answer and leaves the connection open.
func (c *idleClient) openOne(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := func() (*http.Response, error) {
		if _, err := conn.Write(c.req); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, err
	}()
	switch {
	case err != nil:
	case resp.StatusCode/100 != 2:
		err = fmt.Errorf("answered %s", resp.Status)
	case resp.Close:
		err = errors.New("the server closed the connection after its answer")
	}
	if err != nil {
		conn.Close()
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	c.opened.Add(1)
	c.open.Add(1)
	c.watchers.Go(func() {
		_, _ = br.ReadByte() // returns when either side closes
		c.open.Add(-1)
	})
	return nil
}

func (c *idleClient) firstError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstErr == nil {
		return ""
	}
	return c.firstErr.Error()
}

// close closes every connection and waits for their goroutines.
func (c *idleClient) close() {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	c.watchers.Wait()
}

// raiseFileLimit lifts this process's soft limit on open files to the hard limit,
// failing when even that is below need. Calling syscall.Setrlimit also tells Go not
// to restore the original soft limit in the processes it starts, so the systems under
// test inherit the raised one: nginx has no other way to get it.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Max < uint64(need) {
		return fmt.Errorf("the idle rows need %d open files and the hard limit is %d: raise it (ulimit -Hn, LimitNOFILE=), lower -idle-conns, or leave the idle rows out with -rows", need, lim.Max)
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// checkFileLimit fails when a process's soft limit on open files is below need.
func checkFileLimit(pids []int, need int) error {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			rest, ok := strings.CutPrefix(line, "Max open files")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) == 0 || f[0] == "unlimited" {
				break
			}
			if soft, err := strconv.Atoi(f[0]); err == nil && soft < need {
				return fmt.Errorf("pid %d may open %d files, fewer than the %d the idle row needs", pid, soft, need)
			}
		}
	}
	return nil
}

// fdCount is the processes' summed open file descriptors.
func fdCount(pids []int) int {
	n := 0
	for _, pid := range pids {
		entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		n += len(entries)
	}
	return n
}

// idleTarget is issue 8's bound on RSS with idleTargetConns idle connections open.
const (
	idleTargetConns = 10000
	idleTargetRSS   = 250 << 20
)

func (rep report) idleTable(b *strings.Builder) {
	o := rep.opts
	fmt.Fprintf(b, "Idle keep-alive connections (`-idle-conns %d`): %s connections, %d dialled at a time, each sends one GET "+
		"(HTTP/1.1; with TLS a full handshake each), reads the answer and stays open; the figures are read after %s idle:\n\n",
		o.idleConns, fmtCount(o.idleConns), dialParallel, o.idleSettle)
	var rows [][]string
	for _, m := range rep.idle {
		tls := "off"
		if m.row.tls {
			tls = "on"
		}
		perConn, goroutines, heap := "—", "—", "—"
		if m.open > 0 {
			perConn = fmt.Sprintf("%.1f KB", float64(m.rssOpen-m.rssBefore)/float64(m.open)/1024)
		}
		if m.goBefore >= 0 && m.goOpen >= 0 {
			goroutines = fmt.Sprintf("%s → %s", fmtCount(m.goBefore), fmtCount(m.goOpen))
		}
		if m.heapOpen >= 0 && m.stackOpen >= 0 {
			heap = fmt.Sprintf("%.1f / %.1f MB", float64(m.heapOpen)/(1<<20), float64(m.stackOpen)/(1<<20))
		}
		rows = append(rows, []string{m.row.num, m.row.name, tls, fmt.Sprintf("%s / %s", fmtCount(m.open), fmtCount(m.want)),
			fmtCount(m.fds), m.openTook.Round(10 * time.Millisecond).String(),
			fmtBytes(m.rssBefore), fmtBytes(m.rssOpen), perConn, goroutines, heap})
	}
	b.WriteString(table([]string{"#", "system under test", "TLS", "still open", "fds", "opened in", "RSS before", "RSS open",
		"per connection", "goroutines", "Go heap / stacks"}, "lllrrrrrrrr", rows))
	b.WriteString("\nstill open: of the connections asked for, those open when the figures were read (the client's count); " +
		"fds: the system's open file descriptors then. per connection: (RSS open − RSS before) / still open. " +
		"goroutines, Go heap / stacks: `go_goroutines`, `go_memstats_heap_inuse_bytes` and `go_memstats_stack_inuse_bytes` " +
		"from signgate's admin `/metrics`; — where there is none. nginx: master + worker summed.\n")
	for _, m := range rep.idle {
		if m.failed > 0 {
			fmt.Fprintf(b, "\nRow %s: %s connections failed to open; the first: %s\n", m.row.id, fmtCount(m.failed), m.firstErr)
		}
	}
}

// idleTargets: signgate's RSS with 10 000 idle connections, against issue 8's
// 250 MB. A run with another -idle-conns, or that lost connections before the
// reading, reports the figure without a verdict.
func (rep report) idleTargets() [][]string {
	var out [][]string
	plain := false // whether the row before was the TLS-off one, which "… with TLS" refers to
	for _, m := range rep.idle {
		if m.row.system != sysSigngate {
			continue
		}
		label := fmt.Sprintf("signgate plain (5)%s, %s idle connections: RSS < 250 MB", tlsSuffix(m.row.tls), fmtCount(idleTargetConns))
		if m.row.tls && plain {
			label = "… with TLS"
		}
		plain = !m.row.tls
		measured, v := fmtBytes(m.rssOpen), verdict(m.rssOpen < idleTargetRSS)
		switch {
		case m.want != idleTargetConns:
			label = fmt.Sprintf("signgate plain (5)%s, %s idle connections: RSS", tlsSuffix(m.row.tls), fmtCount(m.want))
			v = "for reference"
		case m.open < m.want:
			measured += fmt.Sprintf(" (%s open)", fmtCount(m.open))
			if m.rssOpen < idleTargetRSS {
				v = "not all open"
			}
		}
		out = append(out, []string{label, measured, "", v})
	}
	return out
}

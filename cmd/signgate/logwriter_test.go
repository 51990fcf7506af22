package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
)

// callRecorder keeps each Write it gets as one entry, to see how lines were batched.
type callRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (c *callRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, string(p))
	return len(p), nil
}

func (c *callRecorder) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func TestLogWriter(t *testing.T) {
	t.Run("without a buffer every line is written at once", func(t *testing.T) {
		var rec callRecorder
		l := newLogWriter(&rec, 0, time.Hour)
		fmt.Fprint(l.accessLines(), "access 1\n")
		fmt.Fprint(l, "warn 1\n")
		fmt.Fprint(l.accessLines(), "access 2\n")
		if got := rec.snapshot(); strings.Join(got, "|") != "access 1\n|warn 1\n|access 2\n" {
			t.Fatalf("writes %q", got)
		}
		l.Close()
	})

	t.Run("access lines wait; another line takes them out first, in order", func(t *testing.T) {
		var rec callRecorder
		l := newLogWriter(&rec, 4096, time.Hour)
		defer l.Close()
		for i := range 3 {
			fmt.Fprintf(l.accessLines(), "access %d\n", i)
		}
		if got := rec.snapshot(); len(got) != 0 {
			t.Fatalf("access lines written before a flush: %q", got)
		}
		fmt.Fprint(l, "error: upstream down\n")
		want := []string{"access 0\naccess 1\naccess 2\n", "error: upstream down\n"}
		if got := rec.snapshot(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("writes %q, want %q", got, want)
		}
	})

	t.Run("the flush interval writes them out", func(t *testing.T) {
		var rec callRecorder
		l := newLogWriter(&rec, 4096, 20*time.Millisecond)
		defer l.Close()
		fmt.Fprint(l.accessLines(), "access\n")
		deadline := time.Now().Add(5 * time.Second)
		for len(rec.snapshot()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("a buffered line was not written within 5s with a 20ms flush interval")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := rec.snapshot(); got[0] != "access\n" {
			t.Fatalf("writes %q", got)
		}
	})

	t.Run("close writes out what is left and the writer goes on unbuffered", func(t *testing.T) {
		var rec callRecorder
		l := newLogWriter(&rec, 4096, time.Hour)
		fmt.Fprint(l.accessLines(), "last access\n")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(l.accessLines(), "after close\n")
		if got := rec.snapshot(); strings.Join(got, "|") != "last access\n|after close\n" {
			t.Fatalf("writes %q", got)
		}
	})

	t.Run("lines are never split across writes, whatever their length", func(t *testing.T) {
		var rec callRecorder
		l := newLogWriter(&rec, 256, time.Hour)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 200 {
					// 10 to ~600 bytes: some lines are longer than the buffer.
					line := fmt.Sprintf("g%d-%d %s\n", g, i, strings.Repeat("x", (i*37)%600))
					if i%50 == 0 {
						fmt.Fprint(l, line)
					} else {
						fmt.Fprint(l.accessLines(), line)
					}
				}
			})
		}
		wg.Wait()
		l.Close()
		lines := 0
		for _, call := range rec.snapshot() {
			if !strings.HasSuffix(call, "\n") {
				t.Fatalf("a write ends mid-line: %q", call[max(0, len(call)-40):])
			}
			lines += strings.Count(call, "\n")
		}
		if lines != 800 {
			t.Fatalf("%d lines written, want 800", lines)
		}
		if len(rec.snapshot()) >= 800 {
			t.Fatalf("%d writes for 800 lines: nothing was batched", len(rec.snapshot()))
		}
	})
}

// TestBufferedAccessLogIsWrittenAtExit: with log.access_buffer_bytes set and a
// flush interval longer than the test, start-up lines still come at once, access
// lines wait in the buffer, and SIGTERM writes every one of them out before exit.
func TestBufferedAccessLogIsWrittenAtExit(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", shutdown_timeout: 5s}
tls: {mode: "off"}
clients: [{id: app, api_key_sha256: %q, roles: [app]}]
roles: {app: {allow: ["* /api/**"]}}
upstreams: {backend: {targets: [%q]}}
routes: [{name: api, match: "* /api/**", upstream: backend}]
log: {access_buffer_bytes: 65536, access_flush_interval: 1h}
`, auth.HashKey("k"), up.URL))
	p := startProcess(t, nil, "serve", "-config", cfg) // returns on the "serving" line
	const requests = 20
	for i := range requests {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/api/x?i=%d", p.listen, i), nil)
		req.Header.Set("X-Api-Key", "k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	select {
	case m := <-p.lines:
		if m["msg"] == "request" {
			t.Fatalf("an access line was written before the buffer was flushed: %v", m)
		}
	case <-time.After(300 * time.Millisecond):
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	seen := 0
	timeout := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case m, ok := <-p.lines:
			if !ok {
				open = false
			} else if m["msg"] == "request" {
				seen++
			}
		case <-timeout:
			t.Fatalf("after SIGTERM: %d access lines and no exit within 10s", seen)
		}
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("signgate exited with %v, want 0", err)
	}
	if seen != requests {
		t.Fatalf("%d access lines written by exit, want %d", seen, requests)
	}
}

// BenchmarkAccessLine writes one 300-byte access line per op into a pipe that a
// reader drains, as journald or a log shipper reads the gateway's stdout: one
// write(2) per line without a buffer, one per 64 KB with log.access_buffer_bytes.
func BenchmarkAccessLine(b *testing.B) {
	line := []byte(`{"time":"2026-12-05T15:00:00.123456789Z","level":"INFO","msg":"request","request_id":"01KBQ7Z8X9Y0A1B2C3D4E5F6G7","client":"sunshine-housekeeping","route":"api","method":"GET","path":"/api/orders/42","status":200,"duration_ms":1.234,"bytes_in":0,"bytes_out":4179,"remote_ip":"127.0.0.1","proto":"HTTP/1.1"}` + "\n")
	for _, size := range []int{0, 64 << 10} {
		b.Run(fmt.Sprintf("buffer=%d", size), func(b *testing.B) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, r); close(drained) }()
			l := newLogWriter(w, size, time.Second)
			out := l.accessLines()
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := out.Write(line); err != nil {
						b.Error(err)
						return
					}
				}
			})
			l.Close()
			w.Close()
			<-drained
			r.Close()
		})
	}
}

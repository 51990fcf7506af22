// Package testredis starts a real redis-server for tests, on a free loopback port, and
// stops it when the test ends.
//
// Tests of the Redis-backed stores run against the real server, never a fake: the
// behaviour that matters (SET NX PX, Lua scripts, expiry, a server that goes away) is
// exactly what a fake gets subtly wrong. A missing redis-server fails the test instead
// of skipping it, so a CI box without Redis cannot silently pass the Redis half.
package testredis

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testproc"
)

// EnvServer names the environment variable that overrides where redis-server is found.
const EnvServer = "SIGNGATE_REDIS_SERVER"

const (
	startAttempts = 5                // fresh ports tried when the chosen one was taken meanwhile
	readyTimeout  = 10 * time.Second // from exec to the first PONG
	stopTimeout   = 5 * time.Second  // SIGTERM grace before SIGKILL
)

// Server is one redis-server process owned by a test.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *testproc.Process // nil while stopped
}

// Start starts a redis-server for t on a free 127.0.0.1 port, waits until it answers
// PING, and stops it in t.Cleanup. It fails t when redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findServer()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)

	var lastErr error
	for range startAttempts {
		// Another process can take the port between our Close and redis-server's bind;
		// that shows up as an early exit, and a fresh port is the cure.
		ports, err := testproc.FreePorts(1)
		if err != nil {
			t.Fatalf("testredis: pick a port: %v", err)
		}
		port := ports[0]
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("testredis: %v", lastErr)
	return nil
}

// Stop stops the server now (SIGTERM, then SIGKILL after a grace period) and waits for
// it to exit. It is safe to call more than once; Restart starts it again.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop(stopTimeout)
	}
}

// Restart starts the server again on the same Addr, stopping it first if it runs, and
// waits until it answers PING. Call it from the test's goroutine: it fails the test when
// the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("testredis: restart on %s: %v", s.Addr, err)
	}
}

// Pause freezes the server with SIGSTOP: connections are still accepted by the kernel
// but nothing answers, which is how a hung Redis looks to a client. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		s.t.Fatalf("testredis: %v: server on %s is not running", sig, s.Addr)
	}
	if err := p.Signal(sig); err != nil {
		s.t.Fatalf("testredis: %v: %v", sig, err)
	}
}

// launch starts redis-server on s.port and waits for PING. On failure the process is
// gone and the error carries the tail of its log.
func (s *Server) launch() error {
	logFile := filepath.Join(s.dir, "redis.log")
	_ = os.Remove(logFile) // so a failure report shows this run only
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", logFile,
	)
	p, err := testproc.Start(cmd)
	if err != nil {
		return err
	}
	if err := p.WaitReady(readyTimeout, 10*time.Millisecond, "no PONG", func() error { return ping(s.Addr) }); err != nil {
		p.Stop(stopTimeout)
		return fmt.Errorf("redis-server on %s: %w%s", s.Addr, err, testproc.LogTail(logFile, "redis-server"))
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// ping speaks just enough RESP to check readiness, so this package needs no client.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// -LOADING and the like: up, but not ready yet.
		return fmt.Errorf("PING answered %q", bytes.TrimSpace([]byte(line)))
	}
	return nil
}

func findServer() (string, error) {
	return testproc.Find("redis-server", "redis-server", EnvServer)
}

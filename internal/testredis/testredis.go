// Package testredis starts a real redis-server for tests, on a free loopback port, and
// stops it when the test ends; or a Sentinel group (a master, its replica, three
// Sentinels: StartSentinel) or a Cluster (three masters, a replica each, joined by
// redis-cli: StartCluster), whose masters a test can SIGKILL to watch the failover.
// StartTopologies starts all three, so a package runs its contract on each.
//
// Tests of the Redis-backed stores run against the real server, never a fake: the
// behaviour that matters (SET NX PX, Lua scripts, expiry, a server that goes away, a
// replica promoted, a slot that moved) is exactly what a fake gets subtly wrong. A
// missing redis-server or redis-cli fails the test instead of skipping it, so a CI
// box without them cannot silently pass the Redis half.
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
	// args come after the common flags: a replica's --replicaof, a cluster node's
	// --cluster-enabled. conf, when set, is a Sentinel's config file (Sentinel
	// rewrites it, so each has its own) and makes the process a Sentinel.
	args []string
	conf string

	mu   sync.Mutex
	proc *testproc.Process // nil while stopped
}

// Start starts a redis-server for t on a free 127.0.0.1 port, waits until it answers
// PING, and stops it in t.Cleanup. It fails t when redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := tryStart(t, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryStart starts a server with extra args, or a Sentinel with conf (see
// Server.conf), on a free port, and stops it when t ends. It returns an error rather
// than failing t, so the goroutines of StartTopologies can call it.
func tryStart(t testing.TB, args []string, conf string) (*Server, error) {
	bin, err := findServer()
	if err != nil {
		return nil, err
	}
	s := newServer(t, bin, args, conf)
	var lastErr error
	for range startAttempts {
		// Another process can take the port between our Close and redis-server's bind;
		// that shows up as an early exit, and a fresh port is the cure.
		ports, err := testproc.FreePorts(1)
		if err != nil {
			return nil, fmt.Errorf("testredis: pick a port: %w", err)
		}
		s.port = ports[0]
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if lastErr = s.launch(); lastErr == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("testredis: %w", lastErr)
}

func newServer(t testing.TB, bin string, args []string, conf string) *Server {
	s := &Server{t: t, bin: bin, dir: t.TempDir(), args: args, conf: conf}
	t.Cleanup(s.Stop)
	return s
}

// startOn starts a server on port, once: for a group whose members must know each
// other's ports before they start (Sentinels). A port taken meanwhile is an error;
// the caller picks new ones for the whole group.
func startOn(t testing.TB, port int, args []string, conf string) (*Server, error) {
	bin, err := findServer()
	if err != nil {
		return nil, err
	}
	s := newServer(t, bin, args, conf)
	s.port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.launch(); err != nil {
		return nil, fmt.Errorf("testredis: %w", err)
	}
	return s, nil
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

// Kill ends the server with SIGKILL, as a crash or an OOM kill would: no shutdown,
// nothing saved, its connections reset. Restart starts it again.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		_ = p.Signal(syscall.SIGKILL)
		p.Stop(stopTimeout) // reaps it; the SIGTERM that follows finds it gone
	}
}

// Running reports whether the server was started and not stopped or killed since.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
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
	var args []string
	if s.conf != "" {
		// A Sentinel reads (and rewrites) its file; the flags below still apply.
		args = append(args, s.conf, "--sentinel")
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", logFile,
	)
	if s.conf == "" {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
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

// Package testproc runs the real servers tests need (redis-server, pebble) as child
// processes: finding the binary, picking free loopback ports, waiting until the
// server is ready, stopping it, and explaining a failed start with its log's tail.
// testredis and testpebble are built on it.
package testproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Find returns the path of the binary named by the environment variable envVar
// when it is set, of name on PATH otherwise, or an error saying what to install
// (Debian package pkg) or set.
func Find(name, pkg, envVar string) (string, error) {
	if bin := os.Getenv(envVar); bin != "" {
		path, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("%s not found: %s=%q: %v", name, envVar, bin, err)
		}
		return path, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", errors.New(name + " not found: apt-get install " + pkg + " (Debian) or set " + envVar)
	}
	return path, nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1, all held open until the
// last is chosen so none repeats. Another process can still take one before the
// server binds it; callers retry with fresh ports when the server exits early.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Process is one run of a server; its exit is watched from the start.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // from Wait, valid after exited is closed
}

// Start starts cmd, asking the kernel to kill it when the test binary dies (see
// sysProcAttr), and watches for its exit.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// WaitReady calls probe every interval until it returns nil, the process exits, or
// timeout passes; then the error says what (e.g. "no PONG") with probe's last error.
func (p *Process) WaitReady(timeout, interval time.Duration, what string, probe func() error) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("exited early: %v", p.err)
		default:
		}
		if lastErr = probe(); lastErr == nil {
			return nil
		}
		time.Sleep(interval)
	}
	return fmt.Errorf("%s within %v: %v", what, timeout, lastErr)
}

// Stop ends the process: SIGCONT first (a paused server would not act on SIGTERM
// until resumed), SIGTERM, SIGKILL after grace; it returns once the process is reaped.
func (p *Process) Stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// LogTail returns the last 2 000 bytes of the log at path, headed "<name> log:", to
// explain a failed start; "" when there is none.
func LogTail(path, name string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "\n" + name + " log:\n" + string(bytes.TrimSpace(b))
}

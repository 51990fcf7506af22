package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The two cores: the system under test gets one, wrk and everything it talks to
// (upstream, redis-server, sandbox) the other.
const (
	proxyCore = "1"
	loadCore  = "0"
)

// proc is a process started pinned to one core, stdout to /dev/null and stderr to a
// log file in the work directory.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // the exit, once done is closed
}

// startPinned runs argv under `taskset -c core` with env added to this process's
// environment. taskset execs argv, so the proc's pid is the program's own.
func startPinned(dir, name, core string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command("taskset", append([]string{"-c", core}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile // stdout stays nil: /dev/null
	// Should the load test die, its servers die with it rather than linger on the
	// measured cores.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// waitListening waits until addr accepts TCP connections, failing early with the
// log's tail when the process exits first.
func (p *proc) waitListening(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (%v): %s", p.name, addr, p.err, p.logTail())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not listening on %s after 15s: %s", p.name, addr, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports an error when the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.logTail())
	default:
		return nil
	}
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return "\n" + s
	}
	return "(nothing in " + p.log + ")"
}

// stop sends SIGTERM, then SIGKILL after a few seconds.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// pids is the process and its children (nginx's workers).
func (p *proc) pids() []int {
	return append([]int{p.cmd.Process.Pid}, childrenOf(p.cmd.Process.Pid)...)
}

func childrenOf(parent int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(pid); err == nil && f[1] == strconv.Itoa(parent) {
			kids = append(kids, pid)
		}
	}
	return kids
}

// statFields returns /proc/pid/stat's fields from the state (field 3) on: the command
// name before it may hold spaces.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, errors.New("short stat")
	}
	return f, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/pid/stat: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the user + system CPU time the processes have used.
func cpuTime(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		f, err := statFields(pid)
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // field 14, utime
		s, _ := strconv.ParseInt(f[12], 10, 64) // field 15, stime
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rssBytes is the processes' summed VmRSS.
func rssBytes(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total, nil
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

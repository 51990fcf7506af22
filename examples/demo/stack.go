package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/examples/property-backend/backend"
)

const (
	startTimeout = 30 * time.Second // from exec to serving, a cold start included
	stopTimeout  = 10 * time.Second // SIGTERM grace before SIGKILL
)

// stackOptions says how to start the three servers of the flow. Empty addresses take
// the defaults written in the config file.
type stackOptions struct {
	signgate string // the signgate binary
	config   string // examples/config.demo.yaml
	dir      string // where logs, the audit log and a derived config go

	backendAddr string // host:port; "127.0.0.1:0" picks a free port
	sandboxAddr string // host:port; must be a real port: the config names it
	listen      string // the gateway's; "127.0.0.1:0" is fine, it reports where it serves
	admin       string
	redisAddr   string // "": state in memory
}

// stack is the property backend, the 58到家 sandbox and signgate, running.
type stack struct {
	gatewayURL  string // https://host:port
	adminURL    string // http://host:port
	backendURL  string
	sandboxURL  string
	auditFile   string
	gatewayLog  string
	sandboxLog  string
	secrets     map[string]string // the environment the secrets came from
	stopOnce    sync.Once
	stopActions []func()
}

// The secrets config.demo.yaml reads from the environment. A value already set is
// used; otherwise the demo makes one up for this run.
var secretVars = []string{"SUNSHINE_SECRET", "PROPERTY_BACKEND_SECRET", "DAOJIA_SERVICE_SECRET", "WECHAT_APP_SECRET"}

// startStack starts the backend in this process, then `signgate sandbox` and
// `signgate serve` as processes, and returns once the gateway is ready. On error,
// whatever was started is stopped again.
func startStack(ctx context.Context, o stackOptions) (_ *stack, err error) {
	s := &stack{
		auditFile:  filepath.Join(o.dir, "audit.log"),
		gatewayLog: filepath.Join(o.dir, "gateway.log"),
		sandboxLog: filepath.Join(o.dir, "sandbox.log"),
		secrets:    make(map[string]string),
	}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	env := os.Environ()
	for _, name := range secretVars {
		v := os.Getenv(name)
		if v == "" {
			v = randomSecret()
		}
		s.secrets[name] = v
		env = append(env, name+"="+v)
	}

	cfgPath := o.config
	if o.redisAddr != "" {
		// The demo file keeps state in memory; shared state in Redis is one section more.
		if cfgPath, err = withRedis(o.config, o.dir, o.redisAddr); err != nil {
			return nil, err
		}
	}

	// Where the config puts the backend and the sandbox, unless told otherwise.
	if o.backendAddr == "" || o.sandboxAddr == "" {
		backendAddr, sandboxAddr, err := demoAddrs(cfgPath, env)
		if err != nil {
			return nil, err
		}
		o.backendAddr = cmp.Or(o.backendAddr, backendAddr)
		o.sandboxAddr = cmp.Or(o.sandboxAddr, sandboxAddr)
	}

	// The property backend: in this process, so the demo needs no second binary.
	ln, err := net.Listen("tcp", o.backendAddr)
	if err != nil {
		return nil, fmt.Errorf("property backend: %w", err)
	}
	be := &http.Server{Handler: backend.New(backend.Options{}), ReadHeaderTimeout: 10 * time.Second}
	go be.Serve(ln)
	s.stopActions = append(s.stopActions, func() { be.Close() })
	s.backendURL = "http://" + ln.Addr().String()
	s.sandboxURL = "http://" + o.sandboxAddr
	env = append(env,
		"SIGNGATE_DEMO_BACKEND="+ln.Addr().String(),
		"SIGNGATE_DEMO_SANDBOX="+o.sandboxAddr,
		"SIGNGATE_DEMO_AUDIT_FILE="+s.auditFile)

	// The 58到家 sandbox, knowing our serviceKey and secret from the same config.
	sandboxOut, err := os.Create(s.sandboxLog)
	if err != nil {
		return nil, err
	}
	sandbox, err := s.startProcess(ctx, o.signgate, env, sandboxOut,
		"sandbox", "-listen", o.sandboxAddr, "-config", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := waitSandbox(ctx, o.sandboxAddr, sandbox); err != nil {
		return nil, fmt.Errorf("signgate sandbox: %w: %s (log: %s)", err, lastLine(s.sandboxLog), s.sandboxLog)
	}

	// signgate itself.
	if o.listen != "" {
		env = append(env, "SIGNGATE_DEMO_LISTEN="+o.listen)
	}
	if o.admin != "" {
		env = append(env, "SIGNGATE_DEMO_ADMIN="+o.admin)
	}
	gatewayOut, err := os.Create(s.gatewayLog)
	if err != nil {
		return nil, err
	}
	serving := make(chan map[string]any, 1)
	logs := newLineWatcher(gatewayOut, func(line map[string]any) {
		if line["msg"] == "serving" {
			select {
			case serving <- line:
			default:
			}
		}
	})
	gateway, err := s.startProcess(ctx, o.signgate, env, logs, "serve", "-config", cfgPath)
	if err != nil {
		return nil, err
	}
	select {
	case line := <-serving:
		s.gatewayURL = "https://" + fmt.Sprint(line["listen"])
		s.adminURL = "http://" + fmt.Sprint(line["admin"])
	case <-gateway.exited:
		return nil, fmt.Errorf("signgate serve exited before serving: %v: %s (log: %s)", gateway.err, lastLine(s.gatewayLog), s.gatewayLog)
	case <-time.After(startTimeout):
		return nil, fmt.Errorf("signgate serve did not start serving within %v (log: %s)", startTimeout, s.gatewayLog)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := waitReady(ctx, s.adminURL+"/readyz", gateway); err != nil {
		return nil, fmt.Errorf("signgate serve: %w (log: %s)", err, s.gatewayLog)
	}
	return s, nil
}

// stop stops the gateway first, so it drains before its upstreams go away. It is safe
// to call more than once.
func (s *stack) stop() {
	s.stopOnce.Do(func() {
		for i := len(s.stopActions) - 1; i >= 0; i-- {
			s.stopActions[i]()
		}
	})
}

// process is one child process; exited is closed once it has been reaped.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

func (s *stack) startProcess(ctx context.Context, bin string, env []string, out io.WriteCloser, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("signgate %s: %w", args[0], err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait() // returns once the output is copied, so out is complete
		out.Close()
		close(p.exited)
	}()
	s.stopActions = append(s.stopActions, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p, nil
}

// lineWatcher copies a process's output to a file and hands each JSON line to a
// callback, which must not block.
type lineWatcher struct {
	pw   *io.PipeWriter
	done chan struct{}
}

func newLineWatcher(file io.WriteCloser, onLine func(map[string]any)) *lineWatcher {
	pr, pw := io.Pipe()
	w := &lineWatcher{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer file.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			file.Write(append(sc.Bytes(), '\n'))
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				onLine(m)
			}
		}
		io.Copy(file, pr) // a line too long to scan: keep the rest anyway
	}()
	return w
}

func (w *lineWatcher) Write(p []byte) (int, error) { return w.pw.Write(p) }

// Close waits until every line has reached the file.
func (w *lineWatcher) Close() error {
	w.pw.Close()
	<-w.done
	return nil
}

// demoAddrs reads the config as the gateway will, with env, and returns where it
// expects the property backend and the sandbox, so they are started there.
func demoAddrs(path string, env []string) (backendAddr, sandboxAddr string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	vars := make(map[string]string)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg, err := config.Parse(data, func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	})
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	up, ok := cfg.Upstreams["property-backend"]
	if !ok {
		return "", "", fmt.Errorf("%s: no upstream property-backend", path)
	}
	backend, err := url.Parse(up.Targets[0])
	if err != nil {
		return "", "", err
	}
	sandbox, err := url.Parse(cfg.Daojia.BaseURL)
	if err != nil {
		return "", "", err
	}
	return backend.Host, sandbox.Host, nil
}

// withRedis writes a copy of the config with a redis section naming addr, and
// beside it copies of the interface specs (*.openapi.yaml) the config reads from
// its own directory.
func withRedis(config, dir, addr string) (string, error) {
	data, err := os.ReadFile(config)
	if err != nil {
		return "", err
	}
	data = fmt.Appendf(data, "\n# Added by examples/demo: shared state in Redis.\nredis:\n  addrs: [%q]\n", addr)
	path := filepath.Join(dir, "config.redis.yaml")
	specs, err := filepath.Glob(filepath.Join(filepath.Dir(config), "*.openapi.yaml"))
	if err != nil {
		return "", err
	}
	for _, spec := range specs {
		b, err := os.ReadFile(spec)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(spec)), b, 0o600); err != nil {
			return "", err
		}
	}
	return path, os.WriteFile(path, data, 0o600)
}

// waitSandbox waits until the sandbox answers HTTP at addr. Accepting connections is
// not enough: when another program holds the port, the sandbox exits and that
// program accepts them.
func waitSandbox(ctx context.Context, addr string, p *process) error {
	client := &http.Client{Timeout: time.Second}
	return poll(ctx, p, func() error {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		select {
		case <-p.exited: // someone else answered
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		return nil
	})
}

// waitReady waits until url answers 200: the gateway has its config and, when one
// is configured, reaches Redis.
func waitReady(ctx context.Context, url string, p *process) error {
	return poll(ctx, p, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		return nil
	})
}

func poll(ctx context.Context, p *process, try func() error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v: %w", startTimeout, err)
		}
	}
}

// lastLine is the last line of a log, which says why a process that failed to start
// stopped.
func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}

func randomSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

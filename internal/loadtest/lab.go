package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/signgate/signgate/tlsedge"
)

// lab is what every row shares: the work directory, the binaries, the certificate,
// and the servers on core 0 (the upstream always; redis-server and the 58到家 sandbox
// when a selected row needs them).
type lab struct {
	dir      string
	self     string // this binary: `upstream` and `bare` subcommands
	signgate string // built from ./cmd/signgate
	spec     string // examples/orders.openapi.yaml, for the validation rows
	cert     string // PEM files of the one self-signed certificate every TLS row uses
	key      string

	upstream      string // host:port of the plain-HTTP upstream on core 0
	upstreamAdmin string
	upstreamProc  *proc
	redis         string // host:port, "" when no row needs it
	redisProc     *proc
	cluster       []string // the Redis Cluster's nodes, when a row needs it (cluster.go)
	clusterProcs  []*proc
	sandbox       string // base URL, "" when no row needs it
	sandboxProc   *proc

	idleConns int // what the idle rows open: nginx's worker_connections must hold it
}

// newLab builds signgate, writes the certificate and starts the servers the selected
// rows need on core 0.
func newLab(dir, moduleRoot string, rows []row) (*lab, error) {
	l := &lab{dir: dir, spec: filepath.Join(moduleRoot, "examples", "orders.openapi.yaml")}
	var err error
	if l.self, err = os.Executable(); err != nil {
		return nil, err
	}
	l.signgate = filepath.Join(dir, "signgate")
	build := exec.Command("go", "build", "-trimpath", "-o", l.signgate, "./cmd/signgate")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/signgate: %v\n%s", err, out)
	}
	if err := l.writeCert(); err != nil {
		return nil, err
	}

	if l.upstream, err = freeAddr(); err != nil {
		return nil, err
	}
	if l.upstreamAdmin, err = freeAddr(); err != nil {
		return nil, err
	}
	if l.upstreamProc, err = startPinned(dir, "upstream", loadCore, []string{"GOMAXPROCS=1"},
		l.self, "upstream", "-listen", l.upstream, "-admin", l.upstreamAdmin); err != nil {
		return nil, err
	}
	if err := l.upstreamProc.waitListening(l.upstream); err != nil {
		return nil, err
	}

	var needRedis, needSandbox bool
	for _, r := range rows {
		needRedis = needRedis || r.setup.redis
		needSandbox = needSandbox || r.setup.relay || r.setup.wechat
	}
	if needRedis {
		if l.redis, err = freeAddr(); err != nil {
			return nil, err
		}
		port := l.redis[strings.LastIndexByte(l.redis, ':')+1:]
		if l.redisProc, err = startPinned(dir, "redis", loadCore, nil,
			"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"); err != nil {
			return nil, err
		}
		if err := l.redisProc.waitListening(l.redis); err != nil {
			return nil, err
		}
	}
	if err := l.startCluster(rows); err != nil {
		return nil, err
	}
	if needSandbox {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		// Without -config the sandbox knows the demo partner, 2801209652/testSecret123,
		// which the relay rows' config uses.
		if l.sandboxProc, err = startPinned(dir, "sandbox", loadCore, []string{"GOMAXPROCS=1"},
			l.signgate, "sandbox", "-listen", addr); err != nil {
			return nil, err
		}
		if err := l.sandboxProc.waitListening(addr); err != nil {
			return nil, err
		}
		l.sandbox = "http://" + addr
	}
	return l, nil
}

func (l *lab) close() {
	l.sandboxProc.stop()
	l.redisProc.stop()
	l.stopCluster()
	l.upstreamProc.stop()
}

// writeCert writes one self-signed certificate for 127.0.0.1 as PEM, for the TLS
// upstream, nginx, Caddy and signgate alike.
func (l *lab) writeCert() error {
	c, err := tlsedge.SelfSigned(nil, time.Now())
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	l.cert, l.key = filepath.Join(l.dir, "tls.crt"), filepath.Join(l.dir, "tls.key")
	if err := os.WriteFile(l.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(l.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// requireTools fails with what to install when a program a selected row runs is
// missing: no row is skipped silently.
func requireTools(rows []row) error {
	need := map[string]string{"taskset": "util-linux", "wrk": "wrk", "go": "the Go toolchain"}
	for _, r := range rows {
		switch r.system {
		case sysNginx:
			need["nginx"] = "nginx-light (or nginx)"
		case sysCaddy:
			need["caddy"] = "caddy"
		}
		if r.setup.redis {
			need["redis-server"] = "redis-server"
		}
		if r.setup.cluster {
			need["redis-cli"] = "redis-tools"
		}
	}
	var missing, pkgs []string
	for _, tool := range slices.Sorted(maps.Keys(need)) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
			pkgs = append(pkgs, need[tool])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run scripts/loadtest-deps, or install %s (Debian: apt-get install -y --no-install-recommends wrk nginx-light caddy redis-server util-linux), or leave those rows out with -rows",
			strings.Join(missing, ", "), strings.Join(pkgs, ", "))
	}
	return nil
}

// login logs the rows' mini-program user in at the signgate on base: a code minted
// by the sandbox (as wx.login would give it), exchanged at the login route for a
// session token.
func (l *lab) login(base string) (string, error) {
	resp, err := http.Post(l.sandbox+"/sandbox/wechat/codes", "application/json", strings.NewReader(`{"user":"loadtest"}`))
	if err != nil {
		return "", err
	}
	var minted struct {
		Code string `json:"code"`
	}
	err = json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if err != nil || minted.Code == "" {
		return "", fmt.Errorf("sandbox minted no code (%v)", err)
	}
	req, _ := http.NewRequest("POST", base+"/auth/wechat/login", strings.NewReader(`{"code":"`+minted.Code+`"}`))
	req.Header.Set("X-Api-Key", appKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var session struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&session); err != nil || resp.StatusCode != http.StatusOK || session.Token == "" {
		return "", fmt.Errorf("login answered %d (%v)", resp.StatusCode, err)
	}
	return session.Token, nil
}

package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testsecret"
)

// binary is the signgate built once for the process tests: they run it as an
// operator would, with signals and exit codes.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signgate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "signgate")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building signgate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	t.Run("the documented example config is ok", func(t *testing.T) {
		cmd := exec.Command(binary, "validate", "-config", "../../config.yaml")
		cmd.Env = append(os.Environ(), "SUNSHINE_SECRET=s3cret", "DAOJIA_SERVICE_SECRET=testSecret123", "WECHAT_APP_SECRET=wx-s3cret")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("validate: %v\n%s", err, out)
		}
	})
	t.Run("every problem reported with its line, exit 1", func(t *testing.T) {
		p := writeFile(t, `server:
  lissen: ":8443"
upstreams:
  backend:
    targets: ["http://127.0.0.1:9000"]
routes:
  - {name: api, match: "* /api/**", upstream: bakend}
`)
		out, code := runCLI(t, "", "validate", "-config", p)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out)
		}
		for _, want := range []string{"server.lissen (line 2)", `routes[0].upstream (line 7)`, "bakend"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestHashKeyAndVersion(t *testing.T) {
	out, code := runCLI(t, "abc\n", "hash-key")
	if code != 0 || strings.TrimSpace(out) != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("hash-key: exit %d %q", code, out)
	}
	out, code = runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "signgate ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d %q", code, out)
	}
	if _, code := runCLI(t, "", "frobnicate"); code != 2 {
		t.Fatalf("unknown command exit %d, want 2", code)
	}
}

func TestSign(t *testing.T) {
	body := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(body, []byte(`{"userId":"1"}`), 0o600)
	t.Run("hmac-sha256 headers match the verifier's signer", func(t *testing.T) {
		cmd := exec.Command(binary, "sign", "-scheme", "hmac-sha256", "-method", "PUT", "-path", "/api/orders/1/status?b=2&a=1",
			"-body-file", body, "-timestamp", "1763900000", "-nonce", "nonce-12345678")
		cmd.Env = append(os.Environ(), "SIGNGATE_SECRET=partner-secret")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		want, _ := auth.SignRequest("PUT", "/api/orders/1/status?b=2&a=1", []byte(`{"userId":"1"}`), []byte("partner-secret"),
			time.Unix(1763900000, 0), "nonce-12345678")
		for k, v := range want {
			if !strings.Contains(string(out), k+": "+v+"\n") {
				t.Errorf("output lacks %s: %s\n%s", k, v, out)
			}
		}
		if strings.Contains(string(out), "partner-secret") {
			t.Error("the secret was printed")
		}
	})
	t.Run("daojia-md5 body reproduces DESIGN.md's vector", func(t *testing.T) {
		// 2016-01-10 10:00:00 GMT+8
		cmd := exec.Command(binary, "sign", "-scheme", "daojia-md5", "-body-file", body, "-timestamp", "1452391200",
			"-service-key", "2801209652", "-access-token", "64256A615F66CC8FBE38AFCFD26EA744")
		cmd.Env = append(os.Environ(), "SIGNGATE_SECRET=testSecret123")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), `"sign":"D00D9B214EBF79F7F5F4BE28AF7E8CE3"`) {
			t.Fatalf("output %s lacks the vector's sign", out)
		}
	})
	t.Run("no secret in the environment", func(t *testing.T) {
		cmd := exec.Command(binary, "sign", "-scheme", "hmac-sha256")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		if err := cmd.Run(); err == nil {
			t.Fatal("sign without SIGNGATE_SECRET succeeded")
		}
	})
}

// gatewayProcess starts `signgate serve` and waits for its "serving" log line.
type gatewayProcess struct {
	cmd     *exec.Cmd
	listen  string
	lines   chan map[string]any
	warning map[string]any // the "readable by every user" warning, if it came before "serving"
}

func startProcess(t *testing.T, env []string, args ...string) *gatewayProcess {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	p := &gatewayProcess{cmd: cmd, lines: make(chan map[string]any, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				// Never block the gateway: a full pipe would stall its logging, and
				// with it every request. Lines nobody waits for are dropped.
				select {
				case p.lines <- m:
				default:
				}
			}
		}
		close(p.lines)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				t.Fatal("signgate exited before serving")
			}
			if msg, _ := m["msg"].(string); strings.Contains(msg, "readable by every user") {
				p.warning = m
			}
			if m["msg"] == "serving" {
				p.listen = m["listen"].(string)
				return p
			}
		case <-deadline:
			t.Fatal("signgate did not start serving within 30s")
		}
	}
}

func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(time.Second)
		io.WriteString(w, "finished")
	}))
	defer up.Close()
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", shutdown_timeout: 10s}
tls: {mode: self_signed}
clients: [{id: app, api_key_sha256: %q, roles: [app]}]
roles: {app: {allow: ["* /api/**"]}}
upstreams: {backend: {targets: [%q]}}
routes: [{name: api, match: "* /api/**", upstream: backend}]
`, auth.HashKey("k"), up.URL))
	p := startProcess(t, nil, "serve", "-config", cfg)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "https://"+p.listen+"/api/slow", nil)
		req.Header.Set("X-Api-Key", "k")
		resp, err := insecureClient().Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-arrived
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %d %q %v; want 200 finished", r.status, r.body, r.err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("signgate exited with %v, want 0", err)
	}
}

// TestEmbeddedDefaultServes is the README's first run: `signgate serve -config ""`
// and a curl -k with the printed demo key. It uses the default's fixed ports.
func TestEmbeddedDefaultServes(t *testing.T) {
	p := startProcess(t, []string{"SIGNGATE_DEMO_KEY=demo-key-for-tests"}, "serve", "-config", "")
	req, _ := http.NewRequest("GET", "https://localhost:8443/api/hello?x=1", nil)
	req.Header.Set("X-Api-Key", "demo-key-for-tests")
	resp, err := insecureClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"path": "/api/hello"`) {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	// The README's relay example: signed and sent to the built-in 58到家 sandbox.
	for _, call := range []struct{ path, body, want string }{
		{"/daojia/serviceUser/saveServiceUser", `{"userId":"u1","userName":"张三"}`, `"code":0`},
		{"/daojia/serviceUser/getAllServiceUser", `{}`, `"u1"`},
	} {
		req, _ := http.NewRequest("POST", "https://localhost:8443"+call.path, strings.NewReader(call.body))
		req.Header.Set("X-Api-Key", "demo-key-for-tests")
		resp, err := insecureClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), call.want) {
			t.Fatalf("%s: status %d body %s", call.path, resp.StatusCode, body)
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// readableConfig writes a config that anyone on the host may read, with one signing
// client whose secret is the given YAML value.
func readableConfig(t *testing.T, secretValue string) string {
	t.Helper()
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: "off"}
clients:
  - {id: app, api_key_sha256: %q, roles: [app]}
  - {id: partner, api_key_sha256: %q, secret: %s, signature: hmac-sha256, roles: [app]}
roles: {app: {allow: ["* /api/**"]}}
upstreams: {backend: {targets: ["http://127.0.0.1:1"]}}
routes: [{name: api, match: "* /api/**", upstream: backend}]
`, auth.HashKey("k"), auth.HashKey("p"), secretValue))
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A world-readable file whose secrets all come from the environment holds nothing
// worth warning about.
func TestNoReadableWarningWhenSecretsComeFromEnv(t *testing.T) {
	cfg := readableConfig(t, `"${PARTNER_SECRET}"`)
	p := startProcess(t, []string{"PARTNER_SECRET=" + testsecret.PartnerSecret}, "serve", "-config", cfg)
	if p.warning != nil {
		t.Errorf("warned %v, although no secret is written in the file", p.warning)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

func TestSIGHUPReloads(t *testing.T) {
	cfg := readableConfig(t, `"inline-`+testsecret.PartnerSecret+`"`)
	p := startProcess(t, nil, "serve", "-config", cfg)
	if p.warning == nil {
		t.Error("no warning that the config file holds secrets and is readable by every user")
	} else if got := fmt.Sprint(p.warning["secrets"]); got != "[clients[1].secret]" {
		t.Errorf("the warning names secrets %s, want [clients[1].secret]", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-p.lines:
			if m["msg"] == "config reloaded" {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				if err := p.cmd.Wait(); err != nil {
					t.Fatalf("exit: %v", err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no \"config reloaded\" log line within 10s of SIGHUP")
		}
	}
}

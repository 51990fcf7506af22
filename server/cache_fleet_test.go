package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/leakcheck"
	"github.com/signgate/signgate/internal/testproc"
	"github.com/signgate/signgate/internal/testredis"
)

// fleetConfigEnv names the config file of a gateway process the fleet test starts.
const fleetConfigEnv = "SIGNGATE_TEST_CACHE_FLEET_CONFIG"

// TestCacheFleetGatewayProcess is not a test of its own. With fleetConfigEnv set,
// the test binary becomes one gateway of a fleet (TestCacheFleet starts two, each
// in its own process, as deploy/docker-compose.yml runs them): it serves that
// config, logging JSON to stdout, until SIGTERM. Without it, it returns at once.
func TestCacheFleetGatewayProcess(t *testing.T) {
	path := os.Getenv(fleetConfigEnv)
	if path == "" {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(string(data))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// fleetMember is one gateway process.
type fleetMember struct {
	name, url, admin string
	mu               sync.Mutex
	lines            []string // its log, for the leak check and failure reports
}

func (m *fleetMember) log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// startFleetMember starts the test binary as a gateway serving the config at path.
func startFleetMember(t *testing.T, name, path string) *fleetMember {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCacheFleetGatewayProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fleetConfigEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p, err := testproc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	m := &fleetMember{name: name}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("gateway %s log:\n%s", name, strings.Join(m.log(), "\n"))
		}
	})
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m.mu.Lock()
			m.lines = append(m.lines, sc.Text())
			m.mu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "serving" {
				serving <- line
			}
		}
	}()
	select {
	case line := <-serving:
		m.url = "https://" + line["listen"].(string)
		m.admin = "http://" + line["admin"].(string)
	case <-time.After(60 * time.Second):
		t.Fatalf("gateway %s did not serve within 60s:\n%s", name, strings.Join(m.log(), "\n"))
	}
	return m
}

// Two gateway processes on one real Redis act as one cache.
func TestCacheFleet(t *testing.T) {
	rs := testredis.Start(t)
	up := newCacheUpstream(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cacheGatewayConfig(up.URL, rs.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startFleetMember(t, "A", path)
	b := startFleetMember(t, "B", path)
	fleet := []*fleetMember{a, b}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 200}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: scanningTransport{tr}, Timeout: 20 * time.Second}
	get := func(m *fleetMember, path, key string) (int, string, string, error) {
		req, _ := http.NewRequest("GET", m.url+path, nil)
		req.Header.Set("X-Api-Key", key)
		// One name for the fleet, as behind the balancer: the host is in the key.
		req.Host = "api.example.com"
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header.Get("Cache-Status"), err
	}

	t.Run("200 concurrent misses on two instances make one upstream request", func(t *testing.T) {
		// 200 connections opened beforehand (TLS handshakes take a while), so the
		// 200 requests arrive together, while the one upstream request is slow.
		var warm sync.WaitGroup
		for i := range 200 {
			warm.Go(func() { get(fleet[i%2], "/api/warm-up", appKey) })
		}
		warm.Wait()
		up.delay.Store(int64(time.Second))
		defer up.delay.Store(0)
		type answer struct {
			code         int
			body, status string
			err          error
		}
		answers := make([]answer, 200)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				<-start
				var a answer
				a.code, a.body, a.status, a.err = get(fleet[i%2], "/api/services?fleet=1", appKey)
				answers[i] = a
			})
		}
		close(start)
		wg.Wait()
		stored := 0
		kinds := map[string]int{}
		for i, a := range answers {
			kind, _, _ := strings.Cut(strings.TrimPrefix(a.status, "signgate; "), "; ttl")
			kinds[kind]++
			if a.err != nil || a.code != 200 {
				t.Fatalf("request %d (instance %s): %d %v", i, fleet[i%2].name, a.code, a.err)
			}
			if a.body != answers[0].body {
				t.Fatalf("answers differ:\n%s\n%s", answers[0].body, a.body)
			}
			if strings.Contains(a.status, "stored") {
				stored++
			}
		}
		t.Logf("Cache-Status of the 200 answers: %v", kinds)
		if n := up.count("GET /api/services"); n != 1 || stored != 1 {
			t.Fatalf("upstream saw %d requests and %d answers were stored, for 200 concurrent misses; want 1 and 1", n, stored)
		}
	})

	t.Run("a purge on one instance is a miss on the other", func(t *testing.T) {
		// B holds the entry in its in-process tier now.
		if _, _, status, err := get(b, "/api/services?fleet=1", appKey); err != nil || !strings.HasPrefix(status, "signgate; hit") {
			t.Fatalf("B before the purge: %q %v", status, err)
		}
		resp, err := http.Post(a.admin+"/-/cache/purge", "application/json", strings.NewReader(`{"route":"services"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"purged":1,"instances":2}` {
			t.Fatalf("purge on A: %d %s", resp.StatusCode, body)
		}
		_, _, status, err := get(b, "/api/services?fleet=1", appKey)
		if err != nil || !strings.HasPrefix(status, "signgate; fwd=miss") {
			t.Fatalf("B after the purge on A: %q %v, want a miss", status, err)
		}
		if _, _, status, _ := get(a, "/api/services?fleet=1", appKey); !strings.HasPrefix(status, "signgate; hit") {
			t.Fatalf("A after B refilled: %q, want a hit", status)
		}
	})

	t.Run("a masked entry filled on one instance is served masked on the other", func(t *testing.T) {
		_, masked, status, err := get(a, "/api/services?fleet=2", providerKey)
		if err != nil || !strings.Contains(status, "stored") || len(leakcheck.Find([]byte(masked))) != 0 {
			t.Fatalf("provider on A: %q %v %s", status, err, masked)
		}
		_, full, _, _ := get(b, "/api/services?fleet=2", opsKey)
		_, again, status, _ := get(b, "/api/services?fleet=2", providerKey)
		if again != masked || !strings.HasPrefix(status, "signgate; hit") || !strings.Contains(full, "13812345678") {
			t.Fatalf("provider on B: %q %s; ops on B: %s", status, again, full)
		}
	})

	for _, m := range fleet {
		for _, line := range m.log() {
			if found := leakcheck.FindString(line); len(found) > 0 {
				t.Errorf("gateway %s logged a full mobile number: %s", m.name, line)
			}
		}
	}
}

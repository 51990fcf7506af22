package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/config"
)

// reloadableConfig is baseConfig with one extra route whose path changes per
// version, so each reload is visible.
func reloadableConfig(upstreamURL string, version int) string {
	return baseConfig(upstreamURL, "") + fmt.Sprintf("# version %d\n", version)
}

// Ten reloads while concurrent requests and a long streaming response run: no
// request fails, no connection is reset, and the stream finishes on the config it
// started with.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/events" {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 20 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	var version atomic.Int64
	load := func() (*config.Config, error) {
		return parseConfig(reloadableConfig(up.URL, int(version.Load())))
	}
	g := startGatewayFrom(t, load, "")
	before := g.srv.gw.Load().pools["backend"]

	stop := make(chan struct{})
	var failures, done atomic.Int64
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", g.url+"/api/services", nil)
				req.Header.Set("X-Api-Key", appKey)
				resp, err := g.client.Do(req)
				if err != nil {
					failures.Add(1)
					t.Errorf("request failed during reloads: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					t.Errorf("status %d during reloads", resp.StatusCode)
				}
				done.Add(1)
			}
		})
	}
	streamDone := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", g.url+"/api/events", nil)
		req.Header.Set("X-Api-Key", appKey)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Errorf("stream: %v", err)
			streamDone <- 0
			return
		}
		defer resp.Body.Close()
		events := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				events++
			}
		}
		if err := sc.Err(); err != nil {
			t.Errorf("stream cut: %v", err)
		}
		streamDone <- events
	}()

	for i := 1; i <= 10; i++ {
		time.Sleep(80 * time.Millisecond)
		version.Store(int64(i))
		if err := g.srv.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	if events := <-streamDone; events != 20 {
		t.Errorf("stream got %d of 20 events across the reloads", events)
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || done.Load() == 0 {
		t.Fatalf("%d failed of %d requests", failures.Load(), done.Load())
	}
	if after := g.srv.gw.Load().pools["backend"]; after != before {
		t.Error("an unchanged upstream's pool was rebuilt by reload")
	}
	if !strings.Contains(metricsText(t, g), `signgate_config_reloads_total{result="ok"} 10`) {
		t.Error("/metrics does not count 10 reloads")
	}
}

func metricsText(t *testing.T, g *testGateway) string {
	t.Helper()
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestInvalidReloadKeepsServing(t *testing.T) {
	up := seenHeaders(t)
	var broken atomic.Bool
	load := func() (*config.Config, error) {
		if broken.Load() {
			return parseConfig(baseConfig(up.URL, "") + "routes:\n  - {name: x, match: \"GET /x\", upstream: nowhere}\n")
		}
		return parseConfig(baseConfig(up.URL, ""))
	}
	g := startGatewayFrom(t, load, "")
	broken.Store(true)
	resp, err := http.Post(g.admin+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "line") {
		t.Fatalf("POST /-/reload of a bad config: %d %s", resp.StatusCode, body)
	}
	if r, _ := g.do(t, "GET", "/api/services", appKey, nil); r.StatusCode != 200 {
		t.Fatalf("after a refused reload: %d, want the old config serving", r.StatusCode)
	}
	if !strings.Contains(metricsText(t, g), `signgate_config_reloads_total{result="error"} 1`) {
		t.Error("/metrics does not count the refused reload")
	}
	logged := false
	for _, l := range g.logs.lines(t, "config reload refused; the running config keeps serving") {
		if p, _ := l["problem"].(string); strings.Contains(p, "(line ") {
			logged = true
		}
	}
	if !logged {
		t.Error("the refused reload's problems were not logged with line numbers")
	}
}

// An editor saves by writing a temporary file and renaming it over the config; the
// watcher sees the new content and reloads.
func TestConfigFileRenameAndReplaceReloads(t *testing.T) {
	up := seenHeaders(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(content string) {
		tmp := filepath.Join(dir, ".config.yaml.swp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(baseConfig(up.URL, ""))
	g := startGatewayFrom(t, func() (*config.Config, error) { return config.Load(path) }, path)
	if r, _ := g.do(t, "GET", "/api/services", providerKey, nil); r.StatusCode != 403 {
		t.Fatalf("provider before the change: %d, want 403", r.StatusCode)
	}
	write(strings.Replace(baseConfig(up.URL, ""), `provider:     {allow: ["PUT /api/orders/*/status"]}`,
		`provider:     {allow: ["PUT /api/orders/*/status", "GET /api/services"]}`, 1))
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := g.do(t, "GET", "/api/services", providerKey, nil)
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the renamed-over config was not picked up within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

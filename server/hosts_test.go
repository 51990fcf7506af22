package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/signgate/signgate/auth"
)

// A caller chooses the Host header, and the upstream reads it as X-Forwarded-Host to
// build links (a password-reset mail, a redirect): with server.hosts set, any other
// host is refused 421 before routing and never reaches the upstream.
func TestHostsAllowList(t *testing.T) {
	var reached atomic.Int32
	var forwarded atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		forwarded.Store(r.Header.Get("X-Forwarded-Host"))
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", hosts: [api.example.com, "*.wx.example.com"]}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [app]}
roles: {app: {allow: ["GET /api/**"]}}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: api, match: "GET /api/**", upstream: backend}
`, auth.HashKey(appKey), up.URL))
	get := func(host string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", g.url+"/api/x", nil)
		req.Host = host
		req.Header.Set("X-Api-Key", appKey)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, host := range []string{"api.example.com", "API.Example.COM:443", "api.example.com.", "shop.wx.example.com", "a.b.wx.example.com:8443"} {
		reached.Store(0)
		if resp, body := get(host); resp.StatusCode != http.StatusOK || reached.Load() != 1 {
			t.Errorf("Host %q: %d %s, want it served", host, resp.StatusCode, body)
		}
	}
	if f, _ := forwarded.Load().(string); f != "a.b.wx.example.com:8443" {
		t.Errorf("X-Forwarded-Host %q, want the allowed host as sent", f)
	}
	for _, host := range []string{"evil.example", "wx.example.com", "api.example.com.evil.example", "evilapi.example.com", "127.0.0.1", "xwx.example.com"} {
		reached.Store(0)
		resp, body := get(host)
		var e map[string]any
		if resp.StatusCode != http.StatusMisdirectedRequest || json.Unmarshal(body, &e) != nil || e["code"] != "misdirected_request" || e["request_id"] == nil {
			t.Errorf("Host %q: %d %s, want a 421 misdirected_request envelope", host, resp.StatusCode, body)
		}
		if reached.Load() != 0 {
			t.Errorf("Host %q reached the upstream", host)
		}
	}
}

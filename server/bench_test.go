package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/signgate/signgate/auth"
)

// The gateway's per-request cost in-process: the handler chain served straight from
// ServeHTTP, proxying over loopback to a real upstream in the same process. The bare
// row is a plain httputil.ReverseProxy against the same upstream, so the difference
// between rows is what signgate's own layers cost (allocations are the process's,
// upstream included, in every row).

func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"services":[{"id":1,"name":"cleaning"},{"id":2,"name":"appliance washing"}]}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(up.Close)
	return up
}

func benchGateway(b *testing.B, upstream string, opts ...Option) http.Handler {
	cfg, err := parseConfig(fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["GET /api/services"]}
upstreams:
  backend: {targets: [%q]}
routes:
  - {name: public, match: "GET /public/**", upstream: backend, public: true}
  - {name: api, match: "* /api/**", upstream: backend}
`, auth.HashKey(appKey), upstream))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.gw.Load().retire(nil) })
	return http.HandlerFunc(srv.serveGateway)
}

func benchServe(b *testing.B, h http.Handler, path, key string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.RemoteAddr = "192.0.2.1:40000"
			if key != "" {
				req.Header.Set("X-Api-Key", key)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkGateway(b *testing.B) {
	up := benchUpstream(b)
	b.Run("bare", func(b *testing.B) {
		u, _ := url.Parse(up.URL)
		rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }}
		benchServe(b, rp, "/api/services", "")
	})
	// As `signgate serve` runs with a JSON log: access lines written directly.
	h := benchGateway(b, up.URL, WithJSONAccessLog(io.Discard))
	b.Run("public", func(b *testing.B) { benchServe(b, h, "/public/services", "") })
	b.Run("apikey", func(b *testing.B) { benchServe(b, h, "/api/services", appKey) })
	// The access lines through slog, as with log.format: text.
	hs := benchGateway(b, up.URL)
	b.Run("public-slog", func(b *testing.B) { benchServe(b, hs, "/public/services", "") })
}

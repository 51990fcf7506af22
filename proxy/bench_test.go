package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/signgate/signgate/reqinfo"
)

// BenchmarkProxy measures one proxied GET through a bare pool to a local upstream, the
// gateway's own cost plus a loopback round trip.
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(up.Close)
	p, _ := newTestPool(b, Options{Targets: []string{up.URL}})
	info := &reqinfo.Info{RequestID: testRequestID, Client: "bench"}
	req := httptest.NewRequest(http.MethodGet, "/api/services?page=1", nil)
	req = req.WithContext(reqinfo.With(req.Context(), info))

	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

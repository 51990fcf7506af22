package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the operator endpoints. It listens on a private address and
// has no authentication of its own, like nginx's stub_status or Caddy's admin API.
func (s *Server) adminHandler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeStatus(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		if !s.edge.Load().edge.Ready() {
			// ACME: no certificate yet for every name, so handshakes would fail.
			writeStatus(w, http.StatusServiceUnavailable, "certificates not ready")
			return
		}
		if s.redis {
			if err := s.deps.store.Ping(r.Context()); err != nil {
				// Signed routes fail closed without Redis; the load balancer should
				// send their traffic to an instance that can reach it.
				writeStatus(w, http.StatusServiceUnavailable, "redis unreachable")
				return
			}
		}
		writeStatus(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "refused", "error": err.Error()})
			return
		}
		writeStatus(w, http.StatusOK, "reloaded")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, `{"status":"`+status+`"}`+"\n")
}

package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

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
				s.writeReady(w, http.StatusServiceUnavailable, "redis unreachable")
				return
			}
		}
		s.writeReady(w, http.StatusOK, "ready")
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
	mux.HandleFunc("POST /-/cache/purge", s.purgeCache)
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

// purgeRequest is the body of POST /-/cache/purge: a route, a path prefix, or both.
type purgeRequest struct {
	Route  string `json:"route"`
	Prefix string `json:"prefix"`
}

// purgeCache empties cache entries on every instance: those of route (every cached
// route when none is named) whose path starts with prefix. It answers
// {"purged":N,"instances":M}, N the entries removed and M the instances that
// emptied their in-process tier, once they all have (see cache.Purge).
func (s *Server) purgeCache(w http.ResponseWriter, r *http.Request) {
	var req purgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeAdminError(w, http.StatusBadRequest, `want a JSON body {"route":"NAME"} or {"prefix":"/path"} (or both): `+err.Error())
		return
	}
	gw := s.gw.Load()
	routes := gw.cached
	switch {
	case req.Route == "" && req.Prefix == "":
		writeAdminError(w, http.StatusBadRequest, `name a route ("route") or a path prefix ("prefix"), or both`)
		return
	case req.Prefix != "" && !strings.HasPrefix(req.Prefix, "/"):
		writeAdminError(w, http.StatusBadRequest, fmt.Sprintf("prefix must start with /, got %q", req.Prefix))
		return
	case req.Route != "":
		if !slices.Contains(gw.cached, req.Route) {
			writeAdminError(w, http.StatusBadRequest, fmt.Sprintf("no route named %q has a cache", req.Route))
			return
		}
		routes = []string{req.Route}
	}
	res, err := gw.cache.Purge(r.Context(), routes, req.Prefix)
	if err != nil {
		s.logger.Warn("cache purge failed", "route", req.Route, "prefix", req.Prefix, "err", err)
		writeAdminError(w, http.StatusServiceUnavailable, "the purge did not reach Redis; entries may remain: "+err.Error())
		return
	}
	s.logger.Info("cache purged", "route", req.Route, "prefix", req.Prefix, "entries", res.Entries, "instances", res.Instances)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(purgeAnswer{Purged: res.Entries, Instances: res.Instances})
}

// purgeAnswer is POST /-/cache/purge's answer.
type purgeAnswer struct {
	Purged    int `json:"purged"`
	Instances int `json:"instances"`
}

func writeAdminError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

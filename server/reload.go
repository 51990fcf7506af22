package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/signgate/signgate/config"
)

// watchInterval is how often the config file is checked for change. Reading and
// hashing the file is cheap, and reading it by name follows what the name points to
// now: an editor's write-to-temp-and-rename and a Kubernetes ConfigMap's symlink swap
// are both seen, which an inotify watch on the file itself would miss.
const watchInterval = time.Second

// edgeReadyWait bounds how long a reload that changes the tls section waits for its
// certificates before giving up and keeping the running ones.
const edgeReadyWait = 30 * time.Second

// SetConfigSource tells the server how to read its config again on Reload, and which
// file to watch for change ("" watches nothing). Call it before Serve.
func (s *Server) SetConfigSource(load func() (*config.Config, error), watchPath string) {
	s.load = load
	s.watchPath = watchPath
}

// Reload reads the config again and, when it is valid, swaps in a gateway built from
// it: new requests use it, requests in flight finish on the one they started with,
// and no listener or connection is touched. An invalid config is logged with every
// problem and the running one kept.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.stopped {
		return errors.New("the server is shutting down")
	}
	if s.load == nil {
		return errors.New("no config source to reload from")
	}
	cfg, err := s.load()
	if err == nil {
		err = s.apply(cfg)
	}
	if err != nil {
		s.metrics.reloads.WithLabelValues("error").Inc()
		var problems config.Errors
		if errors.As(err, &problems) {
			for _, p := range problems {
				s.logger.Error("config reload refused; the running config keeps serving", "problem", p.String())
			}
		} else {
			s.logger.Error("config reload refused; the running config keeps serving", "err", err)
		}
		return err
	}
	s.metrics.reloads.WithLabelValues("ok").Inc()
	s.logger.Info("config reloaded")
	return nil
}

// apply swaps in cfg. Called with reloadMu held.
func (s *Server) apply(cfg *config.Config) error {
	old := s.gw.Load()
	for _, setting := range restartOnly(old.cfg, cfg) {
		s.logger.Warn("config change needs a restart to take effect; the running value stays", "setting", setting)
	}
	oldEdge := s.edge.Load()
	edge := oldEdge
	if !reflect.DeepEqual(oldEdge.tls, cfg.TLS) && (oldEdge.conf == nil) == (cfg.TLS.Mode == "off") {
		var err error
		if edge, err = newEdge(cfg, s.certStorage, s.metrics, s.logger); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	gw, err := buildGateway(cfg, s.deps, old)
	if err != nil {
		return err
	}
	if edge != oldEdge {
		edge.start()
		// Swap only once the new source has its certificates (at once for files
		// and self-signed; an ACME order for a new name can take a while).
		if !edge.waitReady(edgeReadyWait) {
			edge.close()
			old.retireUnshared(gw)
			return fmt.Errorf("tls: the new certificates were not ready within %v; the running TLS setup keeps serving", edgeReadyWait)
		}
		s.edge.Store(edge)
		oldEdge.close()
	}
	gw.start()
	s.gw.Store(gw)
	old.retire(gw)
	return nil
}

// restartOnly lists the settings that changed but are bound at start: the listeners
// and their timeouts, the shared-state connection, logging, tracing, the response cache's
// sizes, and switching TLS on or off.
func restartOnly(old, cur *config.Config) []string {
	var changed []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			changed = append(changed, name)
		}
	}
	check("server", old.Server, cur.Server)
	check("redis", old.Redis, cur.Redis)
	check("log", old.Log, cur.Log)
	check("cache", old.Cache, cur.Cache)
	check("tracing", old.Tracing, cur.Tracing)
	if (old.TLS.Mode == "off") != (cur.TLS.Mode == "off") {
		changed = append(changed, "tls.mode (on/off)")
	}
	return changed
}

// watchConfig polls the watched file and reloads when its content changes. It
// returns a function that stops it.
func (s *Server) watchConfig() (stop func()) {
	if s.watchPath == "" {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	last := fileHash(s.watchPath)
	go func() {
		defer close(stopped)
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				h := fileHash(s.watchPath)
				if h == nil || bytes.Equal(h, last) {
					// A file missing for a moment (mid-rename) is not a change.
					continue
				}
				last = h
				s.logger.Info("config file changed; reloading", "path", s.watchPath)
				_ = s.Reload()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func fileHash(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

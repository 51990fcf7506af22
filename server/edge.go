package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/tlsedge"
)

// edgeState is one tlsedge.Edge with its config and its background work (the cert
// file watcher, or certmagic's cache and renewals).
type edgeState struct {
	tls     config.TLS
	edge    *tlsedge.Edge
	conf    *tls.Config // nil when tls.mode is off
	stop    context.CancelFunc
	stopped chan struct{}
}

// newEdge builds the certificate source for cfg's tls section. storage, when not nil,
// holds ACME certificates shared by the fleet (Redis); otherwise tls.storage_dir does.
// m counts the ACME orders that fail.
func newEdge(cfg *config.Config, storage certmagic.Storage, m *metrics, logger *slog.Logger) (*edgeState, error) {
	tc := cfg.TLS
	e, err := tlsedge.New(tlsedge.Options{
		Mode:       tc.Mode,
		MinVersion: tc.MinVersion,
		CertFile:   tc.CertFile,
		KeyFile:    tc.KeyFile,
		Hosts:      tc.Domains,
		Domains:    tc.Domains,
		Email:      tc.Email,
		CA:         tc.CA,
		CARoot:     tc.CARoot,
		StorageDir: tc.StorageDir,
		Storage:    storage,
		Listen:     cfg.Server.Listen,
		HTTPListen: cfg.Server.HTTPListen,
		Logger:     logger,

		OnRenewalFailure: m.renewalFailed,
	})
	if err != nil {
		return nil, err
	}
	for _, d := range e.ACMEDomains() {
		m.renewalFailures.WithLabelValues(d) // at zero, so increase() sees the first failure
	}
	return &edgeState{tls: tc, edge: e, conf: e.TLSConfig()}, nil
}

// waitReady waits until the edge has a certificate for every name, up to limit.
func (e *edgeState) waitReady(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !e.edge.Ready() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func (e *edgeState) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	e.stopped = make(chan struct{})
	go func() {
		defer close(e.stopped)
		e.edge.Run(ctx)
	}()
}

func (e *edgeState) close() {
	if e.stop != nil {
		e.stop()
		<-e.stopped
	}
}

// tlsConfig is the edge listener's config: each handshake takes the config of the
// edge current at that moment, so a reload can change certificates and versions
// without touching the listener. nil when TLS is off.
func (s *Server) tlsConfig() *tls.Config {
	first := s.edge.Load().conf
	if first == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: first.MinVersion,
		NextProtos: first.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.edge.Load().conf, nil
		},
	}
}

package server

import (
	"context"
	"crypto/tls"
	"log/slog"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/tlsedge"
)

// edgeState is one tlsedge.Edge with its config and its file watcher.
type edgeState struct {
	tls     config.TLS
	edge    *tlsedge.Edge
	conf    *tls.Config // nil when tls.mode is off
	stop    context.CancelFunc
	stopped chan struct{}
}

func newEdge(tc config.TLS, logger *slog.Logger) (*edgeState, error) {
	e, err := tlsedge.New(tlsedge.Options{
		Mode:       tc.Mode,
		MinVersion: tc.MinVersion,
		CertFile:   tc.CertFile,
		KeyFile:    tc.KeyFile,
		Hosts:      tc.Domains,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	return &edgeState{tls: tc, edge: e, conf: e.TLSConfig()}, nil
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

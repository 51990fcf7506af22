package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/mask"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/state"
	"github.com/signgate/signgate/tlsedge"
)

// Server is a running signgate: the edge listener, the optional HTTP→HTTPS redirect
// listener and the admin listener, in front of the gateway built from the config.
type Server struct {
	cfg     *config.Config
	logger  *slog.Logger
	metrics *metrics
	deps    deps

	// edge is the current certificate source; a reload that changes the tls section
	// swaps it, and every new handshake asks it for its config.
	edge atomic.Pointer[edgeState]

	// reloadMu serialises reloads with each other and with shutdown; load and
	// watchPath say where a reload reads the config (see SetConfigSource).
	reloadMu  sync.Mutex
	load      func() (*config.Config, error)
	watchPath string
	stopped   bool

	closeAudit func() error
	// certStorage is the fleet's ACME storage (Redis), kept for the edges reloads build.
	certStorage certmagic.Storage

	gw    atomic.Pointer[gateway]
	ready atomic.Bool
	redis bool // shared state is in Redis, so readiness depends on reaching it

	main, redirect, admin       *http.Server
	mainLn, redirectLn, adminLn net.Listener
}

// Option adjusts a Server as New builds it.
type Option func(*deps)

// WithJSONAccessLog has the gateway write its access lines straight to w rather
// than through the logger, byte for byte as slog.NewJSONHandler(w, nil) would (masked
// as every log line is), at a fraction of the cost. w must be the logger's own
// writer, the logger must be JSON at level info or below, and w must take
// concurrent Writes of whole lines without interleaving them, as an *os.File does.
func WithJSONAccessLog(w io.Writer) Option {
	return func(d *deps) { d.accessOut = w }
}

// New builds a Server from cfg. It binds nothing yet: see Listen.
func New(cfg *config.Config, logger *slog.Logger, opts ...Option) (s *Server, err error) {
	// Whatever New opened is closed again when a later step fails.
	var cleanup []func() error
	defer func() {
		if err != nil {
			for _, c := range cleanup {
				_ = c()
			}
		}
	}()
	// One wrapper masks every log line the gateway writes, whatever role the
	// request had: access log, errors, audit, debug.
	logger = slog.New(mask.NewHandler(logger.Handler(), newMasker(cfg.Masking)))
	audit, closeAudit, err := newAuditLogger(cfg, logger)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, closeAudit)
	m := newMetrics()
	store, err := newStore(cfg.Redis, m.redis, logger)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, store.Close)
	// With Redis, ACME certificates, account and locks live there too, so a fleet
	// obtains and renews one certificate between them.
	var certStorage certmagic.Storage
	if r, ok := store.(*state.Redis); ok {
		certStorage = tlsedge.NewRedisStorage(r.Client(), tlsedge.RedisStorageOptions{KeyPrefix: cfg.Redis.KeyPrefix, Logger: logger})
	}
	edge, err := newEdge(cfg, certStorage, m, logger)
	if err != nil {
		return nil, err
	}
	s = &Server{cfg: cfg, logger: logger, metrics: m, redis: len(cfg.Redis.Addrs) > 0, certStorage: certStorage}
	s.edge.Store(edge)
	m.watchCertificates(func() []tlsedge.CertificateExpiry { return s.edge.Load().edge.Certificates() })
	s.deps = deps{
		logger:    logger,
		metrics:   s.metrics,
		transport: proxy.NewTransport(proxy.TransportOptions{}),
		now:       time.Now,
		store:     store,
		audit:     audit,
		limiter:   s.newLimiter(cfg, store),
		// With Redis, a request's limits and replay check are one round trip.
		batchLimits: s.redis,
		tunnels:     newTunnels(s.metrics.tunnels),
		cache:       newResponseCache(cfg, store, logger),
		sessions:    newSessions(cfg, store, logger),
	}
	cleanup = append(cleanup, func() error {
		if s.deps.sessions != nil {
			s.deps.sessions.Close()
		}
		return nil
	})
	if err := s.traceWith(cfg, store); err != nil {
		return nil, err
	}
	s.deps.limiter = traceLimiter(s.deps.tracer, s.deps.limiter, s.redis)
	cleanup = append(cleanup, func() error { return s.deps.tracer.Shutdown(context.Background()) })
	for _, o := range opts {
		o(&s.deps)
	}
	s.closeAudit = closeAudit
	gw, err := buildGateway(cfg, s.deps, nil)
	if err != nil {
		return nil, err
	}
	s.gw.Store(gw)

	sc := cfg.Server
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	s.main = &http.Server{
		Handler:           http.HandlerFunc(s.serveGateway),
		TLSConfig:         s.tlsConfig(),
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		ReadTimeout:       sc.ReadTimeout,
		WriteTimeout:      sc.WriteTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    sc.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
	if sc.HTTPListen != "" && edge.conf != nil {
		s.redirect = &http.Server{
			ReadHeaderTimeout: sc.ReadHeaderTimeout,
			IdleTimeout:       sc.IdleTimeout,
			MaxHeaderBytes:    sc.MaxHeaderBytes,
			ErrorLog:          errLog,
		}
	}
	s.admin = &http.Server{
		Handler:           s.adminHandler(sc.Pprof),
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		IdleTimeout:       sc.IdleTimeout,
		ErrorLog:          errLog,
	}
	return s, nil
}

// newLimiter returns the rate limiter: GCRA in Redis when Redis is configured, falling
// back per ratelimit.redis_failure while it is unreachable; x/time/rate in memory
// otherwise.
func (s *Server) newLimiter(cfg *config.Config, store sharedState) ratelimit.Decider {
	local := ratelimit.NewLocal(ratelimit.LocalOptions{})
	r, ok := store.(*state.Redis)
	if !ok {
		return local
	}
	shared := ratelimit.NewRedis(r.Scripter(), ratelimit.RedisOptions{KeyPrefix: cfg.Redis.KeyPrefix})
	return ratelimit.NewFallback(shared, local, cfg.RateLimit.RedisFailure, func(err error) {
		s.metrics.limiterFallbacks.Inc()
		s.logger.Warn("rate limiting without Redis", "mode", cfg.RateLimit.RedisFailure, "err", err)
	})
}

// newAuditLogger opens log.audit_file for appending, or uses the main log when it is
// not set. Audit lines are masked like every other line.
func newAuditLogger(cfg *config.Config, logger *slog.Logger) (*slog.Logger, func() error, error) {
	if cfg.Log.AuditFile == "" {
		return logger, func() error { return nil }, nil
	}
	f, err := os.OpenFile(cfg.Log.AuditFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("log.audit_file: %w", err)
	}
	h := mask.NewHandler(slog.NewJSONHandler(f, nil), newMasker(cfg.Masking))
	return slog.New(h), f.Close, nil
}

// newStore returns the shared state: Redis when addresses are configured, so every
// instance sees the same nonces and tokens; process memory for a single instance.
// With Redis, m counts its errors by kind and reports its masters and failovers,
// which a look every second keeps current (and logs when they change).
func newStore(rc config.Redis, m *redisMetrics, logger *slog.Logger) (sharedState, error) {
	if len(rc.Addrs) == 0 {
		return state.NewMemory(state.MemoryOptions{}), nil
	}
	r, err := state.NewRedis(state.RedisOptions{
		Addrs:      rc.Addrs,
		MasterName: rc.MasterName,
		Username:   rc.Username,
		Password:   rc.Password,
		DB:         rc.DB,
		TLS:        rc.TLS,
		KeyPrefix:  rc.KeyPrefix,
		Timeout:    rc.Timeout,
		OnError:    m.failed,
		WatchEvery: redisWatchEvery,
		OnTopology: logTopology(logger),
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	m.watch(r)
	return r, nil
}

// serveGateway hands each request to the gateway current when it arrived.
func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	s.gw.Load().handler.ServeHTTP(w, r)
}

// Listen binds every listener, so a port in use fails before anything is served.
func (s *Server) Listen() error {
	var err error
	sc := s.cfg.Server
	if s.mainLn, err = listen(sc.Listen, sc.ProxyProtocolFrom, sc.ReadHeaderTimeout); err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", s.cfg.Server.AdminListen); err != nil {
		s.mainLn.Close()
		return fmt.Errorf("server.admin_listen: %w", err)
	}
	if s.redirect != nil {
		// Redirect to the port really bound, which differs from the config's only
		// when it asked for port 0 (tests).
		httpsAddr := s.cfg.Server.Listen
		if _, port, _ := net.SplitHostPort(httpsAddr); port == "0" {
			httpsAddr = s.mainLn.Addr().String()
		}
		// Behind a port mapping (docker -p 443:8443, a load balancer) clients reach
		// the TLS listener on another port than it binds.
		if p := s.cfg.Server.PublicHTTPSPort; p > 0 {
			httpsAddr = net.JoinHostPort("", strconv.Itoa(p))
		}
		redirect := tlsedge.RedirectHandler(httpsAddr)
		// ACME HTTP-01 challenges are answered here, by whichever edge is current.
		s.redirect.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.edge.Load().edge.HTTPChallengeHandler(redirect).ServeHTTP(w, r)
		})
		if s.redirectLn, err = listen(sc.HTTPListen, sc.ProxyProtocolFrom, sc.ReadHeaderTimeout); err != nil {
			s.mainLn.Close()
			s.adminLn.Close()
			return fmt.Errorf("server.http_listen: %w", err)
		}
	}
	return nil
}

// listen binds a public listener, reading PROXY protocol headers from the networks in
// proxyFrom (see withProxyProtocol).
func listen(addr string, proxyFrom []string, headerTimeout time.Duration) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	wrapped, err := withProxyProtocol(ln, proxyFrom, headerTimeout)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return wrapped, nil
}

// Logger is the logger the gateway writes with: the one New was given, wrapped so
// that no line holds a full mobile number. Make it slog's default (slog.SetDefault)
// so that lines from libraries, net/http's among them, are masked too.
func (s *Server) Logger() *slog.Logger { return s.logger }

// Addr is the edge listener's address (after Listen).
func (s *Server) Addr() net.Addr { return s.mainLn.Addr() }

// AdminAddr is the admin listener's address (after Listen).
func (s *Server) AdminAddr() net.Addr { return s.adminLn.Addr() }

// RedirectAddr is the HTTP redirect listener's address, or nil when there is none.
func (s *Server) RedirectAddr() net.Addr {
	if s.redirectLn == nil {
		return nil
	}
	return s.redirectLn.Addr()
}

// Run is Listen followed by Serve.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve serves on the bound listeners until ctx is done, then stops accepting, lets
// requests in flight finish for server.shutdown_timeout, and returns. It returns nil
// after a clean drain.
func (s *Server) Serve(ctx context.Context) error {
	s.edge.Load().start()
	s.gw.Load().start()
	stopWatch := s.watchConfig()

	errc := make(chan error, 3)
	serve := func(name string, srv *http.Server, ln net.Listener, tls bool) {
		var err error
		if tls {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s: %w", name, err)
		}
	}
	go serve("server.listen", s.main, s.mainLn, s.main.TLSConfig != nil)
	go serve("server.admin_listen", s.admin, s.adminLn, false)
	if s.redirect != nil {
		go serve("server.http_listen", s.redirect, s.redirectLn, false)
	}
	s.ready.Store(true)
	s.logger.Info("serving", "listen", s.mainLn.Addr().String(), "tls", s.cfg.TLS.Mode,
		"admin", s.adminLn.Addr().String(), "http_redirect", s.cfg.Server.HTTPListen)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// Not ready first, so a load balancer stops sending while we drain.
	s.ready.Store(false)
	s.logger.Info("shutting down", "drain_for", s.cfg.Server.ShutdownTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	// WebSocket tunnels have no natural end: they are closed now, and their
	// clients reconnect through the load balancer to an instance that stays.
	wg.Go(func() {
		if err := s.deps.tunnels.closeAll(drainCtx); err != nil {
			s.logger.Warn("WebSocket tunnels still open at the end of the drain", "err", err)
		}
	})
	for _, srv := range []*http.Server{s.main, s.redirect} {
		if srv != nil {
			wg.Go(func() {
				if err := srv.Shutdown(drainCtx); err != nil {
					s.logger.Warn("drain cut short; closing the remaining connections", "err", err)
					srv.Close()
				}
			})
		}
	}
	wg.Wait()
	// The admin listener goes last so /metrics and /readyz answer during the drain.
	_ = s.admin.Shutdown(drainCtx)
	stopWatch()
	s.reloadMu.Lock()
	s.stopped = true
	s.reloadMu.Unlock()
	s.gw.Load().retire(nil)
	s.edge.Load().close()
	if err := s.closeAudit(); err != nil {
		s.logger.Warn("closing the audit log", "err", err)
	}
	s.deps.sessions.Close()
	if err := s.deps.store.Close(); err != nil {
		s.logger.Warn("closing the state store", "err", err)
	}
	s.stopTracing()
	s.logger.Info("stopped")
	return serveErr
}

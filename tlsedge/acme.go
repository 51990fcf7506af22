package tlsedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// acmeSource is the certmagic side of an Edge in acme mode. New only checks and
// prepares; the certmagic cache (which starts a maintenance goroutine the moment it
// exists) is made by Run and stopped when Run returns, so an Edge that a failed reload
// throws away before running leaves nothing behind.
type acmeSource struct {
	domains []string
	storage certmagic.Storage
	issuer  certmagic.ACMEIssuer // template for certmagic.NewACMEIssuer
	zlog    *zap.Logger
	// onFailure is Options.OnRenewalFailure.
	onFailure func(name string)

	running atomic.Pointer[acmeRun] // nil until Run
	ready   atomic.Bool             // latched once every domain has a certificate
}

// acmeRun is what Run builds: the cache, the config serving from it, and the issuer
// that answers HTTP-01 challenges.
type acmeRun struct {
	cache  *certmagic.Cache
	config *certmagic.Config
	issuer *certmagic.ACMEIssuer
}

func newACMESource(o Options, log *slog.Logger) (*acmeSource, error) {
	domains, err := acmeDomains(o.Domains)
	if err != nil {
		return nil, err
	}
	storage := o.Storage
	if storage == nil {
		if o.StorageDir == "" {
			return nil, errors.New(`tls.storage_dir: required when tls.mode is "acme" and Redis is not configured`)
		}
		storage = &certmagic.FileStorage{Path: o.StorageDir}
	}
	ca := o.CA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	zlog := zapToSlog(log)
	a := &acmeSource{
		domains:   domains,
		storage:   storage,
		zlog:      zlog,
		onFailure: o.OnRenewalFailure,
		issuer: certmagic.ACMEIssuer{
			CA:    ca,
			Email: o.Email,
			// Setting tls.mode acme is the operator's acceptance of the CA's
			// subscriber agreement; docs/deploy.md says so.
			Agreed: true,
			// HTTP-01 needs port 80 of the domain to reach server.http_listen; with
			// no HTTP listener only TLS-ALPN-01 (port 443 → server.listen) is left.
			DisableHTTPChallenge: o.HTTPListen == "",
			Logger:               zlog,
		},
	}
	if o.CARoot != "" {
		pemBytes, err := os.ReadFile(o.CARoot)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_root: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("tls.ca_root: %s holds no PEM certificate", o.CARoot)
		}
		a.issuer.TrustedRoots = pool
	}
	// certmagic starts its own challenge listener on the ports below when it can bind
	// them, and assumes the port's owner answers when it cannot. Pointing it at the
	// gateway's own listeners, which are bound before Run, makes that always the
	// gateway: HTTP-01 through HTTPChallengeHandler, TLS-ALPN-01 through the
	// GetCertificate of TLSConfig. Left at certmagic's defaults it would open :80 and
	// :443 by itself whenever it could.
	if host, port, ok := splitListen(o.Listen); ok {
		a.issuer.ListenHost, a.issuer.AltTLSALPNPort = host, port
	}
	if _, port, ok := splitListen(o.HTTPListen); ok {
		a.issuer.AltHTTPPort = port
	}
	if o.Email == "" {
		log.Warn("tls.email is empty: the CA cannot warn you about expiring certificates or problems with your account",
			"tls_mode", o.Mode)
	}
	log.Info("tls certificates from ACME", "tls_mode", o.Mode, "domains", domains, "ca", ca,
		"storage", fmt.Sprint(storage), "http_01", o.HTTPListen != "", "tls_alpn_01", true)
	return a, nil
}

// acmeDomains checks and normalises tls.domains. Wildcards are refused: they need the
// DNS-01 challenge, which the gateway does not do.
func acmeDomains(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New(`tls.domains: at least one domain is required when tls.mode is "acme"`)
	}
	seen := make(map[string]bool)
	var out []string
	for i, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		switch {
		case d == "":
			return nil, fmt.Errorf("tls.domains[%d]: empty", i)
		case strings.Contains(d, "*"):
			return nil, fmt.Errorf("tls.domains[%d]: %q: wildcard certificates need the DNS-01 challenge, which signgate does not do", i, d)
		case strings.ContainsAny(d, "/:@ "):
			return nil, fmt.Errorf("tls.domains[%d]: %q is not a host name", i, d)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// splitListen returns the host and port of a listen address, ok only for a usable
// port: port 0 (tests) is unknown until bound, and certmagic reads 0 as its default.
func splitListen(addr string) (host string, port int, ok bool) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	n, err := net.LookupPort("tcp", p)
	if err != nil || n == 0 {
		return "", 0, false
	}
	if ip, err := netip.ParseAddr(h); err == nil && ip.IsUnspecified() {
		h = "" // ":port" and "0.0.0.0:port" are the same bind for certmagic's check
	}
	return h, n, true
}

// run builds the certmagic cache and config, starts managing the domains in the
// background, and stops the cache when ctx ends.
func (a *acmeSource) run(ctx context.Context, log *slog.Logger) {
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		// One config manages every certificate of this Edge; a reload makes a new
		// Edge with its own cache.
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           a.zlog,
	})
	cfg = certmagic.New(cache, certmagic.Config{
		Storage: a.storage,
		Logger:  a.zlog,
		// Clients that send no SNI (by IP address, some probes) still get the
		// certificate instead of a failed handshake.
		DefaultServerName: a.domains[0],
		// cert_failed events feed the renewal-failure counter.
		OnEvent: a.onCertmagicEvent,
	})
	issuer := certmagic.NewACMEIssuer(cfg, a.issuer)
	cfg.Issuers = []certmagic.Issuer{issuer}
	a.running.Store(&acmeRun{cache: cache, config: cfg, issuer: issuer})
	defer cache.Stop()

	// Async: the health endpoints and the listeners must not wait for the CA. Errors
	// inside (the CA unreachable, a failed challenge) are logged by certmagic and
	// retried with backoff; what comes back here failed before any ACME exchange.
	if err := cfg.ManageAsync(ctx, a.domains); err != nil {
		log.Error("tls: managing ACME certificates", "domains", a.domains, "err", err)
	}
	<-ctx.Done()
}

// isReady reports whether every domain has a certificate in the cache. Once true it
// stays true: certmagic replaces a certificate only with a renewed one.
func (a *acmeSource) isReady() bool {
	if a.ready.Load() {
		return true
	}
	r := a.running.Load()
	if r == nil {
		return false
	}
	for _, d := range a.domains {
		if len(r.cache.AllMatchingCertificates(d)) == 0 {
			return false
		}
	}
	a.ready.Store(true)
	return true
}

func (a *acmeSource) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	r := a.running.Load()
	if r == nil {
		return nil, errors.New("tlsedge: ACME certificates are not managed yet (Edge.Run not called)")
	}
	// certmagic answers TLS-ALPN-01 validation handshakes ("acme-tls/1") here too.
	return r.config.GetCertificate(hello)
}

// handleHTTPChallenge answers an HTTP-01 validation request, for a challenge this
// instance or any other sharing the storage started, and reports whether it did.
func (a *acmeSource) handleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	run := a.running.Load()
	return run != nil && run.issuer.HandleHTTPChallenge(w, r)
}

// acmeNextProtos are the ALPN protocols of the acme edge: HTTP, and "acme-tls/1"
// (RFC 8737, acmez.ACMETLS1Protocol), without which the CA's TLS-ALPN-01 validation
// handshake is refused.
var acmeNextProtos = []string{"h2", "http/1.1", "acme-tls/1"}

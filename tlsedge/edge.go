package tlsedge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// Options configures an Edge. The server fills it from the tls section of config.yaml.
type Options struct {
	Mode       string // "self_signed" | "files" | "acme" | "off"
	MinVersion string // "1.2" | "1.3"; "" means "1.2"
	// CertFile and KeyFile are the PEM cert (chain) and key of files mode.
	CertFile, KeyFile string
	// Hosts are extra SANs for the self-signed certificate; localhost, 127.0.0.1 and
	// ::1 are always included.
	Hosts []string
	// PollInterval is how often files mode checks the files for change; 0 means 2s.
	PollInterval time.Duration
	Logger       *slog.Logger // nil means slog.Default()

	// Domains are the names acme mode obtains certificates for (tls.domains).
	Domains []string
	// Email is the ACME account's contact (tls.email); the CA writes to it about
	// expiring certificates and account problems.
	Email string
	// CA is the ACME directory URL (tls.ca); "" means Let's Encrypt production.
	CA string
	// CARoot is the path of a PEM file of roots to trust for the CA's own HTTPS
	// endpoint (tls.ca_root), for a private or test CA; "" means the system roots.
	CARoot string
	// StorageDir is where acme mode keeps certificates, keys and the ACME account when
	// Storage is nil (tls.storage_dir).
	StorageDir string
	// Storage, when set, replaces the files under StorageDir: a RedisStorage shared
	// by every instance, so they obtain and renew one certificate between them.
	Storage certmagic.Storage
	// Listen and HTTPListen are server.listen and server.http_listen. Acme mode
	// answers TLS-ALPN-01 on Listen and HTTP-01 on HTTPListen (through
	// HTTPChallengeHandler), and tells certmagic so, which then never opens ports of
	// its own. HTTPListen "" turns HTTP-01 off.
	Listen, HTTPListen string
	// OnRenewalFailure, when set, is told the domain (or "other") of every failed
	// attempt to obtain or renew an ACME certificate; certmagic retries with
	// backoff, so an outage at the CA is a steady stream of calls. A first issue
	// that fails counts too: to WeChat a domain without a certificate is as broken
	// as one whose certificate expired. Acme mode only.
	OnRenewalFailure func(name string)
}

const (
	modeSelfSigned = "self_signed"
	modeFiles      = "files"
	modeACME       = "acme"
	modeOff        = "off"

	defaultPollInterval = 2 * time.Second
)

// tls12CipherSuites are the only TLS 1.2 suites offered: forward secrecy (ECDHE) and
// AEAD only. CBC suites (Lucky13-style padding oracles) and RSA key exchange (no
// forward secrecy, ROBOT) are left out. Both ECDSA and RSA variants are listed because
// files mode may be given either kind of key. Go does not let TLS 1.3 suites be
// configured; all of them are AEAD.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Edge holds the certificate the edge listener serves and keeps it current.
type Edge struct {
	mode       string
	minVersion uint16
	log        *slog.Logger

	// cert is read on every handshake and replaced by the files poller; an atomic
	// pointer keeps handshakes lock-free and a swap all-or-nothing.
	cert atomic.Pointer[tls.Certificate]

	files *fileSource // files mode only
	acme  *acmeSource // acme mode only
}

// ParseMinVersion maps the config's min_version ("1.2" or "1.3") to its tls constant.
// Older versions are not offered: TLS 1.0/1.1 are deprecated (RFC 8996).
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf(`unsupported TLS version %q: want "1.2" or "1.3"`, s)
}

// New returns an Edge for o. Mode "off" gives an Edge whose TLSConfig is nil. Files
// mode loads the pair now, so a bad path or key fails at startup (or config reload)
// instead of at the first handshake.
func New(o Options) (*Edge, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &Edge{mode: o.Mode, log: log}

	switch o.Mode {
	case modeOff:
		log.Info("tls off: the edge listener serves plain HTTP", "tls_mode", o.Mode)
		return e, nil
	case modeSelfSigned, modeFiles, modeACME:
	default:
		return nil, fmt.Errorf(`tls.mode %q: want "self_signed", "files", "acme" or "off"`, o.Mode)
	}

	minVersion := o.MinVersion
	if minVersion == "" {
		minVersion = "1.2"
	}
	v, err := ParseMinVersion(minVersion)
	if err != nil {
		return nil, fmt.Errorf("tls.min_version: %w", err)
	}
	e.minVersion = v

	if o.Mode == modeACME {
		if e.acme, err = newACMESource(o, log); err != nil {
			return nil, err
		}
		return e, nil
	}
	if o.Mode == modeSelfSigned {
		cert, err := SelfSigned(o.Hosts, time.Now())
		if err != nil {
			return nil, fmt.Errorf("tls self-signed certificate: %w", err)
		}
		e.cert.Store(&cert)
		// Logged at warn, not info: a self-signed edge reaching production means
		// the mini-program cannot connect at all, and this line is the hint.
		log.Warn("tls self-signed certificate: browsers and WeChat will not trust it; use curl -k locally",
			"tls_mode", o.Mode, "min_version", minVersion,
			"dns_names", cert.Leaf.DNSNames, "ip_addresses", ipStrings(cert.Leaf),
			"not_after", cert.Leaf.NotAfter)
		return e, nil
	}

	fs, err := newFileSource(o.CertFile, o.KeyFile, o.PollInterval)
	if err != nil {
		return nil, err
	}
	e.files = fs
	e.cert.Store(fs.initial)
	fs.initial = nil
	log.Info("tls certificate loaded", append([]any{"tls_mode", o.Mode, "min_version", minVersion},
		certAttrs(fs.certFile, fs.keyFile, e.cert.Load())...)...)
	warnIfExpired(log, fs.certFile, e.cert.Load(), time.Now())
	return e, nil
}

// TLSConfig returns the config the edge listener serves with, or nil when TLS is off.
// Each call returns a new config, so the caller may change it. Leave Certificates
// empty: Go uses Certificates instead of GetCertificate for clients that send no SNI
// (anyone connecting by IP address), which would bypass reloads.
//
// In acme mode GetCertificate is certmagic's, which also answers the CA's TLS-ALPN-01
// validation handshakes, and NextProtos ends with "acme-tls/1" for them.
func (e *Edge) TLSConfig() *tls.Config {
	if e.mode == modeOff {
		return nil
	}
	if e.acme != nil {
		return &tls.Config{
			MinVersion:     e.minVersion,
			NextProtos:     append([]string(nil), acmeNextProtos...),
			CipherSuites:   append([]uint16(nil), tls12CipherSuites...),
			GetCertificate: e.acme.getCertificate,
		}
	}
	return &tls.Config{
		MinVersion:     e.minVersion,
		NextProtos:     []string{"h2", "http/1.1"},
		CipherSuites:   append([]uint16(nil), tls12CipherSuites...),
		GetCertificate: e.getCertificate,
	}
}

func (e *Edge) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := e.cert.Load(); c != nil {
		return c, nil
	}
	// Unreachable while New is the only constructor; an error beats a nil-pointer
	// panic inside crypto/tls if that ever changes.
	return nil, errors.New("tlsedge: no certificate loaded")
}

// Run keeps the certificate current until ctx is done. In files mode it polls the
// cert and key files every PollInterval and swaps in a changed pair; a pair that does
// not load is logged at error and the current certificate kept. In acme mode it starts
// certmagic, which loads the certificates from storage or obtains them from the CA in
// the background (Run does not wait for that: see Ready), renews them and staples
// OCSP; certmagic stops when ctx ends. In the other modes there is nothing to watch
// and Run just waits for ctx, so the caller can start it the same way whatever the
// mode. Call it once per Edge, after the listeners are bound.
func (e *Edge) Run(ctx context.Context) {
	switch {
	case e.files != nil:
		e.files.run(ctx, e)
	case e.acme != nil:
		e.acme.run(ctx, e.log)
	default:
		<-ctx.Done()
	}
}

// Ready reports whether the Edge has a certificate to serve: in acme mode, once one
// is loaded for every domain (until then handshakes fail and /readyz should say 503);
// in the other modes always.
func (e *Edge) Ready() bool {
	if e.acme != nil {
		return e.acme.isReady()
	}
	return true
}

// HTTPChallengeHandler returns next wrapped so that, in acme mode, ACME HTTP-01
// validation requests (/.well-known/acme-challenge/…) are answered, whichever
// instance sharing the storage started the challenge; everything else goes to next.
// In the other modes it returns next. The server puts it around the HTTP→HTTPS
// redirect on server.http_listen.
func (e *Edge) HTTPChallengeHandler(next http.Handler) http.Handler {
	if e.acme == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.acme.handleHTTPChallenge(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

package proxy

import (
	"context"
	"net"
	"net/http"
	"time"
)

// TransportOptions tunes the Transport shared by every Pool. Zero fields take defaults.
type TransportOptions struct {
	MaxIdleConnsPerHost int           // idle keep-alive connections kept per target; 0 means 256
	IdleConnTimeout     time.Duration // how long an idle connection is kept; 0 means 90s
}

const (
	defaultMaxIdleConnsPerHost = 256
	defaultIdleConnTimeout     = 90 * time.Second
	// fallbackDialTimeout bounds dials that carry no per-request timeout, such as a
	// Transport used outside a Pool.
	fallbackDialTimeout = 30 * time.Second
)

// NewTransport returns the Transport every Pool should share. It is built once and kept
// across config reloads. Its dialer honours the dial timeout a Pool attaches to each
// request, so upstreams with different dial_timeout settings can share it.
func NewTransport(o TransportOptions) *http.Transport {
	perHost := o.MaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = defaultMaxIdleConnsPerHost
	}
	idle := o.IdleConnTimeout
	if idle <= 0 {
		idle = defaultIdleConnTimeout
	}
	dialer := &net.Dialer{Timeout: fallbackDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		// Upstreams are reached directly: an HTTP_PROXY in the gateway's environment
		// must not silently reroute backend traffic.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if d := dialTimeoutFrom(ctx); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			return dialer.DialContext(ctx, network, addr)
		},
		// HTTP/2 is only negotiated with https upstreams (ALPN); plain http
		// upstreams, the usual case, speak HTTP/1.1. Upgrade requests stay on HTTP/1.1.
		ForceAttemptHTTP2: true,
		// The per-host limit is the one that matters: a gateway has few targets, and
		// each busy one needs a deep pool of warm connections. No global cap.
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       idle,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		// Response header timeouts differ per upstream, so each Pool enforces its own
		// (see timeout.go) rather than setting ResponseHeaderTimeout here.
		MaxResponseHeaderBytes: 1 << 20,
		// Read an upstream's answer in as few read(2) calls as it was sent: with
		// the default 4 KB, a 4 KB order list (headers and body) takes two reads
		// and a wake-up between them. 32 KB is ReverseProxy's copy buffer size.
		ReadBufferSize: 32 << 10,
		// Pass the caller's Accept-Encoding through untouched: with compression on,
		// the Transport would ask for gzip itself and hand back a decoded body with
		// altered headers.
		DisableCompression: true,
	}
}

// dialTimeoutFrom returns the dial timeout a Pool attached to ctx, or 0.
func dialTimeoutFrom(ctx context.Context) time.Duration {
	if ex := exchangeFrom(ctx); ex != nil {
		return ex.dialTimeout
	}
	return 0
}

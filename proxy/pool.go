package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/reqinfo"
)

// Options configures one upstream pool. Zero durations and counts take the defaults
// named on each field.
type Options struct {
	Name            string            // upstream name from config, for logs and error messages
	Targets         []string          // target base URLs, "http://127.0.0.1:9000"; a path is a prefix
	DialTimeout     time.Duration     // time allowed to connect to a target; 0 means 5s
	ResponseTimeout time.Duration     // time allowed until response headers arrive; 0 means 30s, negative means no limit
	ReadTimeout     time.Duration     // longest wait between two reads of a response body; 0 means 60s, negative means no limit
	Retries         int               // extra attempts on another target after a failed connection (idempotent requests only)
	HealthPath      string            // active check path, resolved against each target URL; "" disables active checks
	HealthInterval  time.Duration     // time between active checks; 0 means 10s
	HealthTimeout   time.Duration     // time allowed for one active check; 0 means 5s (at most HealthInterval)
	MaxFails        int               // consecutive connection failures or timeouts that eject a target; 0 means 3, negative disables
	EjectFor        time.Duration     // how long an ejected target stays out; 0 means 30s
	Transport       http.RoundTripper // the Transport shared by all pools (NewTransport); nil means a private one
	Logger          *slog.Logger      // nil discards
	Now             func() time.Time  // clock for ejection; nil means time.Now
}

// Option defaults; see Options.
const (
	defaultDialTimeout     = 5 * time.Second
	defaultResponseTimeout = 30 * time.Second
	defaultReadTimeout     = 60 * time.Second
	defaultHealthInterval  = 10 * time.Second
	defaultHealthTimeout   = 5 * time.Second
	defaultMaxFails        = 3
	defaultEjectFor        = 30 * time.Second
)

// Pool is an http.Handler that proxies requests to the targets of one upstream.
type Pool struct {
	name    string
	targets []*target
	next    atomic.Uint64 // round-robin counter

	transport       http.RoundTripper
	proxy           *httputil.ReverseProxy
	dialTimeout     time.Duration
	responseTimeout time.Duration
	timeoutCause    error // the cause put on a request context when responseTimeout elapses
	readTimeout     time.Duration
	stallCause      error // the cause put on a request context when a body stalls past readTimeout
	retries         int

	active         bool // Run performs active checks
	healthInterval time.Duration
	healthTimeout  time.Duration
	maxFails       int32
	ejectFor       time.Duration

	log *slog.Logger
	now func() time.Time

	// The answers are built once: their messages name the upstream, never a target.
	errUnavailable *apierror.Error
	errBadGateway  *apierror.Error
	errTimeout     *apierror.Error
}

var _ http.Handler = (*Pool)(nil)

// New returns a Pool for o. It fails when o names no target or a target is not an
// absolute http or https URL.
func New(o Options) (*Pool, error) {
	if o.Name == "" {
		return nil, errors.New("proxy: upstream name is empty")
	}
	if len(o.Targets) == 0 {
		return nil, fmt.Errorf("proxy: upstream %s has no targets", o.Name)
	}
	p := &Pool{
		name:            o.Name,
		transport:       o.Transport,
		dialTimeout:     orDefault(o.DialTimeout, defaultDialTimeout),
		responseTimeout: orDefault(o.ResponseTimeout, defaultResponseTimeout),
		readTimeout:     orDefault(o.ReadTimeout, defaultReadTimeout),
		retries:         max(o.Retries, 0),
		healthInterval:  orDefault(o.HealthInterval, defaultHealthInterval),
		ejectFor:        orDefault(o.EjectFor, defaultEjectFor),
		log:             o.Logger,
		now:             o.Now,
		errUnavailable:  apierror.New(http.StatusServiceUnavailable, "upstream_unavailable", "no healthy target for upstream "+o.Name),
		errBadGateway:   apierror.New(http.StatusBadGateway, "upstream_error", "upstream "+o.Name+" failed to answer"),
		errTimeout:      apierror.New(http.StatusGatewayTimeout, "upstream_timeout", "upstream "+o.Name+" did not answer in time"),
	}
	p.timeoutCause = &responseTimeoutError{after: p.responseTimeout}
	p.stallCause = &bodyStalledError{after: p.readTimeout}
	p.healthTimeout = min(orDefault(o.HealthTimeout, defaultHealthTimeout), p.healthInterval)
	switch {
	case o.MaxFails == 0:
		p.maxFails = defaultMaxFails
	case o.MaxFails > 0:
		p.maxFails = int32(min(o.MaxFails, 1<<30))
	}
	if p.transport == nil {
		p.transport = NewTransport(TransportOptions{})
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	var health *url.URL
	if o.HealthPath != "" {
		p.active = true
		var err error
		if health, err = url.Parse(o.HealthPath); err != nil {
			return nil, fmt.Errorf("proxy: upstream %s: health path: %w", o.Name, err)
		}
	}
	for _, raw := range o.Targets {
		t, err := newTarget(raw, health)
		if err != nil {
			return nil, fmt.Errorf("proxy: upstream %s: %w", o.Name, err)
		}
		t.index = len(p.targets)
		p.targets = append(p.targets, t)
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: modifyResponse,
		Transport:      poolTransport{p},
		ErrorHandler:   p.handleError,
		BufferPool:     newBufferPool(),
		// ReverseProxy logs body copy failures here; nearly all are callers hanging up
		// mid-stream, which the access log already shows, so keep them out of warn.
		ErrorLog: slog.NewLogLogger(p.log.With("upstream", p.name).Handler(), slog.LevelDebug),
		// FlushInterval stays 0: ReverseProxy flushes every write itself for
		// text/event-stream and for bodies of unknown length, and buffers nothing else
		// longer than one copy buffer.
	}
	return p, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// exchange is what one proxied request carries on its context: the target it is
// aimed at and what the Transport and retries need to know about it.
type exchange struct {
	dialTimeout time.Duration // read by NewTransport's dialer, possibly after the request ends
	target      *target
	// outURL is the outbound URL before a target was applied, so a retry can aim the
	// same request at another target exactly as Rewrite aimed it at the first.
	outURL url.URL
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// ServeHTTP proxies r to a usable target, or answers 503 upstream_unavailable when
// there is none.
func (p *Pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := p.pick(nil)
	if t == nil {
		// Transitions are logged when targets go down; one line per refused
		// request would only repeat them.
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "no usable target",
			slog.String("upstream", p.name), slog.String("request_id", reqinfo.Of(r).RequestID))
		apierror.Write(w, r, p.errUnavailable)
		return
	}
	ex := &exchange{dialTimeout: p.dialTimeout, target: t}
	p.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
}

// Ready reports whether at least one target is usable.
func (p *Pool) Ready() bool {
	for _, t := range p.targets {
		if p.usable(t) {
			return true
		}
	}
	return false
}

// pick returns the next usable target in round-robin order, skipping those marked in
// tried (nil when nothing was tried yet), or nil when none is usable.
func (p *Pool) pick(tried []bool) *target {
	n := uint64(len(p.targets))
	start := p.next.Add(1) - 1
	for i := range n {
		idx := (start + i) % n
		if tried != nil && tried[idx] {
			continue
		}
		if t := p.targets[idx]; p.usable(t) {
			return t
		}
	}
	return nil
}

// Headers the upstream must never see from the caller: its credentials, which the
// gateway reads up to this point. The server removes every other header no caller
// may send an upstream before routing (server/hygiene.go).
var strippedHeaders = [...]string{"X-Api-Key", "X-Signature", "X-Timestamp", "X-Nonce"}

// rewrite aims the outbound request at the exchange's target and sets the identity
// headers upstreams rely on.
func (p *Pool) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	ex.outURL = *pr.Out.URL
	pr.SetURL(ex.target.url)
	// ReverseProxy has already dropped the caller's Forwarded and X-Forwarded-*
	// headers; these describe the caller as the gateway saw it.
	pr.SetXForwarded()

	h := pr.Out.Header
	for _, k := range strippedHeaders {
		delete(h, k)
	}
	// X-Real-IP is the address X-Forwarded-For ends with: the connection's peer, or
	// the source a PROXY protocol header named (the server makes it RemoteAddr).
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		h["X-Real-Ip"] = []string{ip}
	} else {
		delete(h, "X-Real-Ip")
	}
	info := reqinfo.Of(pr.In)
	setOrDelete(h, "X-Request-Id", info.RequestID)
	// Deleted when the caller is anonymous, so a caller cannot claim an identity.
	setOrDelete(h, "X-Signgate-Client", info.Client)
	// The owner, set here (after ReverseProxy dropped the headers a caller's
	// Connection named) so no Connection: X-WX-OpenID can take it off the request.
	setOrDelete(h, "X-Wx-Openid", info.User)
	setOrDelete(h, "X-Wx-Unionid", info.UnionID)
	// Request trailers never go upstream: they come after the body, outside any
	// signature. The server drops them before routing; this holds for any handler
	// that hands the pool a request.
	pr.Out.Trailer = nil
}

func setOrDelete(h http.Header, key, value string) {
	if value == "" {
		delete(h, key)
		return
	}
	if v := h[key]; len(v) == 1 && v[0] == value {
		return // already so: the gateway set the request id on the way in
	}
	h[key] = []string{value}
}

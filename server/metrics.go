package server

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/signgate/signgate/tlsedge"
)

// metrics are the collectors docs/design.md names. They hang off a registry per Server so
// tests can run many servers in one process; labels are bounded (route names from
// config, status codes, error codes).
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	authFailures   *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	tokenFetches   *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	inFlight       prometheus.Gauge
	// tunnels counts the WebSocket tunnels open now, by route.
	tunnels *prometheus.GaugeVec
	// limiterFallbacks counts Redis failures the rate limiter answered without Redis.
	limiterFallbacks prometheus.Counter
	// cacheRequests counts the requests of cached routes by what the response
	// cache did: hit, miss, stale, bypass.
	cacheRequests *prometheus.CounterVec
	// tokenExpiry is when the 58到家 accessToken this instance holds expires.
	tokenExpiry prometheus.Gauge
	// renewalFailures counts failed ACME orders (first issue or renewal), by domain.
	renewalFailures *prometheus.CounterVec
	// redis are the shared state's series: masters, failovers, errors by kind.
	redis *redisMetrics
	// validationFailures counts requests and answers that broke the interface spec,
	// by route and direction (request, response); validationSkipped the ones not
	// checked, by why (see validate.go).
	validationFailures *prometheus.CounterVec
	validationSkipped  *prometheus.CounterVec
	// certs reports the certificates the edge serves now; see watchCertificates.
	certs certExpiryCollector
	// logins counts WeChat logins by result (see identity.go).
	logins *prometheus.CounterVec

	// routes holds each route's series, so a request's metrics are two pointer
	// loads rather than a label hash and lookup per vector. Copy on write: routes
	// are added when a config is built, read on every request.
	routes   atomic.Pointer[map[string]*routeSeries]
	routesMu sync.Mutex
}

// routeSeries are one route's request counters, by status, and its histogram.
type routeSeries struct {
	requests *prometheus.CounterVec
	route    string
	duration prometheus.Observer
	byStatus [600]atomic.Pointer[prometheus.Counter]
}

func (s *routeSeries) status(code int) prometheus.Counter {
	if code < 0 || code >= len(s.byStatus) {
		return s.requests.WithLabelValues(s.route, strconv.Itoa(code))
	}
	if c := s.byStatus[code].Load(); c != nil {
		return *c
	}
	c := s.requests.WithLabelValues(s.route, strconv.Itoa(code))
	s.byStatus[code].Store(&c)
	return c
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_requests_total", Help: "Requests answered, by route and HTTP status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signgate_request_duration_seconds",
			Help:    "Time from the first byte read to the handler's return, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15},
		}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_auth_failures_total", Help: "Requests refused by authentication or authorization, by error code.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_rate_limited_total", Help: "Requests refused by a rate limit, by route.",
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_upstream_errors_total", Help: "Requests that failed at the upstream, by route and error code.",
		}, []string{"route", "code"}),
		tokenFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_daojia_token_fetches_total", Help: "58到家 accessToken fetches, by result.",
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_config_reloads_total", Help: "Config reloads, by result.",
		}, []string{"result"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signgate_requests_in_flight", Help: "Requests being served now.",
		}),
		tunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "signgate_websocket_tunnels", Help: "WebSocket tunnels open now, by route.",
		}, []string{"route"}),
		limiterFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signgate_ratelimit_redis_failures_total", Help: "Rate-limit decisions Redis could not make; ratelimit.redis_failure decided instead.",
		}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_cache_requests_total", Help: "Requests of cached routes, by route and what the response cache did (hit, miss, stale, bypass).",
		}, []string{"route", "result"}),
		tokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signgate_daojia_token_expiry_timestamp_seconds",
			Help: "Unix time at which the 58到家 accessToken this instance holds expires; 0 while it holds none.",
		}),
		renewalFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_tls_renewal_failures_total",
			Help: "Failed attempts to obtain or renew an ACME certificate, by domain.",
		}, []string{"name"}),
		validationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_validation_failures_total",
			Help: "Requests and upstream answers that do not match the interface spec (openapi.specs), by route and direction (request, response), in enforce and report mode alike.",
		}, []string{"route", "direction"}),
		validationSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_validation_skipped_total",
			Help: "Requests and upstream answers of validated routes not checked against the interface spec, by route, direction and reason (stream, too_large, encoding, media_type, no_operation).",
		}, []string{"route", "direction", "reason"}),
	}
	m.registry.MustRegister(m.requests, m.duration, m.authFailures, m.rateLimited,
		m.upstreamErrors, m.tokenFetches, m.reloads, m.inFlight, m.tunnels, m.limiterFallbacks, m.cacheRequests,
		m.tokenExpiry, m.renewalFailures, m.validationFailures, m.validationSkipped, &m.certs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist before their first event, so dashboards and rate() see zeros
	// instead of gaps.
	for _, result := range []string{"ok", "error"} {
		m.tokenFetches.WithLabelValues(result)
	}
	for _, result := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(result)
	}
	m.routes.Store(&map[string]*routeSeries{})
	m.series("no_route")
	m.redis = newRedisMetrics(m.registry)
	m.initIdentity()
	return m
}

// series returns route's series, creating them on first use.
func (m *metrics) series(route string) *routeSeries {
	if s, ok := (*m.routes.Load())[route]; ok {
		return s
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	old := *m.routes.Load()
	if s, ok := old[route]; ok {
		return s
	}
	s := &routeSeries{requests: m.requests, route: route, duration: m.duration.WithLabelValues(route)}
	next := maps.Clone(old)
	next[route] = s
	m.routes.Store(&next)
	return s
}

// tokenFetched counts a 58到家 accessToken fetch.
func (m *metrics) tokenFetched(ok bool) {
	if ok {
		m.tokenFetches.WithLabelValues("ok").Inc()
	} else {
		m.tokenFetches.WithLabelValues("error").Inc()
	}
}

// initRoute creates the per-route error series of a route at zero.
func (m *metrics) initRoute(route string) {
	m.series(route)
	m.rateLimited.WithLabelValues(route)
	for _, code := range []string{"upstream_error", "upstream_unavailable", "upstream_timeout"} {
		m.upstreamErrors.WithLabelValues(route, code)
	}
}

// observe records one finished request. errCode is the apierror code written, if any.
func (m *metrics) observe(route string, status int, errCode string, took time.Duration) {
	if route == "" {
		route = "no_route"
	}
	s := m.series(route)
	s.status(status).Inc()
	s.duration.Observe(took.Seconds())
	switch errCode {
	case "":
	case "missing_credentials", "unknown_key", "invalid_signature", "timestamp_skew", "replayed", "forbidden":
		m.authFailures.WithLabelValues(errCode).Inc()
	case "rate_limited":
		m.rateLimited.WithLabelValues(route).Inc()
	case "upstream_error", "upstream_unavailable", "upstream_timeout":
		m.upstreamErrors.WithLabelValues(route, errCode).Inc()
	}
}

// cacheCounters returns a cached route's series, created at zero, so a request
// counts with no label lookup.
func (m *metrics) cacheCounters(route string) cacheCounters {
	return cacheCounters{
		hit:    m.cacheRequests.WithLabelValues(route, cacheHit),
		miss:   m.cacheRequests.WithLabelValues(route, cacheMiss),
		stale:  m.cacheRequests.WithLabelValues(route, cacheStale),
		bypass: m.cacheRequests.WithLabelValues(route, cacheBypass),
	}
}

// validationCounters returns a validated route's failure series, created at zero,
// so dashboards see a zero rather than a gap; skipped series appear when counted.
func (m *metrics) validationCounters(route string) validationCounters {
	return validationCounters{
		route:    route,
		request:  m.validationFailures.WithLabelValues(route, directionRequest),
		response: m.validationFailures.WithLabelValues(route, directionResponse),
		skipped:  m.validationSkipped,
	}
}

// tokenHeld sets the 58到家 token expiry gauge; the zero time (no token) is 0.
func (m *metrics) tokenHeld(expiresAt time.Time) {
	if expiresAt.IsZero() {
		m.tokenExpiry.Set(0)
		return
	}
	m.tokenExpiry.Set(float64(expiresAt.UnixMilli()) / 1e3)
}

// renewalFailed counts a failed ACME order for the domain name.
func (m *metrics) renewalFailed(name string) {
	m.renewalFailures.WithLabelValues(name).Inc()
}

// watchCertificates makes /metrics report the certificates current returns, asked at
// each scrape, so the series follow reloads and renewals without bookkeeping.
func (m *metrics) watchCertificates(current func() []tlsedge.CertificateExpiry) {
	m.certs.current.Store(&current)
}

// certExpiryDesc is signgate_tls_certificate_expiry_timestamp_seconds, which Traefik
// and Envoy users alert on: WeChat refuses a domain whose certificate has expired.
var certExpiryDesc = prometheus.NewDesc("signgate_tls_certificate_expiry_timestamp_seconds",
	"Unix time at which a certificate the edge serves expires (NotAfter), by name: the ACME domain, or the certificate's first DNS name.",
	[]string{"name"}, nil)

// certExpiryCollector reports the certificates of the edge serving at scrape time.
type certExpiryCollector struct {
	current atomic.Pointer[func() []tlsedge.CertificateExpiry]
}

func (c *certExpiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c *certExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.current.Load()
	if f == nil {
		return
	}
	seen := make(map[string]bool)
	for _, ce := range (*f)() {
		if seen[ce.Name] { // one series per name, or the registry refuses the scrape
			continue
		}
		seen[ce.Name] = true
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue,
			float64(ce.NotAfter.Unix()), ce.Name)
	}
}

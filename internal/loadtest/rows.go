package main

import (
	"strconv"
	"strings"
)

// row is one line of the table: a system under test, TLS or not, and the request wrk
// sends through it.
type row struct {
	id     string // what -rows names: "1", "1tls", "lat5"
	num    string // the row number of issue 8, for the table
	name   string
	system system
	tls    bool
	setup  signgateSetup
	req    request
	// oneConn rows measure latency at one connection (wrk -t1 -c1), not throughput.
	oneConn bool
	// sameCore puts the system under test on the load core too, with wrk and the
	// upstream: a latency row without the cross-core wake-ups of the split layout.
	sameCore bool
	// idle rows hold many keep-alive connections open and idle (idle.go); soak rows
	// send a paced rate for a minute (soak.go). Neither uses wrk, and each runs once,
	// after the rounds: their figures are memory and goroutines over time, not req/s.
	idle, soak bool
	// cached rows answer from a response cache: signgate's (the services route with
	// cache: {ttl: 60s, scope: all}; setup.cacheRedisOnly picks the tier) or nginx's
	// proxy_cache. Before wrk starts, one request fills it and the next must be a hit
	// (checkCacheHit); signgate must count the measured requests as hits too.
	cached bool
}

// proxyCore is the core the row's system under test runs on.
func (r row) proxyCore() string {
	if r.sameCore {
		return loadCore
	}
	return proxyCore
}

// signgateSetup is what a signgate row needs around it.
type signgateSetup struct {
	redis bool // state (nonces, and so rate limits) in redis-server
	// cluster puts that state in a Redis Cluster of three masters and three
	// replicas instead (cluster.go); set redis too.
	cluster bool
	relay   bool // the 58到家 relay route, to the sandbox
	// cacheRedisOnly, on a cached row, turns the in-process tier off
	// (cache.memory_bytes: 0), so every hit is read from Redis (needs redis). A cached
	// row without it has the in-process tier and no Redis, as row 6.
	cacheRedisOnly bool
	// tracing turns OpenTelemetry on at sample ratio 1.0, exporting over OTLP/HTTP
	// to the upstream process, which takes the spans as a collector would.
	tracing bool
	// wechat sets up WeChat login against the sandbox (as its demo mini-program) and
	// the route "GET /api/mine" with user: required; needs the sandbox.
	wechat bool
	// validate holds the booking route (POST /api/orders) to examples/
	// orders.openapi.yaml: validate: {request: enforce}.
	validate bool
}

// request is what wrk sends.
type request struct {
	path   string
	apiKey string // X-Api-Key
	// secret, when set, signs every request (hmac-sha256, a fresh nonce each) ahead
	// of the run; a wrk Lua script hands each out once.
	secret string
	post   string // a POST body (JSON); "" is GET
	// session logs in once before the run (a sandbox code, the login route) and
	// sends the session token as Authorization: Bearer on every request.
	session bool
	bearer  string // the token, once logged in
}

// The paths of the signgate config's routes (startSigngate): one route per feature set.
const (
	pathServices = "/api/services" // API key + RBAC
	pathPublic   = "/api/public"   // public: true
	pathLimited  = "/api/limited"  // + ip and client rate limits
	pathRelay    = "/daojia/serviceUser/getAllServiceUser"
	pathMine     = "/api/mine"   // + user: required (a WeChat session)
	pathBook     = "/api/orders" // POST: the booking route (the upstream answers payload)
)

// booking is a 1 KB booking as owners send it (a long address, Chinese escaped as
// \uXXXX), valid under examples/orders.openapi.yaml: what the validation rows post.
var booking = func() string {
	address := strings.Repeat("幸福小區三棟二單元五零一室", 12)
	return `{"name":` + strconv.QuoteToASCII("王芳") + `,"phone":"13812345678","address":` + strconv.QuoteToASCII(address) +
		`,"service_type":"cleaning","appointment_time":"2026-11-23T10:00:00+08:00"}`
}()

// allRows is the table, in the order it runs and prints.
var allRows = []row{
	{id: "1", num: "1", name: "upstream direct", system: sysDirect, req: request{path: pathServices}},
	{id: "2", num: "2", name: "bare httputil.ReverseProxy (stdlib defaults)", system: sysBare, req: request{path: pathServices}},
	// Not one of issue 8's rows: signgate's own proxy without its middleware.
	{id: "2p", num: "2p", name: "proxy.Pool alone (signgate's transport, no middleware)", system: sysPool, req: request{path: pathServices}},
	{id: "3", num: "3", name: "nginx proxy_pass, keepalive 64", system: sysNginx, req: request{path: pathServices}},
	// Issue 17: row 3 with nginx's own cache in front, warm: what a cache hit costs nginx.
	{id: "3c", num: "3c", name: "nginx proxy_cache (memory zone, warm)", system: sysNginx, cached: true, req: request{path: pathServices}},
	{id: "4", num: "4", name: "Caddy reverse_proxy", system: sysCaddy, req: request{path: pathServices}},
	{id: "5", num: "5", name: "signgate, plain route (public: true)", system: sysSigngate, req: request{path: pathPublic}},
	{id: "6", num: "6", name: "signgate, API key + RBAC", system: sysSigngate, req: request{path: pathServices, apiKey: appKey}},
	// Issue 17: row 6's request and answer, from the response cache, warm.
	{id: "6c", num: "6c", name: "signgate, cached route, in-process hit", system: sysSigngate, cached: true,
		req: request{path: pathServices, apiKey: appKey}},
	{id: "6r", num: "6r", name: "signgate, cached route, Redis hit", system: sysSigngate, cached: true,
		setup: signgateSetup{redis: true, cacheRedisOnly: true}, req: request{path: pathServices, apiKey: appKey}},
	// Issue 19: row 6 with every request traced and exported.
	{id: "6t", num: "6t", name: "signgate, API key + RBAC, traced (ratio 1.0, OTLP/HTTP)", system: sysSigngate,
		setup: signgateSetup{tracing: true}, req: request{path: pathServices, apiKey: appKey}},
	// Issue 18: row 6 on a route that needs the owner's WeChat session.
	{id: "6w", num: "6w", name: "signgate, API key + RBAC + WeChat session (user: required)", system: sysSigngate,
		setup: signgateSetup{wechat: true}, req: request{path: pathMine, apiKey: appKey, session: true}},
	// Issue 20: a 1 KB booking POSTed through a plain route, and through one that holds
	// it to the interface spec.
	{id: "11", num: "11", name: "signgate, POST a 1 KB booking, API key + RBAC", system: sysSigngate,
		req: request{path: pathBook, apiKey: appKey, post: booking}},
	{id: "11v", num: "11v", name: "signgate, the same, + validate: {request: enforce}", system: sysSigngate,
		setup: signgateSetup{validate: true}, req: request{path: pathBook, apiKey: appKey, post: booking}},
	{id: "7", num: "7", name: "signgate, + local rate limit (ip + client)", system: sysSigngate, req: request{path: pathLimited, apiKey: appKey}},
	{id: "8", num: "8", name: "signgate, + hmac-sha256; nonces and limits in Redis", system: sysSigngate,
		setup: signgateSetup{redis: true}, req: request{path: pathLimited, apiKey: signerKey, secret: signerSecret}},
	// Issue 21: row 8 on a Redis Cluster (3 masters + 3 replicas on core 0).
	{id: "8k", num: "8k", name: "signgate, row 8 on a Redis Cluster (3 + 3 replicas)", system: sysSigngate,
		setup: signgateSetup{redis: true, cluster: true}, req: request{path: pathLimited, apiKey: signerKey, secret: signerSecret}},
	{id: "9", num: "9", name: "signgate, + masking a 4 KB order list", system: sysSigngate,
		setup: signgateSetup{redis: true}, req: request{path: ordersPath, apiKey: providerKey, secret: providerSecret}},
	{id: "10", num: "10", name: "signgate, 58到家 relay, cached token, sandbox", system: sysSigngate,
		setup: signgateSetup{relay: true}, req: request{path: pathRelay, apiKey: appKey, post: "{}"}},

	{id: "1tls", num: "1", name: "upstream direct", system: sysDirect, tls: true, req: request{path: pathServices}},
	{id: "3tls", num: "3", name: "nginx proxy_pass, keepalive 64", system: sysNginx, tls: true, req: request{path: pathServices}},
	{id: "4tls", num: "4", name: "Caddy reverse_proxy", system: sysCaddy, tls: true, req: request{path: pathServices}},
	{id: "5tls", num: "5", name: "signgate, plain route (public: true)", system: sysSigngate, tls: true, req: request{path: pathPublic}},
	{id: "6tls", num: "6", name: "signgate, API key + RBAC", system: sysSigngate, tls: true, req: request{path: pathServices, apiKey: appKey}},

	{id: "lat1", num: "1", name: "upstream direct", system: sysDirect, oneConn: true, req: request{path: pathServices}},
	// For reference: what the extra hop to the proxy core costs a bare Go proxy and nginx.
	{id: "lat2", num: "2", name: "bare httputil.ReverseProxy", system: sysBare, oneConn: true, req: request{path: pathServices}},
	{id: "lat2p", num: "2p", name: "proxy.Pool alone", system: sysPool, oneConn: true, req: request{path: pathServices}},
	{id: "lat3", num: "3", name: "nginx", system: sysNginx, oneConn: true, req: request{path: pathServices}},
	{id: "lat5", num: "5", name: "signgate, plain route", system: sysSigngate, oneConn: true, req: request{path: pathPublic}},
	{id: "lat6", num: "6", name: "signgate, API key + RBAC", system: sysSigngate, oneConn: true, req: request{path: pathServices, apiKey: appKey}},
	// The same on one core: what the proxy itself adds, without the hop between cores.
	{id: "lat3c", num: "3", name: "nginx", system: sysNginx, oneConn: true, sameCore: true, req: request{path: pathServices}},
	{id: "lat5c", num: "5", name: "signgate, plain route", system: sysSigngate, oneConn: true, sameCore: true, req: request{path: pathPublic}},
	{id: "lat6c", num: "6", name: "signgate, API key + RBAC", system: sysSigngate, oneConn: true, sameCore: true, req: request{path: pathServices, apiKey: appKey}},

	// 10 000 idle keep-alive connections, each after one GET: what holding them costs.
	{id: "idle3", num: "3", name: "nginx", system: sysNginx, idle: true, req: request{path: pathServices}},
	{id: "idle4", num: "4", name: "Caddy", system: sysCaddy, idle: true, req: request{path: pathServices}},
	{id: "idle5", num: "5", name: "signgate, plain route", system: sysSigngate, idle: true, req: request{path: pathPublic}},
	{id: "idle3tls", num: "3", name: "nginx", system: sysNginx, tls: true, idle: true, req: request{path: pathServices}},
	{id: "idle4tls", num: "4", name: "Caddy", system: sysCaddy, tls: true, idle: true, req: request{path: pathServices}},
	{id: "idle5tls", num: "5", name: "signgate, plain route", system: sysSigngate, tls: true, idle: true, req: request{path: pathPublic}},
	// 1 000 req/s for a minute: do goroutines and memory stay flat?
	{id: "soak6", num: "6", name: "signgate, API key + RBAC", system: sysSigngate, soak: true, req: request{path: pathServices, apiKey: appKey}},
}

func rowIDs() []string {
	ids := make([]string, len(allRows))
	for i, r := range allRows {
		ids[i] = r.id
	}
	return ids
}

func rowByID(id string) (row, bool) {
	for _, r := range allRows {
		if r.id == id {
			return r, true
		}
	}
	return row{}, false
}

// directID is the row whose req/s the ratio of r is taken against: the direct call
// in the same TLS mode.
func (r row) directID() string {
	switch {
	case r.oneConn:
		return "lat1"
	case r.tls:
		return "1tls"
	}
	return "1"
}

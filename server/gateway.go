package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/cache"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/route"
	"github.com/signgate/signgate/tracing"
	"github.com/signgate/signgate/wechat"
)

// gateway is everything built from one config: the handler chain, the route table and
// the upstream pools with their health checkers. A config reload builds a new gateway
// and swaps it in; requests in flight finish on the one they started with.
type gateway struct {
	cfg     *config.Config
	handler http.Handler
	pools   map[string]*upstreamPool
	// cache is the process's response cache (shared by every gateway); cached
	// names this config's routes that use it, what a purge without a route empties.
	cache  *cache.Cache
	cached []string
	// idn knows the owners behind requests (sessions, JWTs); retire closes it.
	idn *identity
}

// upstreamPool is a pool with its health checker. A reload that leaves an upstream's
// settings unchanged hands the same upstreamPool to the new gateway, so its health
// state, passive ejections and connections carry over.
type upstreamPool struct {
	cfg     config.Upstream
	pool    *proxy.Pool
	stop    context.CancelFunc
	stopped chan struct{}
}

func (u *upstreamPool) start() {
	ctx, cancel := context.WithCancel(context.Background())
	u.stop = cancel
	u.stopped = make(chan struct{})
	go func() {
		defer close(u.stopped)
		u.pool.Run(ctx)
	}()
}

func (u *upstreamPool) close() {
	if u.stop != nil {
		u.stop()
		<-u.stopped
	}
}

// deps are the long-lived parts a gateway is built with; they outlive reloads.
type deps struct {
	logger    *slog.Logger
	metrics   *metrics
	transport http.RoundTripper
	now       func() time.Time
	// store is Redis when redis.addrs is set, process memory otherwise.
	store sharedState
	// audit receives one line per response a client saw unmasked.
	audit *slog.Logger
	// limiter decides rate limits: Redis-shared with a local fallback, or local. Its
	// buckets outlive reloads.
	limiter ratelimit.Decider
	// batchLimits: the limiter is Redis, and a request's limits and replay check are
	// decided in one round trip (see limitStages).
	batchLimits bool
	// accessOut, when set, receives the access lines directly (see WithJSONAccessLog).
	accessOut io.Writer
	// tunnels are the open WebSocket tunnels, which outlive reloads.
	tunnels *tunnels
	// cache is the response cache, whose entries outlive reloads.
	cache *cache.Cache
	// tracer exports the request's spans; nil when tracing is off (see tracing.go).
	tracer *tracing.Tracer
	// sessions are the owners' WeChat-login sessions, which outlive reloads.
	sessions *wechat.Store
}

// sharedState is what the gateway keeps in Redis or memory: nonces for auth, the
// 58到家 token and its lock for daojia, and a ping for readiness.
type sharedState interface {
	auth.NonceStore
	daojia.TokenStore
	Ping(ctx context.Context) error
	Close() error
}

// routeEntry is a route's precomputed handler: its own chain after routing.
type routeEntry struct {
	name    string
	handler http.Handler
}

// buildGateway builds the gateway for cfg. Pools of prev (the gateway being replaced,
// or nil) whose upstream settings are unchanged are reused; the caller starts the new
// gateway and retires prev (see start and retire).
func buildGateway(cfg *config.Config, d deps, prev *gateway) (*gateway, error) {
	// The interface specs, read and compiled once per config, before anything is
	// built: a broken one refuses the config (config.Errors), as a broken file does.
	specs, err := loadSpecs(cfg)
	if err != nil {
		return nil, err
	}
	pools := make(map[string]*upstreamPool, len(cfg.Upstreams))
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		u := cfg.Upstreams[name]
		if prev != nil {
			if old, ok := prev.pools[name]; ok && reflect.DeepEqual(old.cfg, u) {
				pools[name] = old
				continue
			}
		}
		p, err := proxy.New(proxy.Options{
			Name:            name,
			Targets:         u.Targets,
			DialTimeout:     u.DialTimeout,
			ResponseTimeout: u.ResponseTimeout,
			ReadTimeout:     u.ReadTimeout,
			Retries:         u.Retries,
			HealthPath:      u.Health.Path,
			HealthInterval:  u.Health.Interval,
			HealthTimeout:   u.Health.Timeout,
			MaxFails:        maxFails(u.Passive.MaxFails),
			EjectFor:        u.Passive.EjectFor,
			Transport:       d.transport,
			Logger:          d.logger,
			Now:             d.now,
		})
		if err != nil {
			return nil, fmt.Errorf("upstreams.%s: %w", name, err)
		}
		pools[name] = &upstreamPool{cfg: u, pool: p}
	}

	roles := make(map[string]auth.Role, len(cfg.Roles))
	for name, r := range cfg.Roles {
		roles[name] = auth.Role{Allow: r.AllowSet, Mask: r.Mask, Unmask: r.Unmask}
	}
	byHash := make(map[string]*auth.Client, len(cfg.Clients))
	for _, c := range cfg.Clients {
		masked, unmaskRole := auth.MaskFor(roles, c.Roles)
		byHash[c.APIKeySHA256] = &auth.Client{
			ID:         c.ID,
			Roles:      c.Roles,
			Signature:  c.Signature,
			Secret:     c.Secret,
			Allow:      auth.AllowSet(roles, c.Roles),
			Mask:       masked,
			UnmaskRole: unmaskRole,
			UserExempt: userExempt(cfg.Roles, c.Roles),
		}
	}
	masks := &masking{
		masker:  newMasker(cfg.Masking),
		maxBody: cfg.Masking.MaxBodyBytes,
		logger:  d.logger,
		audit:   d.audit,
		tracer:  d.tracer,
	}
	keys, err := auth.NewKeys(byHash)
	if err != nil {
		return nil, err
	}

	verifier := &auth.Verifier{
		Nonces:   d.store,
		Skew:     cfg.Auth.TimestampSkew,
		NonceTTL: cfg.Auth.NonceTTL,
		Now:      d.now,
		Log:      d.logger,
	}
	var relay *daojia.Client
	if cfg.Daojia.BaseURL != "" {
		dj := cfg.Daojia
		relay, err = daojia.NewClient(daojia.Options{
			BaseURL:       dj.BaseURL,
			Version:       dj.Version,
			ServiceKey:    dj.ServiceKey,
			ServiceSecret: dj.ServiceSecret,
			Timeout:       dj.Timeout,
			TokenPath:     dj.Token.Path,
			RefreshBefore: dj.Token.RefreshBefore,
			DefaultTTL:    dj.Token.DefaultTTL,
			InvalidCodes:  dj.Token.InvalidCodes,
			Store:         d.store,
			Logger:        d.logger,
			Now:           d.now,
			OnTokenFetch:  d.metrics.tokenFetched,
			OnTokenExpiry: d.metrics.tokenHeld,
			Transport:     tracedDaojiaTransport(d.tracer, dj.Timeout, masks.masker),
		})
		if err != nil {
			return nil, fmt.Errorf("daojia: %w", err)
		}
	}

	var prevIdn *identity
	if prev != nil {
		prevIdn = prev.idn
	}
	idn, err := newIdentity(cfg, d, prevIdn)
	if err != nil {
		return nil, err
	}
	// A gateway abandoned before it serves closes what newIdentity started.
	built := false
	defer func() {
		if !built {
			idn.close(prevIdn)
		}
	}()
	knowsOwners := cfg.WeChatLogin() || cfg.JWTAuth()

	rules := limitRules(cfg.RateLimits, cfg.RateLimit.IPv6Prefix)
	var table route.Table[*routeEntry]
	for _, rt := range cfg.Routes {
		before, after := limitsFor(rules, rt.Name, rt.Public)
		limitBefore, limitAfter := limitStages(d.limiter, before, after, d.batchLimits && !rt.Public, d.logger)
		limitBefore, limitAfter = traceLimit(d.tracer, before, limitBefore), traceLimit(d.tracer, after, limitAfter)
		authn := traceStage(d.tracer, "auth", func(next http.Handler) http.Handler {
			return authenticate(keys, verifier, rt.Verify)(authorize(next))
		})
		// WebSocket handshakes: a websocket route takes one once it has passed the
		// route's checks, and before masking, so a caller whose answers are masked
		// is refused a tunnel rather than given one unmasked. Any other route
		// refuses them before its checks.
		checked := func(checks ...middleware) []middleware {
			if rt.WebSocket {
				return append(append([]middleware{limitBefore}, checks...), tunnel(d.tunnels, cfg.Upstreams[rt.Upstream].ReadTimeout))
			}
			return append([]middleware{limitBefore, refuseUpgrade}, checks...)
		}
		// The owner is learnt after the client is authenticated and authorized, and
		// before the limits that may count by owner (key: user).
		owner := func(m middleware) middleware { return m }
		if knowsOwners { // config validation makes user: required need wechat or jwt
			owner = func(m middleware) middleware {
				return func(next http.Handler) http.Handler {
					return traceIdentity(d.tracer, identify(idn, rt.User == "required"))(m(next))
				}
			}
		}
		var h http.Handler
		var mws []middleware
		switch {
		case rt.WeChat == "login":
			h = traceHandler(d.tracer, "wechat login", loginHandler(idn))
			mws = checked(authn, limitAfter)
		case rt.WeChat == "logout":
			h = logoutHandler(idn)
			mws = checked(authn, limitAfter)
		case rt.Daojia == "relay":
			h = traceHandler(d.tracer, "daojia relay", relay.Relay(relayPrefix(rt.Match)))
			mws = append(checked(authn, owner(limitAfter)), maskRelayResponses(masks))
		case rt.Public:
			h = pools[rt.Upstream].pool
			mws = checked()
			if cfg.WeChatLogin() {
				mws = append(mws, dropSessionToken)
			}
		case rt.Verify == "daojia-md5":
			h = pools[rt.Upstream].pool
			mws = checked(traceStage(d.tracer, "auth", verifyDaojiaCallback(verifier, cfg.Daojia.ServiceKey, cfg.Daojia.ServiceSecret)), limitAfter)
			if cfg.WeChatLogin() {
				mws = append(mws, dropSessionToken)
			}
		default:
			h = pools[rt.Upstream].pool
			mws = append(checked(authn, owner(limitAfter)), maskResponses(masks), traceMasking(d.tracer))
		}
		if rt.Validate.Checks() {
			// After authentication, RBAC and the limits, so a stranger learns nothing
			// of the spec; before mask_request and the cache, so the request checked
			// is the caller's; and inside maskResponses, so its response hook sees
			// the answer as the upstream sent it (see server/validate.go).
			mws = append(mws, validateTraffic(newValidation(specs, rt, cfg.Masking.MaxBodyBytes, masks.masker, d.logger, d.metrics)))
		}
		if rt.MaskRequest {
			mws = append(mws, maskRequests(masks))
		}
		if rt.Cache.Enabled && d.cache != nil {
			// Last before the upstream, so inside maskResponses: see server/cache.go.
			mws = append(append([]middleware{keepConditions}, mws...),
				cacheResponses(newCachedRoute(d.cache, rt, cfg.Masking, d.metrics, d.now, d.logger)))
		}
		h = chain(h, mws...)
		d.metrics.initRoute(rt.Name)
		entry := &routeEntry{name: rt.Name, handler: h}
		table.Add(rt.Pattern, entry)
	}

	var aw *accessWriter
	if d.accessOut != nil {
		aw = &accessWriter{w: d.accessOut, masker: masks.masker}
	}
	// Requests refused before routing (no route, a path cleanPath refuses) count
	// against the ip rules that hold for every route, so spraying 404s is not free.
	refuse := refusals(d.limiter, refusalRules(rules), d.logger)
	c := cfg.CORS
	outer := chain(routeTo(&table, refuse),
		accessLog(d.logger, d.metrics, d.now, aw),
		traceRequests(d.tracer, masks.masker),
		recoverPanic(d.logger),
		limitBody(cfg.Server.MaxBodyBytes),
		cors(newCORSPolicy(c.AllowOrigins, c.AllowMethods, c.AllowHeaders, c.ExposeHeaders, c.AllowCredentials, int(c.MaxAge.Seconds()))),
		cleanPath(refuse),
		checkHost(cfg.Server.Hosts, refuse),
		hygiene,
	)
	built = true
	return &gateway{cfg: cfg, handler: outer, pools: pools, cache: d.cache, cached: cacheRoutes(cfg), idn: idn}, nil
}

// relayPrefix is the part of a relay route's path that stands for the relay itself:
// everything before the final "**", at any depth ("POST /partners/daojia/**" relays
// /partners/daojia/<path> to 58到家's <path>). Config validation makes every relay
// route's path a fixed prefix ending in "/**".
func relayPrefix(match string) string {
	_, path, _ := strings.Cut(match, " ")
	return strings.TrimSuffix(path, "**")
}

// maxFails translates config's "0: never eject" into proxy's "negative: off".
func maxFails(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// routeTo finds the first route matching the request's decided method and path (see
// hygiene) and hands the request to that route's chain; refuse answers when none
// matches.
//
// Routes match case-sensitively and exactly, but Express and ASP.NET Core route
// without regard to letter case, and Rails ("(.:format)") and Spring's suffix
// matching read /x.json as /x. A request whose other spelling (lower-cased, against
// the table with lower-cased literal segments; a format suffix dropped) would select
// an earlier route than its own is refused, 400: otherwise "GET /api/Signed" passes
// the looser "* /api/**" and reaches the signed-only resource.
func routeTo(table *route.Table[*routeEntry], refuse refusal) http.Handler {
	folded := table.Folded()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path := decided(r)
		at := table.Index(method, path)
		if at < 0 {
			refuse(w, r, apierror.ErrNoRoute)
			return
		}
		e := table.At(at)
		// Another spelling that selects an earlier (more specific) route than the
		// one matched would pass the request under a looser policy.
		lower := lowerASCII(path)
		if i := folded.Index(method, lower); i >= 0 && i < at {
			refuse(w, r, errSpelling)
			return
		}
		if bare, cut := withoutFormatSuffix(lower); cut {
			if i := folded.Index(method, bare); i >= 0 && i < at {
				refuse(w, r, errSpelling)
				return
			}
		}
		reqinfo.Of(r).Route = e.name
		e.handler.ServeHTTP(w, r)
	})
}

// errSpelling answers a path that frameworks would read as another route's.
var errSpelling = apierror.BadRequest("the path, read without regard to letter case or without its format suffix " +
	"(as many frameworks read it), belongs to another route: send it as that route names it")

// withoutFormatSuffix cuts a ".ext" off the last segment of path, as Rails' and
// Spring's format matching does, and reports whether there was one.
func withoutFormatSuffix(path string) (string, bool) {
	slash := strings.LastIndexByte(path, '/')
	dot := strings.LastIndexByte(path, '.')
	if dot <= slash+1 {
		return path, false
	}
	return path[:dot], true
}

// start runs the health checks of the pools that are not running yet.
func (g *gateway) start() {
	for _, u := range g.pools {
		if u.stop == nil {
			u.start()
		}
	}
	if len(g.cached) > 0 && g.cache != nil {
		g.cache.Start() // follows purges from now on; a second call does nothing
	}
}

// retireUnshared stops the pools a never-started gateway next built that g does not
// share: the clean-up of a reload abandoned after buildGateway.
func (g *gateway) retireUnshared(next *gateway) {
	next.retire(g)
}

// retire stops the pools of g that next does not use (next may be nil: stop all).
// Requests still in flight on g keep working: the pools only lose their health
// checkers, and the shared transport stays.
func (g *gateway) retire(next *gateway) {
	for name, u := range g.pools {
		if next != nil && next.pools[name] == u {
			continue
		}
		u.close()
	}
	if next == nil {
		g.idn.close(nil)
	} else {
		g.idn.close(next.idn)
	}
	if next == nil && g.cache != nil {
		// The end of the process's serving: the cache's purge subscription and
		// background refreshes stop too.
		g.cache.Close()
	}
}

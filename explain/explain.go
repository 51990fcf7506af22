package explain

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/route"
	"github.com/signgate/signgate/server"
)

// Request is what to explain: a method and a request target ("/api/orders/42?x=1")
// as a caller sends them, from one client (its id) or, with Client empty, from each.
type Request struct {
	Method string
	Target string
	Client string
}

// Answer is the response a request gets from the gateway itself.
type Answer struct {
	Status int
	Code   string
	Why    string
}

// String formats a as `403 forbidden: why`.
func (a *Answer) String() string {
	if a.Code == "" {
		return fmt.Sprintf("%d: %s", a.Status, a.Why)
	}
	return fmt.Sprintf("%d %s: %s", a.Status, a.Code, a.Why)
}

// Explanation is what the gateway does with a Request.
type Explanation struct {
	Method, Target string
	// Path is the target's path, decoded.
	Path string
	// DecidedMethod and DecidedPath are what routing, roles and limits see (route.Decide).
	DecidedMethod, DecidedPath string
	// Refused is the answer given before any route is chosen (400, 404), or nil.
	Refused *Answer
	// Notes are said before the route: CORS preflights, counted refusals.
	Notes []string

	Route      *config.Route // nil when Refused
	RouteIndex int
	// Target says where the route sends the request.
	Sends string
	// Before are the checks every caller meets before authentication.
	Before []string
	// Callers are one block per client (or one for everyone, on routes that take
	// no API key).
	Callers []Caller
}

// Caller is what happens to the request from one client.
type Caller struct {
	// Who is "client ID" or, on routes without API keys, who may call.
	Who    string
	Checks []string
	// Refused is the answer that stops the request, or nil when it reaches Sends.
	Refused *Answer
	// After lists what happens once the checks pass (masking, cache, tunnels).
	After []string
}

// Explain explains req under cfg, a config as config.Parse returns it.
func Explain(cfg *config.Config, req Request) (*Explanation, error) {
	if req.Client != "" && clientByID(cfg, req.Client) == nil {
		return nil, fmt.Errorf("no client %q in the config (clients: %s)", req.Client, strings.Join(clientIDs(cfg), ", "))
	}
	e := &Explanation{Method: req.Method, Target: req.Target}
	u, err := url.ParseRequestURI(req.Target)
	if err != nil || !strings.HasPrefix(req.Target, "/") {
		// net/http refuses such a request line before the gateway sees it.
		e.Refused = &Answer{http.StatusBadRequest, "", "net/http refuses the request target: want a path such as /api/orders/42"}
		return e, nil
	}
	r := &http.Request{Method: req.Method, URL: u, Header: http.Header{}, RequestURI: req.Target}
	e.Path = u.Path
	e.DecidedMethod, e.DecidedPath = route.Decide(r.Method, r.URL.Path)

	if req.Method == http.MethodOptions && len(cfg.CORS.AllowOrigins) > 0 {
		e.Notes = append(e.Notes, fmt.Sprintf("a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) from %s is answered by the gateway before routing, with no API key", strings.Join(cfg.CORS.AllowOrigins, ", ")))
	}
	if a := server.RefusedBeforeRouting(r); a != nil {
		e.Refused = &Answer{a.Status, a.Code, a.Message}
		e.Notes = append(e.Notes, refusalCounted(cfg))
		return e, nil
	}
	for i := range cfg.Routes {
		if cfg.Routes[i].Pattern.Match(e.DecidedMethod, e.DecidedPath) {
			e.Route, e.RouteIndex = &cfg.Routes[i], i
			break
		}
	}
	if e.Route == nil {
		e.Refused = &Answer{http.StatusNotFound, "no_route", fmt.Sprintf("no route matches %s %s", e.DecidedMethod, e.DecidedPath)}
		e.Notes = append(e.Notes, refusalCounted(cfg))
		return e, nil
	}
	explainRoute(cfg, e, r, req.Client)
	return e, nil
}

// refusalCounted says which limits a request refused before routing still spends:
// the ip rules scoped to no route (see server's refusalRules).
func refusalCounted(cfg *config.Config) string {
	var rules []string
	for i, rl := range cfg.RateLimits {
		if rl.Key == "ip" && len(rl.Routes) == 0 {
			rules = append(rules, limitText(cfg, i))
		}
	}
	if len(rules) == 0 {
		return "no rate limit counts it"
	}
	return "it still counts against " + strings.Join(rules, "; ")
}

func explainRoute(cfg *config.Config, e *Explanation, r *http.Request, only string) {
	rt := e.Route
	e.Sends = sends(cfg, rt, e.DecidedPath)
	before, after := server.RateLimitsFor(cfg, rt)
	e.Before = append(e.Before, limitsText(cfg, before, "rate limits before authentication", "no rate limit before authentication"))
	switch {
	case e.DecidedMethod != http.MethodGet:
		// A handshake is a GET; any other upgrade was refused before routing.
	case rt.WebSocket:
		e.Before = append(e.Before, "a WebSocket handshake (GET with Upgrade: websocket) is taken on this route once the checks below pass")
	default:
		e.Before = append(e.Before, "a WebSocket handshake is refused: 400 bad_request (this route has no websocket: true)")
	}

	switch {
	case rt.Public:
		c := Caller{Who: "anyone (public: true, no API key)"}
		c.Checks = append(c.Checks, "no API key, no signature, no roles: a public route takes every caller")
		c.After = append(c.After, "answers go out as the upstream sends them: a public route has no client whose role could mask them")
		c.After = append(c.After, cacheText(rt, e.DecidedMethod, "")...)
		e.Callers = []Caller{c}
	case rt.Verify == "daojia-md5":
		c := Caller{Who: "58到家 (verify: daojia-md5, no API key)"}
		c.Checks = append(c.Checks, "no query string (400: the signature covers the body only)")
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			c.Refused = &Answer{http.StatusBadRequest, "bad_request", "a 58到家 callback takes no query string: its parameters travel in the signed body"}
			e.Callers = []Caller{c}
			return
		}
		c.Checks = append(c.Checks,
			fmt.Sprintf("signature: 58到家's MD5 sign over the body, made with daojia.service_secret, serviceKey %q (daojia.service_key), timestamp within %s, not replayed for %s; else 401", cfg.Daojia.ServiceKey, dur(cfg.Auth.TimestampSkew), dur(cfg.Auth.NonceTTL)),
			limitsText(cfg, after, "rate limits after the signature", "no rate limit after the signature"))
		c.After = append(c.After, "answers go out as the upstream sends them (no client role masks them); the upstream sees X-Signgate-Client: daojia")
		e.Callers = []Caller{c}
	default:
		for i := range cfg.Clients {
			cl := &cfg.Clients[i]
			if only != "" && cl.ID != only {
				continue
			}
			e.Callers = append(e.Callers, clientCaller(cfg, rt, e, r, cl, after))
		}
		if len(e.Callers) == 0 {
			e.Callers = []Caller{{Who: "no client", Refused: &Answer{http.StatusUnauthorized, "missing_credentials", "the config has no clients, so no API key is known"}}}
		}
	}
}

// sends says where rt sends a request for path.
func sends(cfg *config.Config, rt *config.Route, path string) string {
	if rt.Daojia == "relay" {
		_, prefixPath, _ := strings.Cut(rt.Match, " ")
		prefix := strings.TrimSuffix(prefixPath, "**")
		tail := strings.TrimPrefix(path, prefix)
		return fmt.Sprintf("the 58到家 relay: the JSON body becomes daojiaJson, signed with daojia.service_secret and the cached accessToken, POSTed to %s/api/%s/%s", strings.TrimRight(cfg.Daojia.BaseURL, "/"), cfg.Daojia.Version, tail)
	}
	switch rt.WeChat {
	case "login":
		return fmt.Sprintf("nowhere: the gateway answers, exchanging the wx.login code at %s/sns/jscode2session for appid %s and starting a session", strings.TrimRight(cfg.WeChat.APIBase, "/"), cfg.WeChat.AppID)
	case "logout":
		return "nowhere: the gateway answers, ending the bearer token's session on every instance"
	}
	u := cfg.Upstreams[rt.Upstream]
	s := fmt.Sprintf("upstream %s (%s)", rt.Upstream, strings.Join(u.Targets, ", "))
	if rt.Verify == "daojia-md5" {
		s += ", as a 58到家 callback"
	}
	return s
}

func clientCaller(cfg *config.Config, rt *config.Route, e *Explanation, r *http.Request, cl *config.Client, after []int) Caller {
	c := Caller{Who: "client " + cl.ID}
	// A refused request meets no further check: add says nothing once it is.
	add := func(check string) {
		if c.Refused == nil {
			c.Checks = append(c.Checks, check)
		}
	}
	refuse := func(a *Answer) {
		if c.Refused == nil {
			c.Refused = a
		}
	}
	add(fmt.Sprintf("API key: X-Api-Key names the client %s (none: 401 missing_credentials; one no client has: 401 unknown_key)", cl.ID))

	switch scheme := cl.Signature; {
	case scheme == "" || scheme == "none":
		if rt.Verify == "hmac-sha256" {
			add("signature: the route says verify: hmac-sha256, and the client signs nothing (signature: none)")
			refuse(&Answer{http.StatusUnauthorized, "invalid_signature", fmt.Sprintf("route %s takes signed requests only (verify: hmac-sha256), and client %s has signature: none", rt.Name, cl.ID)})
		} else {
			add("signature: none (the API key alone)")
		}
	case scheme == "hmac-sha256":
		add(fmt.Sprintf("signature: hmac-sha256 with the client's secret (X-Timestamp within %s, X-Nonce unseen for %s, X-Signature over the request and its body; else 401)%s", dur(cfg.Auth.TimestampSkew), dur(cfg.Auth.NonceTTL), routeVerifyNote(rt, scheme)))
	case scheme == "daojia-md5":
		add(fmt.Sprintf("signature: daojia-md5 with the client's secret (the body's sign, its timestamp within %s, not replayed for %s; else 401)%s", dur(cfg.Auth.TimestampSkew), dur(cfg.Auth.NonceTTL), routeVerifyNote(rt, scheme)))
	}

	var allowing, refusing []string
	for _, name := range cl.Roles {
		role := cfg.Roles[name]
		if p, ok := matching(role.AllowSet, e.DecidedMethod, e.DecidedPath); ok {
			allowing = append(allowing, fmt.Sprintf("%s (%q)", name, p))
		} else {
			refusing = append(refusing, name)
		}
	}
	call := e.DecidedMethod + " " + e.DecidedPath
	switch {
	case len(allowing) > 0:
		line := fmt.Sprintf("roles: %s allows %s", strings.Join(allowing, ", "), call)
		if len(refusing) > 0 {
			line += fmt.Sprintf("; %s does not", strings.Join(refusing, ", "))
		}
		add(line)
	default:
		add(fmt.Sprintf("roles: none of [%s] allows %s", strings.Join(cl.Roles, " "), call))
		refuse(&Answer{http.StatusForbidden, "forbidden", fmt.Sprintf("none of client %s's roles [%s] allows %s", cl.ID, strings.Join(cl.Roles, " "), call)})
	}
	for _, line := range ownerChecks(cfg, rt, cl) {
		add(line)
	}
	add(limitsText(cfg, after, "rate limits after authentication", "no rate limit after authentication"))
	switch rt.Validate.Request {
	case "enforce":
		add("validate: the request (path, query, header parameters, JSON body) must match its operation in openapi.specs; else 400 bad_request listing every violation")
	case "report":
		add("validate: the request is checked against openapi.specs; a violation is logged and counted, and the request goes on")
	}
	if rt.MaskRequest {
		add("mask_request: the request body is masked before it goes on (after the signature, which covers it as sent)")
	}

	roles := make(map[string]auth.Role, len(cfg.Roles))
	for name, r := range cfg.Roles {
		roles[name] = auth.Role{Allow: r.AllowSet, Mask: r.Mask, Unmask: r.Unmask}
	}
	masked, unmaskRole := auth.MaskFor(roles, cl.Roles)
	if rt.Daojia == "relay" {
		relayChecks(cfg, rt, e, add, refuse)
	}
	view := ""
	switch {
	case masked:
		view = "masked"
		c.After = append(c.After, fmt.Sprintf("answers masked: role %s has mask: true (%s); a body the gateway cannot read is refused 502", maskRole(cfg, cl), maskingRules(cfg)))
	case unmaskRole != "":
		view = "full"
		c.After = append(c.After, fmt.Sprintf("answers in full: role %s has unmask: true, and each answer writes an audit line", unmaskRole))
	default:
		view = "full"
		c.After = append(c.After, "answers go out as the upstream sends them: no role of the client has mask or unmask")
	}
	switch rt.Validate.Response {
	case "enforce":
		c.After = append(c.After, "the upstream's answer must match the spec: one that does not is logged, counted and answered 502 upstream_error")
	case "report":
		c.After = append(c.After, "the upstream's answer is checked against the spec: drift is logged and counted, and the answer goes on")
	}
	c.After = append(c.After, cacheText(rt, e.DecidedMethod, view)...)
	if rt.WebSocket {
		if masked {
			c.After = append(c.After, "a WebSocket handshake from this client is refused: 403 forbidden (messages cannot be masked, and its role has mask: true)")
		} else if e.DecidedMethod == http.MethodGet {
			c.After = append(c.After, fmt.Sprintf("a WebSocket handshake becomes a tunnel to the upstream, closed after %s idle (the upstream's read_timeout); messages are not masked", dur(cfg.Upstreams[rt.Upstream].ReadTimeout)))
		}
	}
	return c
}

// ownerChecks says what a route asks of the owner behind a request.
func ownerChecks(cfg *config.Config, rt *config.Route, cl *config.Client) []string {
	exempt := ""
	for _, name := range cl.Roles {
		if cfg.Roles[name].UserExempt {
			exempt = name
			break
		}
	}
	switch {
	case rt.User == "required" && exempt != "":
		return []string{"user: required, but role " + exempt + " has user_exempt: the client acts for itself and needs no owner (a bearer " + ownerTokens(cfg) + " naming one still sends X-WX-OpenID on)"}
	case rt.WeChat == "login":
		var out []string
		if cfg.WeChat.CheckReferer {
			out = append(out, fmt.Sprintf("Referer: wx.request's https://servicewechat.com/%s/…/page-frame.html (another appid, or none: 403 forbidden)", cfg.WeChat.AppID))
		}
		return append(out, `login: a JSON body {"code":"…"} (else 400 bad_request); WeChat refusing the code: 401 invalid_code; WeChat limiting: 429; WeChat failing: 502, silent: 504`)
	case rt.WeChat == "logout":
		return []string{"logout: Authorization: Bearer <session token> (none: 401 missing_session); sessions unreachable: 503 state_unavailable"}
	case rt.User == "required":
		return []string{"user: required: Authorization: Bearer <" + ownerTokens(cfg) + "> names the owner (none: 401 missing_session; unknown, expired or forged: 401 invalid_session; sessions or JWKS unreachable: 503 state_unavailable); the upstream gets X-WX-OpenID"}
	case cfg.WeChatLogin() || cfg.JWTAuth():
		return []string{"user: optional: a bearer " + ownerTokens(cfg) + " naming an owner sends X-WX-OpenID on; without one the request goes on with no owner"}
	}
	return nil
}

// ownerTokens names what a bearer token may be under cfg.
func ownerTokens(cfg *config.Config) string {
	switch {
	case cfg.WeChatLogin() && cfg.JWTAuth():
		return "session token or JWT"
	case cfg.JWTAuth():
		return "JWT"
	}
	return "session token"
}

// routeVerifyNote says that a route's verify: does not replace a client's own scheme.
func routeVerifyNote(rt *config.Route, scheme string) string {
	if rt.Verify != "" && rt.Verify != scheme {
		return fmt.Sprintf(" (the route's verify: %s asks for a signature; the client's own scheme is the one checked)", rt.Verify)
	}
	return ""
}

// relayChecks adds what the relay handler itself checks.
func relayChecks(cfg *config.Config, rt *config.Route, e *Explanation, add func(string), refuse func(*Answer)) {
	if e.Method != http.MethodPost {
		add("the relay takes POST only")
		refuse(&Answer{http.StatusBadRequest, "bad_request", "the 58到家 relay takes POST"})
	}
	_, prefixPath, _ := strings.Cut(rt.Match, " ")
	tail := strings.TrimPrefix(e.DecidedPath, strings.TrimSuffix(prefixPath, "**"))
	token := strings.ReplaceAll(cfg.Daojia.Token.Path, "{version}", cfg.Daojia.Version)
	if strings.EqualFold("/api/"+cfg.Daojia.Version+"/"+tail, token) {
		add("the relay never calls 58到家's token endpoint (the accessToken is the gateway's to hold)")
		refuse(&Answer{http.StatusNotFound, "no_route", "the 58到家 token endpoint is not relayed"})
	}
	add("relay: the body must be a JSON object, and the 58到家 path segments of A-Z a-z 0-9 _ -; else 400")
}

// matching returns the first pattern of set matching method and path.
func matching(set route.Set, method, path string) (string, bool) {
	for i := range set {
		if set[i].Match(method, path) {
			return set[i].String(), true
		}
	}
	return "", false
}

func maskingRules(cfg *config.Config) string {
	m := cfg.Masking
	s := "fields " + strings.Join(m.Fields, ", ")
	if len(m.Detect) > 0 {
		s += "; detect " + strings.Join(m.Detect, ", ")
	}
	if len(m.Names) > 0 {
		s += "; names " + strings.Join(m.Names, ", ")
	}
	return s
}

// cacheText says how the route's cache treats the request for a caller who sees
// view ("masked", "full", or "" on a public route).
func cacheText(rt *config.Route, method, view string) []string {
	rc := rt.Cache
	if !rc.Enabled {
		return nil
	}
	if method != http.MethodGet {
		return []string{fmt.Sprintf("cache: not used for %s (only GET and HEAD answers are cached)", method)}
	}
	s := fmt.Sprintf("cache: ttl %s", dur(rc.TTL))
	if rc.StaleWhileRevalidate > 0 {
		s += fmt.Sprintf(", stale_while_revalidate %s", dur(rc.StaleWhileRevalidate))
	}
	if rc.StaleIfError > 0 {
		s += fmt.Sprintf(", stale_if_error %s", dur(rc.StaleIfError))
	}
	if len(rc.Vary) > 0 {
		s += ", vary " + strings.Join(rc.Vary, ", ")
	}
	switch {
	case rc.Scope == "all" && view != "":
		s += fmt.Sprintf("; scope all: the %s view's entry is shared with every caller who sees it %s", view, view)
	case rc.Scope == "all":
		s += "; scope all: one entry for every caller"
	default:
		s += "; scope client: this client's own entries"
		if view != "" {
			s += " (" + view + " view)"
		}
	}
	return []string{s}
}

func limitsText(cfg *config.Config, idx []int, some, none string) string {
	if len(idx) == 0 {
		return none
	}
	parts := make([]string, len(idx))
	for i, j := range idx {
		parts[i] = limitText(cfg, j)
	}
	return some + ": " + strings.Join(parts, "; ")
}

// limitText describes cfg.RateLimits[i] as `rate_limits[0] 20/s burst 40 per ip`.
func limitText(cfg *config.Config, i int) string {
	rl := cfg.RateLimits[i]
	per := map[string]string{"ip": "per caller address", "client": "per client", "route": "per route, shared by its callers"}[rl.Key]
	if per == "" {
		per = "per " + rl.Key
	}
	s := fmt.Sprintf("rate_limits[%d] %s burst %d %s", i, rl.Rate, rl.Burst, per)
	if len(rl.Routes) > 0 {
		s += " (routes " + strings.Join(rl.Routes, ", ") + ")"
	}
	return s + ", 429 past it"
}

func clientByID(cfg *config.Config, id string) *config.Client {
	for i := range cfg.Clients {
		if cfg.Clients[i].ID == id {
			return &cfg.Clients[i]
		}
	}
	return nil
}

func clientIDs(cfg *config.Config) []string {
	ids := make([]string, len(cfg.Clients))
	for i, c := range cfg.Clients {
		ids[i] = c.ID
	}
	return ids
}

// maskRole names the first of cl's roles with mask: true.
func maskRole(cfg *config.Config, cl *config.Client) string {
	for _, name := range cl.Roles {
		if cfg.Roles[name].Mask {
			return name
		}
	}
	return ""
}

// dur writes d as config files do: 10m, not 10m0s.
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

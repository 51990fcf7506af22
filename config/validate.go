package config

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/route"
)

// validator collects every semantic problem in a decoded, defaulted Config.
type validator struct {
	set      map[string]int  // from the decoder: path -> line of the keys in the file
	broken   map[string]bool // from the decoder: paths already reported
	problems []Problem
}

// addf records a problem at path, at the line of path or of its nearest ancestor in
// the file (a missing key is reported where its parent mapping starts).
func (v *validator) addf(path, format string, args ...any) {
	if v.isBroken(path) {
		return
	}
	v.problems = append(v.problems, Problem{Path: path, Line: v.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) line(path string) int {
	for ; path != ""; path = parent(path) {
		if l, ok := v.set[path]; ok {
			return l
		}
	}
	return 0
}

// isBroken reports whether the decoder already reported path, a key above it or a key
// below it: the value validate sees there is a zero value left by that failure, and a
// second problem about it would only mislead.
func (v *validator) isBroken(path string) bool {
	for p := path; p != ""; p = parent(p) {
		if v.broken[p] {
			return true
		}
	}
	for p := range v.broken {
		if strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// validate checks c and stores the parsed forms of route patterns, role allow lists
// and rates in it, so the request path never parses them again.
func (v *validator) validate(c *Config) {
	v.server(&c.Server)
	v.tls(&c.TLS)
	v.redis(&c.Redis)
	v.auth(&c.Auth)
	v.clients(c)
	v.roles(c)
	v.oneOf("ratelimit.redis_failure", c.RateLimit.RedisFailure, "local", "open", "closed")
	if n := c.RateLimit.IPv6Prefix; n <= 0 || n > 128 {
		v.addf("ratelimit.ipv6_prefix", "want a prefix length from 1 to 128 (64: count each /64 once), got %d", n)
	}
	v.rateLimits(c)
	v.upstreams(c)
	v.daojia(&c.Daojia)
	v.routes(c)
	v.openAPI(c)
	v.masking(&c.Masking)
	v.cache(c)
	v.cors(&c.CORS)
	v.tracing(&c.Tracing)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "text")
	if b := c.Log.AccessBufferBytes; b < 0 || b > maxLogBuffer {
		v.addf("log.access_buffer_bytes", "must be between 0 (no buffer) and %d, got %d", maxLogBuffer, b)
	}
	positive(v, "log.access_flush_interval", c.Log.AccessFlushInterval)
}

// maxLogBuffer bounds log.access_buffer_bytes: 1 MB holds several thousand lines, and what
// a buffer holds is lost if the process is killed.
const maxLogBuffer = 1 << 20

func (v *validator) server(s *Server) {
	for i, h := range s.Hosts {
		name := strings.TrimPrefix(h, "*.")
		if name == "" || strings.ContainsAny(name, "*:/ ") || strings.ToLower(name) != name || strings.HasSuffix(name, ".") {
			v.addf(fmt.Sprintf("server.hosts[%d]", i), `want a lower-case host name without a port, such as "api.example.com" or "*.example.com", got %q`, h)
		}
	}
	v.hostPort("server.listen", s.Listen)
	if s.HTTPListen != "" {
		v.hostPort("server.http_listen", s.HTTPListen)
	}
	v.hostPort("server.admin_listen", s.AdminListen)
	// Port 0 asks for any free port, so "127.0.0.1:0" twice (as tests write) is fine.
	if clash(s.AdminListen, s.Listen) {
		v.addf("server.admin_listen", "is the same address as server.listen")
	}
	if clash(s.HTTPListen, s.Listen) {
		v.addf("server.http_listen", "is the same address as server.listen")
	}
	for i, n := range s.ProxyProtocolFrom {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(n); err != nil {
				v.addf(fmt.Sprintf("server.proxy_protocol_from[%d]", i), `want a network such as "10.0.0.0/8" or an address, got %q`, n)
			}
		}
	}
	if s.PublicHTTPSPort < 0 || s.PublicHTTPSPort > 65535 {
		v.addf("server.public_https_port", "want a port from 1 to 65535 (0: server.listen's), got %d", s.PublicHTTPSPort)
	}
	positive(v, "server.max_body_bytes", s.MaxBodyBytes)
	positive(v, "server.shutdown_timeout", s.ShutdownTimeout)
	notNegative(v, "server.read_header_timeout", s.ReadHeaderTimeout)
	notNegative(v, "server.read_timeout", s.ReadTimeout)
	notNegative(v, "server.write_timeout", s.WriteTimeout)
	notNegative(v, "server.idle_timeout", s.IdleTimeout)
	positive(v, "server.max_header_bytes", s.MaxHeaderBytes)
}

func (v *validator) tls(t *TLS) {
	v.oneOf("tls.mode", t.Mode, "self_signed", "files", "acme", "off")
	v.oneOf("tls.min_version", t.MinVersion, "1.2", "1.3")
	switch t.Mode {
	case "files":
		if t.CertFile == "" {
			v.addf("tls.cert_file", "required when tls.mode is files")
		}
		if t.KeyFile == "" {
			v.addf("tls.key_file", "required when tls.mode is files")
		}
	case "acme":
		if len(t.Domains) == 0 {
			v.addf("tls.domains", "at least one domain is required when tls.mode is acme")
		}
		for i, d := range t.Domains {
			if d == "" || strings.ContainsAny(d, "/: \t") {
				v.addf(fmt.Sprintf("tls.domains[%d]", i), "want a host name such as api.example.com, got %q", d)
			}
		}
		if t.Email == "" {
			v.addf("tls.email", "required when tls.mode is acme (the CA's expiry and revocation notices go there)")
		} else if !strings.Contains(t.Email, "@") {
			v.addf("tls.email", "want an email address, got %q", t.Email)
		}
		v.httpURL("tls.ca", t.CA)
	}
}

func (v *validator) redis(r *Redis) {
	for i, a := range r.Addrs {
		v.hostPort(fmt.Sprintf("redis.addrs[%d]", i), a)
	}
	notNegative(v, "redis.db", r.DB)
	positive(v, "redis.timeout", r.Timeout)
}

func (v *validator) auth(a *Auth) {
	positive(v, "auth.timestamp_skew", a.TimestampSkew)
	positive(v, "auth.nonce_ttl", a.NonceTTL)
	if a.TimestampSkew > 0 && a.NonceTTL > 0 && a.NonceTTL < 2*a.TimestampSkew {
		v.addf("auth.nonce_ttl", "must be at least 2 × auth.timestamp_skew (%s): a nonce forgotten sooner can be replayed while its timestamp is still accepted", 2*a.TimestampSkew)
	}
}

func (v *validator) clients(c *Config) {
	ids := map[string]string{}  // id -> path of the client that has it
	keys := map[string]string{} // api_key_sha256 -> path
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		switch first, dup := ids[cl.ID]; {
		case cl.ID == "":
			v.addf(p+".id", "required")
		case dup:
			v.addf(p+".id", "id %q is already used by %s", cl.ID, first)
		default:
			ids[cl.ID] = p
		}
		switch first, dup := keys[cl.APIKeySHA256]; {
		case cl.APIKeySHA256 == "":
			v.addf(p+".api_key_sha256", "required (signgate hash-key prints it)")
		case !isSHA256Hex(cl.APIKeySHA256):
			// Never echo the value: an operator may have pasted the API key itself here.
			v.addf(p+".api_key_sha256", "want 64 lower-case hex digits, the SHA-256 of the key as signgate hash-key prints it (got %d characters)", len(cl.APIKeySHA256))
		case dup:
			v.addf(p+".api_key_sha256", "same key as %s", first)
		default:
			keys[cl.APIKeySHA256] = p
		}
		v.oneOf(p+".signature", cl.Signature, "none", "hmac-sha256", "daojia-md5")
		switch cl.Signature {
		case "hmac-sha256", "daojia-md5":
			if cl.Secret.IsZero() {
				v.addf(p+".secret", "required when signature is %s", cl.Signature)
			}
		case "none":
			// A secret with no scheme to check it suggests a forgotten `signature:`;
			// the client would be let in on its API key alone.
			if !cl.Secret.IsZero() {
				v.addf(p+".secret", "is set but signature is none, so it is never checked (set signature: hmac-sha256 or daojia-md5)")
			}
		}
		if len(cl.Roles) == 0 {
			v.addf(p+".roles", "at least one role is required")
		}
		for j, r := range cl.Roles {
			if _, ok := c.Roles[r]; !ok {
				v.addf(fmt.Sprintf("%s.roles[%d]", p, j), "unknown role %q", r)
			}
		}
	}
}

func (v *validator) roles(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Roles)) {
		r := c.Roles[name]
		p := "roles." + name
		r.AllowSet = make(route.Set, 0, len(r.Allow))
		for i, a := range r.Allow {
			pat, err := route.ParsePattern(a)
			if err != nil {
				v.addf(fmt.Sprintf("%s.allow[%d]", p, i), "%v", err)
				continue
			}
			r.AllowSet = append(r.AllowSet, pat)
		}
		if r.Mask && r.Unmask {
			v.addf(p, "mask and unmask cannot both be true")
		}
		c.Roles[name] = r
	}
}

// maxRate bounds N in "N/s" so the default burst, ceil(N), fits an int.
const maxRate = 1e9

// parseRate parses "N/s", "N/m" or "N/h"; N may have a fraction ("0.5/s").
func parseRate(s string) (n float64, per time.Duration, err error) {
	num, unit, ok := strings.Cut(s, "/")
	per, known := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	n, err = strconv.ParseFloat(num, 64)
	if !ok || !known || err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, 0, fmt.Errorf(`want N/s, N/m or N/h such as "20/s", got %q`, s)
	}
	return n, per, nil
}

func (v *validator) rateLimits(c *Config) {
	routes := map[string]bool{}
	for _, r := range c.Routes {
		routes[r.Name] = true
	}
	for i := range c.RateLimits {
		rl := &c.RateLimits[i]
		p := fmt.Sprintf("rate_limits[%d]", i)
		v.rateKey(p+".key", rl.Key)
		n, per, err := parseRate(rl.Rate)
		switch {
		case rl.Rate == "":
			v.addf(p+".rate", `required, such as "20/s"`)
		case err != nil:
			v.addf(p+".rate", "%v", err)
		case n <= 0:
			v.addf(p+".rate", "must be more than 0, got %q", rl.Rate)
		case n > maxRate:
			v.addf(p+".rate", "must be at most %g per unit, got %q", float64(maxRate), rl.Rate)
		default:
			rl.Limit = n / per.Seconds()
			rl.Period = per
		}
		notNegative(v, p+".burst", rl.Burst)
		for j, r := range rl.Routes {
			if !routes[r] {
				v.addf(fmt.Sprintf("%s.routes[%d]", p, j), "unknown route %q", r)
			}
		}
	}
}

// rateKey checks a rate limit's key: ip, client, route or user, or several of them
// joined by "+" ("user+route"), each once.
func (v *validator) rateKey(path, key string) {
	seen := map[string]bool{}
	for part := range strings.SplitSeq(key, "+") {
		switch {
		case part != "ip" && part != "client" && part != "route" && part != "user":
			v.addf(path, `want ip, client, route or user, or several joined by "+" (user+route), got %q`, key)
			return
		case seen[part]:
			v.addf(path, "%q names %s twice", key, part)
			return
		}
		seen[part] = true
	}
}

func (v *validator) upstreams(c *Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		u := c.Upstreams[name]
		p := "upstreams." + name
		if len(u.Targets) == 0 {
			v.addf(p+".targets", "at least one target is required")
		}
		for i, t := range u.Targets {
			v.httpURL(fmt.Sprintf("%s.targets[%d]", p, i), t)
		}
		positive(v, p+".dial_timeout", u.DialTimeout)
		positive(v, p+".response_timeout", u.ResponseTimeout)
		positive(v, p+".read_timeout", u.ReadTimeout)
		notNegative(v, p+".retries", u.Retries)
		if u.Health.Path != "" {
			if !strings.HasPrefix(u.Health.Path, "/") {
				v.addf(p+".health.path", "want a path starting with /, got %q", u.Health.Path)
			}
			positive(v, p+".health.interval", u.Health.Interval)
			positive(v, p+".health.timeout", u.Health.Timeout)
		}
		notNegative(v, p+".passive.max_fails", u.Passive.MaxFails)
		if u.Passive.MaxFails > 0 {
			positive(v, p+".passive.eject_for", u.Passive.EjectFor)
		}
	}
}

func (v *validator) daojia(d *Daojia) {
	if d.BaseURL != "" {
		v.httpURL("daojia.base_url", d.BaseURL)
	}
	if d.Version == "" {
		v.addf("daojia.version", "required (it fills {version} in 58到家 URLs)")
	}
	positive(v, "daojia.timeout", d.Timeout)
	if !strings.HasPrefix(d.Token.Path, "/") {
		v.addf("daojia.token.path", "want a path starting with /, got %q", d.Token.Path)
	}
	notNegative(v, "daojia.token.refresh_before", d.Token.RefreshBefore)
	positive(v, "daojia.token.default_ttl", d.Token.DefaultTTL)
}

func (v *validator) routes(c *Config) {
	names := map[string]string{} // name -> path of the route that has it
	var needsDaojia string       // why the 58到家 account must be set, from the first route needing it
	var needsIdentity string     // the first route that needs wechat or jwt
	for i := range c.Routes {
		rt := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		switch first, dup := names[rt.Name]; {
		case rt.Name == "":
			v.addf(p+".name", "required (it labels metrics and logs)")
		case dup:
			v.addf(p+".name", "name %q is already used by %s", rt.Name, first)
		default:
			names[rt.Name] = p
		}
		if rt.Match == "" {
			v.addf(p+".match", `required, such as "GET /api/orders/*"`)
		} else if pat, err := route.ParsePattern(rt.Match); err != nil {
			v.addf(p+".match", "%v", err)
		} else {
			rt.Pattern = pat
			if rt.Daojia == "relay" && !relayMatch(rt.Match) {
				v.addf(p+".match", `a daojia: relay route's path must be a fixed prefix ending in /**, such as "POST /daojia/**": what follows the prefix is the 58到家 path (roles' allow lists can narrow it), got %q`, rt.Match)
			}
		}
		v.oneOf(p+".wechat", rt.WeChat, "", "login", "logout")
		v.oneOf(p+".user", rt.User, "", "required")
		switch {
		case rt.WeChat != "":
			if rt.Upstream != "" || rt.Daojia != "" || rt.Verify != "" || rt.Public || rt.WebSocket || rt.Cache.Enabled {
				v.addf(p+".wechat", "a wechat: %s route is answered by the gateway itself: it takes no upstream, daojia, verify, public, websocket or cache", rt.WeChat)
			}
		case rt.Upstream != "" && rt.Daojia != "":
			v.addf(p, "set either upstream or daojia: relay, not both")
		case rt.Upstream == "" && rt.Daojia == "":
			v.addf(p, "needs upstream: NAME or daojia: relay")
		case rt.Daojia != "" && rt.Daojia != "relay":
			v.addf(p+".daojia", `want "relay", got %q`, rt.Daojia)
		case rt.Upstream != "":
			if _, ok := c.Upstreams[rt.Upstream]; !ok {
				v.addf(p+".upstream", "unknown upstream %q", rt.Upstream)
			}
		}
		if rt.Public && (rt.Verify != "" || rt.Daojia != "") {
			v.addf(p+".public", "a public route takes no credentials: it cannot also have verify or daojia")
		}
		if rt.WebSocket {
			switch {
			case rt.Daojia != "":
				v.addf(p+".websocket", "a daojia: relay route answers 58到家 calls itself; it has no upstream to open a WebSocket to")
			case rt.Verify == "daojia-md5":
				v.addf(p+".websocket", "a daojia-md5 route takes 58到家 callbacks, signed POST bodies; it cannot also take WebSocket upgrades")
			case rt.MaskRequest:
				v.addf(p+".websocket", "WebSocket messages are not masked: a route with mask_request cannot take upgrades")
			case !matchesGET(rt.Match):
				v.addf(p+".websocket", "a WebSocket handshake is a GET; this route's match %q takes no GET", rt.Match)
			}
		}
		if rt.User == "required" {
			switch {
			case rt.Public:
				v.addf(p+".user", "a public route authenticates nobody: it cannot require a user")
			case rt.Verify == "daojia-md5":
				v.addf(p+".user", "a daojia-md5 route takes 58到家's callbacks, which carry no owner: it cannot require a user")
			case rt.WeChat != "":
				v.addf(p+".user", "a wechat: %s route cannot require a user", rt.WeChat)
			}
		}
		if (rt.User != "" || rt.WeChat != "") && needsIdentity == "" {
			needsIdentity = p
		}
		if rt.Verify != "" && rt.Verify != "hmac-sha256" && rt.Verify != "daojia-md5" {
			v.addf(p+".verify", "want hmac-sha256 or daojia-md5 (or leave it out for the client's own scheme), got %q", rt.Verify)
		}
		if needsDaojia == "" {
			label := "route " + strconv.Quote(rt.Name)
			if rt.Name == "" {
				label = p
			}
			if rt.Daojia == "relay" {
				needsDaojia = label + " (daojia: relay)"
			} else if rt.Verify == "daojia-md5" {
				needsDaojia = label + " (verify: daojia-md5)"
			}
		}
	}
	v.identity(c, needsIdentity)
	if needsDaojia != "" {
		if c.Daojia.BaseURL == "" {
			v.addf("daojia.base_url", "required by %s", needsDaojia)
		}
		if c.Daojia.ServiceKey == "" {
			v.addf("daojia.service_key", "required by %s", needsDaojia)
		}
		if c.Daojia.ServiceSecret.IsZero() {
			v.addf("daojia.service_secret", "required by %s", needsDaojia)
		}
	}
}

// relayMatch reports whether a relay route's match is a fixed path prefix ending in
// "/**": the relay strips that prefix (everything before "**") to find the 58到家 path,
// at any depth ("POST /partners/daojia/**"). A wildcard segment or an exact path leaves
// no prefix to strip.
func relayMatch(match string) bool {
	_, path, _ := strings.Cut(match, " ")
	prefix, ok := strings.CutSuffix(path, "/**")
	return ok && !strings.Contains(prefix, "*")
}

// matchesGET reports whether a route's match takes GET requests (a malformed match
// has its own problem).
func matchesGET(match string) bool {
	method, _, ok := strings.Cut(match, " ")
	return !ok || method == "*" || method == "GET"
}

func (v *validator) masking(m *Masking) {
	for i, f := range m.Fields {
		if f == "" {
			v.addf(fmt.Sprintf("masking.fields[%d]", i), "may not be empty")
		}
	}
	for i, d := range m.Detect {
		v.oneOf(fmt.Sprintf("masking.detect[%d]", i), d, "cn_mobile", "cn_id_card")
	}
	for i, f := range m.Names {
		if f == "" {
			v.addf(fmt.Sprintf("masking.names[%d]", i), "may not be empty")
		}
	}
	positive(v, "masking.max_body_bytes", m.MaxBodyBytes)
}

func (v *validator) cors(c *CORS) {
	wildcard := false
	for i, o := range c.AllowOrigins {
		if o == "*" {
			wildcard = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
			v.addf(fmt.Sprintf("cors.allow_origins[%d]", i), `want "*" or scheme://host[:port] such as "https://admin.example.com", got %q`, o)
		}
	}
	if wildcard && c.AllowCredentials {
		v.addf("cors.allow_credentials", `cannot be true with allow_origins "*": browsers refuse credentials for a wildcard origin`)
	}
	for i, m := range c.AllowMethods {
		if m == "" || strings.IndexFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
			v.addf(fmt.Sprintf("cors.allow_methods[%d]", i), "want an upper-case method such as GET, got %q", m)
		}
	}
	notNegative(v, "cors.max_age", c.MaxAge)
}

// hostPort checks a listen or dial address such as ":8443" or "10.0.0.5:6379". Port 0
// is allowed so tests can ask for a free port.
func (v *validator) hostPort(path, addr string) {
	if addr == "" {
		v.addf(path, `required, such as ":8443"`)
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		v.addf(path, `want host:port such as ":8443" or "127.0.0.1:9090", got %q`, addr)
	}
}

// clash reports whether two listen addresses are the same fixed address.
func clash(a, b string) bool {
	_, port, err := net.SplitHostPort(a)
	return a != "" && a == b && err == nil && port != "0"
}

// httpURL checks an absolute http or https URL with a host and no query: upstream
// targets and base URLs have request paths appended to them.
func (v *validator) httpURL(path, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.addf(path, "want an absolute http:// or https:// URL, got %q", s)
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		v.addf(path, "may not have a query or fragment, got %q", s)
	}
}

func (v *validator) oneOf(path, s string, options ...string) {
	if !slices.Contains(options, s) {
		v.addf(path, "want one of %s; got %q", strings.Join(options, ", "), s)
	}
}

func positive[T int | int64 | time.Duration](v *validator, path string, x T) {
	if x <= 0 {
		v.addf(path, "must be more than 0, got %v", x)
	}
}

func notNegative[T int | int64 | time.Duration](v *validator, path string, x T) {
	if x < 0 {
		v.addf(path, "may not be negative, got %v", x)
	}
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/jwtauth"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/state"
	"github.com/signgate/signgate/tracing"
	"github.com/signgate/signgate/wechat"
)

// The errors of end-user identity (DESIGN "End-user identity").
var (
	errMissingSession = apierror.New(http.StatusUnauthorized, "missing_session",
		"this route needs the owner's session: log in (POST the wx.login code to the login route) and send its token as Authorization: Bearer TOKEN")
	errInvalidSession = apierror.New(http.StatusUnauthorized, "invalid_session",
		"the session is unknown, expired or logged out: log in again")
	errSessionsUnavailable = apierror.New(http.StatusServiceUnavailable, "state_unavailable",
		"sessions cannot be checked right now; retry shortly")
	errInvalidCode = apierror.New(http.StatusUnauthorized, "invalid_code",
		"WeChat refused the login code (invalid, expired or already used): call wx.login again for a new one")
	errLoginBody  = apierror.BadRequest(`want a JSON body {"code":"…"} with the code wx.login returned`)
	errTwoBearers = apierror.BadRequest("send one Authorization header: with two, the gateway and the upstream could each read another")
	errReferer    = apierror.New(http.StatusForbidden, "forbidden",
		"the login comes from another mini-program (its Referer names another appid)")
	errWeChatLimited = apierror.New(http.StatusTooManyRequests, "rate_limited",
		"WeChat is limiting this mini-program's logins; retry after the time in Retry-After")
	errWeChatFailed  = apierror.New(http.StatusBadGateway, "upstream_error", "WeChat could not complete the login; retry shortly")
	errWeChatTimeout = apierror.New(http.StatusGatewayTimeout, "upstream_timeout", "WeChat did not answer the login in time; retry shortly")
)

// maxLoginBody bounds a login request's body: {"code":"…"} is under 100 bytes.
const maxLoginBody = 4 << 10

// newSessions returns the process's WeChat session store: in Redis when the state
// store is Redis (every instance sees every session), in this process otherwise.
// Its sessions outlive reloads; session_ttl and max_sessions are read at start.
func newSessions(cfg *config.Config, store sharedState, logger *slog.Logger) *wechat.Store {
	o := wechat.StoreOptions{
		TTL:         cfg.WeChat.SessionTTL,
		MaxSessions: cfg.WeChat.MaxSessions,
		KeyPrefix:   cfg.Redis.KeyPrefix,
		Logger:      logger,
	}
	if r, ok := store.(*state.Redis); ok {
		o.Redis = r.Client()
		o.RedisTimeout = cfg.Redis.Timeout
	}
	s := wechat.NewStore(o)
	s.Start()
	return s
}

// identity is how one gateway knows the owner behind a request: a WeChat-login
// session (its token, from the login route) or a JWT the backend issued.
type identity struct {
	sessions *wechat.Store     // nil only in tests that build no Server
	wx       *wechat.Client    // nil without wechat.appid: no login route
	jwt      *jwtauth.Verifier // nil without jwt
	jwtCfg   config.JWT        // what jwt was built from
	appID    string
	referer  bool // wechat.check_referer
	ttl      time.Duration
	logger   *slog.Logger
	logins   func(result string)
}

// newIdentity builds the gateway's identity from cfg; close stops what it started
// (the JWKS refresh). prev is the identity of the gateway being replaced, or nil:
// its JWT verifier is kept when the jwt section is unchanged, so a reload during
// an identity provider's outage keeps the signing keys already held instead of
// answering every owner 503 until a new fetch succeeds.
func newIdentity(cfg *config.Config, d deps, prev *identity) (*identity, error) {
	id := &identity{sessions: d.sessions, logger: d.logger, appID: cfg.WeChat.AppID,
		referer: cfg.WeChat.CheckReferer, ttl: cfg.WeChat.SessionTTL, logins: d.metrics.wechatLogin}
	if cfg.WeChatLogin() {
		var tr http.RoundTripper = wechat.NewTransport(cfg.WeChat.Timeout)
		if d.tracer != nil {
			// The span names the path only: the query carries the AppSecret and the code.
			tr = d.tracer.Transport(tr, "wechat", nil)
		}
		wx, err := wechat.NewClient(wechat.ClientOptions{
			AppID:     cfg.WeChat.AppID,
			Secret:    cfg.WeChat.Secret,
			APIBase:   cfg.WeChat.APIBase,
			Timeout:   cfg.WeChat.Timeout,
			Transport: tr,
			Logger:    d.logger,
		})
		if err != nil {
			return nil, err
		}
		id.wx = wx
	}
	if prev != nil && prev.jwt != nil && reflect.DeepEqual(prev.jwtCfg, cfg.JWT) {
		id.jwt, id.jwtCfg = prev.jwt, prev.jwtCfg
	} else if cfg.JWTAuth() {
		j := cfg.JWT
		v, err := jwtauth.New(jwtauth.Options{
			Issuer:      j.Issuer,
			Audience:    j.Audience,
			JWKSURL:     j.JWKSURL,
			HS256Secret: j.HS256,
			Claim:       j.Claim,
			Leeway:      j.Leeway,
			Now:         d.now,
			Timeout:     j.JWKSTimeout,
			Logger:      d.logger,
		})
		if err != nil {
			return nil, err
		}
		id.jwt, id.jwtCfg = v, j
	}
	return id, nil
}

// close stops what id started that next (the identity replacing it, or nil) does
// not share.
func (id *identity) close(next *identity) {
	if id != nil && id.jwt != nil && (next == nil || next.jwt != id.jwt) {
		id.jwt.Close()
	}
}

// bearer returns the token of an Authorization: Bearer header, "" when there is none.
func bearer(h http.Header) string { return bearerToken(h.Get("Authorization")) }

// bearerToken returns the token of one Authorization value, "" when it is not Bearer.
func bearerToken(v string) string {
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(v[7:])
}

// isJWT tells a JWT (three base64url parts) from a session token (one).
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

// dropSessionToken removes a bearer session token from requests on routes that
// never look the owner up (public routes, 58到家 callbacks): a mini-program adds
// the token to every wx.request, and it must not reach an upstream or its logs
// there either. JWTs, the backend's own, pass.
func dropSessionToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range r.Header["Authorization"] {
			if t := bearerToken(v); t != "" && !isJWT(t) {
				r.Header.Del("Authorization")
				break
			}
		}
		next.ServeHTTP(w, r)
	})
}

// identify learns the owner behind a request from its bearer token: a session
// token is looked up, a JWT verified. A known owner becomes reqinfo's User and
// reaches the upstream as X-WX-OpenID (X-WX-UnionID when known); the caller's own
// X-WX-* headers were removed before routing (hygiene), so the upstream can trust
// them. A session token goes no further than the gateway; a JWT, the backend's own
// credential, goes on to it.
//
// On a route with user: required a request with no token answers 401
// missing_session, a token that names no one 401 invalid_session, and a session
// store or JWKS that cannot be reached 503 state_unavailable: sessions fail
// closed. On other routes the owner is optional: a request whose token names no one
// goes on as anyone's, without an owner.
func identify(id *identity, required bool) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.Header["Authorization"]) > 1 {
				apierror.Write(w, r, errTwoBearers)
				return
			}
			token := bearer(r.Header)
			required := required
			if c := clientFrom(r.Context()); required && c != nil && c.UserExempt {
				required = false
			}
			if token == "" {
				if required {
					apierror.Write(w, r, errMissingSession)
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			openid, unionid, err := id.resolve(r.Context(), token)
			if err != nil || !isJWT(token) {
				// A session token stops here; so does a JWT the gateway did not
				// verify: passed on, the upstream (or the cache, keyed without an
				// owner) could answer as the owner it names.
				r.Header.Del("Authorization")
			}
			switch {
			case err == nil:
				info := reqinfo.Of(r)
				// The proxy sets X-WX-OpenID and X-WX-UnionID from these, last
				// (proxy.Pool.rewrite), where no Connection header can remove them.
				info.User, info.UnionID = openid, unionid
			case !required:
				// No owner: the request goes on as anyone's.
			default:
				apierror.Write(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// resolve names the owner a token stands for, or answers why it cannot: an
// apierror for the caller.
func (id *identity) resolve(ctx context.Context, token string) (openid, unionid string, err error) {
	if isJWT(token) {
		if id.jwt == nil {
			return "", "", errInvalidSession
		}
		user, err := id.jwt.Verify(ctx, token)
		switch {
		case err == nil:
			return user, "", nil
		case errors.Is(err, jwtauth.ErrUnavailable):
			// jwtauth logs the failed fetches themselves, at most one per 30 s.
			return "", "", errSessionsUnavailable
		}
		return "", "", errInvalidSession
	}
	if id.sessions == nil || id.wx == nil {
		return "", "", errInvalidSession
	}
	sess, ok, err := id.sessions.Lookup(ctx, token)
	switch {
	case err != nil:
		// Not logged per request: a Redis that is down shows on /readyz and in
		// the state store's own log.
		return "", "", errSessionsUnavailable
	case !ok:
		return "", "", errInvalidSession
	}
	return sess.OpenID, sess.UnionID, nil
}

// loginHandler answers a wechat: login route: the mini-program's wx.login code,
// {"code":"…"}, is exchanged at jscode2session and a session started; the answer is
// {"token":"…","expires_in":seconds}. The session_key stays in the gateway.
func loginHandler(id *identity) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id.referer {
			if appid, ok := wechat.RefererAppID(r.Header); !ok || appid != id.appID {
				id.logins("wrong_appid")
				apierror.Write(w, r, errReferer)
				return
			}
		}
		var body struct {
			Code string `json:"code"`
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
		if err != nil || len(raw) > maxLoginBody || json.Unmarshal(raw, &body) != nil || body.Code == "" {
			id.logins("bad_request")
			apierror.Write(w, r, errLoginBody)
			return
		}
		// A code is good once: spend it only when the session can be kept.
		if err := id.sessions.Ready(r.Context()); err != nil {
			id.logins("state_unavailable")
			apierror.Write(w, r, errSessionsUnavailable)
			return
		}
		sess, err := id.wx.Code2Session(r.Context(), body.Code)
		if err != nil {
			result, answer := loginRefusal(err)
			id.logins(result)
			if result != "invalid_code" {
				id.logger.WarnContext(r.Context(), "WeChat login failed", "err", err)
			}
			apierror.Write(w, r, answer)
			return
		}
		token, stored, err := id.sessions.Create(r.Context(), sess)
		if err != nil {
			id.logins("state_unavailable")
			id.logger.WarnContext(r.Context(), "session not stored", "err", err)
			apierror.Write(w, r, errSessionsUnavailable)
			return
		}
		id.logins("ok")
		info := reqinfo.Of(r)
		info.User, info.UnionID = stored.OpenID, stored.UnionID
		expiresIn := id.ttl
		if !stored.Expires.IsZero() {
			expiresIn = time.Until(stored.Expires)
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"token":"`+token+`","expires_in":`+strconv.Itoa(int(expiresIn.Round(time.Second).Seconds()))+"}\n")
	})
}

// loginRefusal maps a Code2Session failure to the metric's result and the answer.
func loginRefusal(err error) (string, *apierror.Error) {
	switch {
	case errors.Is(err, wechat.ErrInvalidCode):
		return "invalid_code", errInvalidCode
	case errors.Is(err, wechat.ErrRateLimited):
		e := *errWeChatLimited
		e.Header = http.Header{"Retry-After": {"60"}}
		return "rate_limited", &e
	case errors.Is(err, wechat.ErrTimeout):
		return "timeout", errWeChatTimeout
	}
	return "upstream_error", errWeChatFailed
}

// logoutHandler answers a wechat: logout route: the session the bearer token names
// ends on every instance. A token that names no session is no error (logging out
// twice is fine); no token at all is 401 missing_session.
func logoutHandler(id *identity) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r.Header)
		if token == "" || isJWT(token) {
			apierror.Write(w, r, errMissingSession)
			return
		}
		if err := id.sessions.Logout(r.Context(), token); err != nil {
			id.logger.WarnContext(r.Context(), "logout not recorded", "err", err)
			apierror.Write(w, r, errSessionsUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{\"logged_out\":true}\n")
	})
}

// userExempt reports whether one of roles has user_exempt.
func userExempt(all map[string]config.Role, roles []string) bool {
	for _, name := range roles {
		if all[name].UserExempt {
			return true
		}
	}
	return false
}

// traceIdentity gives the owner's lookup a span on traced requests.
func traceIdentity(t *tracing.Tracer, mw middleware) middleware {
	return traceStage(t, "user", mw)
}

// loginResults are the results signgate_wechat_logins_total counts.
var loginResults = []string{"ok", "invalid_code", "rate_limited", "upstream_error", "timeout",
	"state_unavailable", "bad_request", "wrong_appid"}

// initIdentity registers the identity metrics.
func (m *metrics) initIdentity() {
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signgate_wechat_logins_total",
		Help: "WeChat logins (wx.login code exchanges), by result.",
	}, []string{"result"})
	m.registry.MustRegister(m.logins)
	for _, r := range loginResults {
		m.logins.WithLabelValues(r)
	}
}

func (m *metrics) wechatLogin(result string) { m.logins.WithLabelValues(result).Inc() }

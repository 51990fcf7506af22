package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/signgate/signgate/secret"
)

// WeChat is the mini-program's account, for WeChat login at the edge: routes with
// wechat: login exchange wx.login's code at jscode2session for a session token.
type WeChat struct {
	AppID  string        `yaml:"appid"`
	Secret secret.Secret `yaml:"secret"`
	// APIBase is WeChat's API origin; `signgate sandbox` answers jscode2session too.
	APIBase string `yaml:"api_base"`
	// SessionTTL is how long a session lives after its last use (sliding).
	SessionTTL time.Duration `yaml:"session_ttl"`
	// CheckReferer refuses a login whose wx.request Referer names another appid.
	CheckReferer bool `yaml:"check_referer"`
	// Timeout bounds one jscode2session call.
	Timeout time.Duration `yaml:"timeout"`
	// MaxSessions bounds the sessions kept in memory when there is no Redis.
	MaxSessions int `yaml:"max_sessions"`
}

// JWT verifies end-user tokens a backend already issues, instead of (or beside)
// WeChat sessions: the claim named by Claim becomes the user.
type JWT struct {
	Issuer      string        `yaml:"issuer"`
	Audience    string        `yaml:"audience"`
	JWKSURL     string        `yaml:"jwks_url"`
	HS256       secret.Secret `yaml:"hs256_secret"`
	Claim       string        `yaml:"claim"`
	Leeway      time.Duration `yaml:"leeway"`
	JWKSTimeout time.Duration `yaml:"jwks_timeout"`
}

// identityDefaults fills the wechat and jwt sections.
func identityDefaults(c *Config, def func(string, func())) {
	w := &c.WeChat
	def("wechat.api_base", func() { w.APIBase = "https://api.weixin.qq.com" })
	def("wechat.session_ttl", func() { w.SessionTTL = 24 * time.Hour })
	def("wechat.timeout", func() { w.Timeout = 5 * time.Second })
	def("wechat.max_sessions", func() { w.MaxSessions = 100000 })
	j := &c.JWT
	def("jwt.claim", func() { j.Claim = "sub" })
	def("jwt.leeway", func() { j.Leeway = 30 * time.Second })
	def("jwt.jwks_timeout", func() { j.JWKSTimeout = 5 * time.Second })
}

// WeChatLogin reports whether the config sets up WeChat login.
func (c *Config) WeChatLogin() bool { return c.WeChat.AppID != "" }

// JWTAuth reports whether the config verifies JWTs.
func (c *Config) JWTAuth() bool { return c.JWT.JWKSURL != "" || !c.JWT.HS256.IsZero() }

// identity checks the wechat and jwt sections; route is the first route that needs
// one of them (user:, wechat:), "" when none does.
func (v *validator) identity(c *Config, route string) {
	w := &c.WeChat
	usesWeChat := w.AppID != ""
	for i, rt := range c.Routes {
		if rt.WeChat != "" && !usesWeChat {
			v.addf("wechat.appid", "required by routes[%d] (wechat: %s)", i, rt.WeChat)
			usesWeChat = true // one problem is enough
		}
	}
	if w.AppID != "" {
		if !appIDPattern.MatchString(w.AppID) {
			v.addf("wechat.appid", `want the mini-program's AppID, "wx" and 16 hex digits, got %q`, w.AppID)
		}
		if w.Secret.IsZero() {
			v.addf("wechat.secret", "required with wechat.appid (the AppSecret jscode2session takes)")
		}
		v.httpURL("wechat.api_base", w.APIBase)
		if w.SessionTTL < time.Minute || w.SessionTTL > 30*24*time.Hour {
			v.addf("wechat.session_ttl", "want from 1m to 720h, got %v", w.SessionTTL)
		}
		positive(v, "wechat.timeout", w.Timeout)
		positive(v, "wechat.max_sessions", w.MaxSessions)
	}
	j := &c.JWT
	switch {
	case j.JWKSURL != "" && !j.HS256.IsZero():
		v.addf("jwt", "set jwks_url or hs256_secret, not both")
	case j.JWKSURL != "":
		v.httpURL("jwt.jwks_url", j.JWKSURL)
		if j.Audience == "" {
			// An identity provider's keys sign the tokens of every app it serves:
			// without an audience, a token meant for another app would do here.
			v.addf("jwt.audience", "required with jwks_url: the provider's keys sign every app's tokens, and only the audience says a token is for this gateway")
		}
		positive(v, "jwt.jwks_timeout", j.JWKSTimeout)
	case !j.HS256.IsZero():
		if len(j.HS256.Reveal()) < 32 {
			v.addf("jwt.hs256_secret", "want at least 32 bytes (256 bits, as RFC 7518 asks of HS256 keys)")
		}
	case j.Issuer != "" || j.Audience != "":
		v.addf("jwt", "issuer and audience need jwks_url or hs256_secret to verify tokens with")
	}
	if c.JWTAuth() {
		if j.Claim == "" {
			v.addf("jwt.claim", "required (the claim that names the user, such as sub)")
		}
		notNegative(v, "jwt.leeway", j.Leeway)
		if j.Leeway > 5*time.Minute {
			v.addf("jwt.leeway", "want at most 5m, got %v", j.Leeway)
		}
	}
	if route != "" && !c.WeChatLogin() && !c.JWTAuth() {
		v.addf(route+".user", "needs wechat (appid, secret) or jwt (jwks_url or hs256_secret) to know the user by")
	}
	for i, rl := range c.RateLimits {
		for part := range strings.SplitSeq(rl.Key, "+") {
			if part == "user" && !c.WeChatLogin() && !c.JWTAuth() {
				v.addf(fmt.Sprintf("rate_limits[%d].key", i), "key user needs wechat or jwt to know the user by")
			}
		}
	}
}

// appIDPattern is a mini-program AppID: "wx" and 16 hex digits.
var appIDPattern = regexp.MustCompile(`^wx[0-9a-f]{16}$`)

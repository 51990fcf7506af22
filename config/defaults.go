package config

import (
	"fmt"
	"math"
	"time"
)

// Default values that other packages and docs may want to name.
const (
	// DefaultACMECA is Let's Encrypt's production directory.
	DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultDaojiaTokenPath is the 58到家 token endpoint when daojia.token.path is absent.
	DefaultDaojiaTokenPath = "/api/{version}/token/getAccessToken"
)

// setDefaults fills every key the file left out; set holds the paths it did give.
// Going by presence rather than by zero value is what lets `http_listen: ""` disable
// a listener and `retries: 0` turn retries off.
func setDefaults(c *Config, set map[string]int) {
	def := func(path string, apply func()) {
		if _, ok := set[path]; !ok {
			apply()
		}
	}

	s := &c.Server
	def("server.listen", func() { s.Listen = ":8443" })
	def("server.http_listen", func() { s.HTTPListen = ":8080" })
	def("server.admin_listen", func() { s.AdminListen = "127.0.0.1:9090" })
	def("server.max_body_bytes", func() { s.MaxBodyBytes = 1 << 20 })
	def("server.shutdown_timeout", func() { s.ShutdownTimeout = 30 * time.Second })
	def("server.read_header_timeout", func() { s.ReadHeaderTimeout = 10 * time.Second })
	def("server.idle_timeout", func() { s.IdleTimeout = 120 * time.Second })
	def("server.max_header_bytes", func() { s.MaxHeaderBytes = 64 << 10 })

	t := &c.TLS
	def("tls.mode", func() { t.Mode = "self_signed" })
	def("tls.min_version", func() { t.MinVersion = "1.2" })
	def("tls.ca", func() { t.CA = DefaultACMECA })
	def("tls.storage_dir", func() { t.StorageDir = "/var/lib/signgate" })

	r := &c.Redis
	def("redis.key_prefix", func() { r.KeyPrefix = "signgate:" })
	def("redis.timeout", func() { r.Timeout = 500 * time.Millisecond })

	a := &c.Auth
	def("auth.timestamp_skew", func() { a.TimestampSkew = 10 * time.Minute })
	// A timestamp may be up to skew in the future, so a nonce must be remembered for
	// 2 × skew to outlive every moment its request could be accepted.
	def("auth.nonce_ttl", func() { a.NonceTTL = 2 * a.TimestampSkew })

	for i := range c.Clients {
		cl := &c.Clients[i]
		def(fmt.Sprintf("clients[%d].signature", i), func() { cl.Signature = "none" })
	}

	def("ratelimit.redis_failure", func() { c.RateLimit.RedisFailure = "local" })
	def("ratelimit.ipv6_prefix", func() { c.RateLimit.IPv6Prefix = 64 })
	for i := range c.RateLimits {
		rl := &c.RateLimits[i]
		// A burst of 0 would refuse every request, so 0 means the default as well.
		if n, _, err := parseRate(rl.Rate); err == nil && rl.Burst == 0 && n <= maxRate {
			rl.Burst = int(math.Ceil(n))
		}
	}

	for name, u := range c.Upstreams {
		p := "upstreams." + name
		def(p+".dial_timeout", func() { u.DialTimeout = 3 * time.Second })
		def(p+".response_timeout", func() { u.ResponseTimeout = 15 * time.Second })
		def(p+".read_timeout", func() { u.ReadTimeout = 60 * time.Second })
		def(p+".retries", func() { u.Retries = 1 })
		def(p+".health.interval", func() { u.Health.Interval = 10 * time.Second })
		def(p+".health.timeout", func() { u.Health.Timeout = 2 * time.Second })
		def(p+".passive.max_fails", func() { u.Passive.MaxFails = 3 })
		def(p+".passive.eject_for", func() { u.Passive.EjectFor = 30 * time.Second })
		c.Upstreams[name] = u
	}

	dj := &c.Daojia
	def("daojia.version", func() { dj.Version = "v1" })
	def("daojia.timeout", func() { dj.Timeout = 10 * time.Second })
	def("daojia.token.path", func() { dj.Token.Path = DefaultDaojiaTokenPath })
	def("daojia.token.refresh_before", func() { dj.Token.RefreshBefore = 5 * time.Minute })
	def("daojia.token.default_ttl", func() { dj.Token.DefaultTTL = 2 * time.Hour })
	def("daojia.token.invalid_codes", func() { dj.Token.InvalidCodes = []string{"2"} })

	cacheDefaults(c, def, set)
	tracingDefaults(c, def)
	identityDefaults(c, def)

	m := &c.Masking
	def("masking.fields", func() { m.Fields = []string{"phone", "mobile", "userPhone", "contactPhone"} })
	def("masking.max_body_bytes", func() { m.MaxBodyBytes = 4 << 20 })

	co := &c.CORS
	def("cors.allow_methods", func() {
		co.AllowMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	})
	def("cors.allow_headers", func() {
		co.AllowHeaders = []string{"Content-Type", "X-Api-Key", "X-Timestamp", "X-Nonce", "X-Signature", "X-Request-Id"}
	})
	def("cors.expose_headers", func() { co.ExposeHeaders = []string{"X-Request-Id", "Retry-After"} })
	def("cors.max_age", func() { co.MaxAge = 10 * time.Minute })

	def("log.level", func() { c.Log.Level = "info" })
	def("log.format", func() { c.Log.Format = "json" })
	def("log.access_flush_interval", func() { c.Log.AccessFlushInterval = time.Second })
}

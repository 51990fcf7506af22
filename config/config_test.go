package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Two valid api_key_sha256 values, given to test files through ${KEY_A} and ${KEY_B}.
var (
	keyA = strings.Repeat("a", 64)
	keyB = strings.Repeat("b", 64)
)

// envOf returns a lookupEnv over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

var testEnv = envOf(map[string]string{
	"KEY_A":                 keyA,
	"KEY_B":                 keyB,
	"SUNSHINE_SECRET":       "sunshine-s3cret",
	"DAOJIA_SERVICE_SECRET": "daojia-s3cret",
	"WECHAT_APP_SECRET":     "wechat-s3cret",
	DemoKeyEnv:              keyA,
})

// problemsOf parses yaml with testEnv and returns its problems as
// `signgate validate` prints them; nil when the file is valid.
func problemsOf(t *testing.T, yaml string) []string {
	t.Helper()
	cfg, err := Parse([]byte(yaml), testEnv)
	if err == nil {
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error is %T, want Errors: %v", err, err)
	}
	if cfg != nil {
		t.Error("Parse returned a config along with its errors")
	}
	out := make([]string, len(errs))
	for i, p := range errs {
		out[i] = p.String()
	}
	return out
}

// mustParse parses yaml with testEnv and fails the test on any problem.
func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(yaml), testEnv)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg
}

func TestRepoConfigValidates(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, string(data))
	// Spot checks that the documented example says what its comments say.
	if got := cfg.Clients[1].Secret.Reveal(); got != "sunshine-s3cret" {
		t.Errorf("clients[1].secret = %q, want the value of SUNSHINE_SECRET", got)
	}
	if got := cfg.Redis.Password.Reveal(); got != "" {
		t.Errorf("redis.password = %q, want empty from ${REDIS_PASSWORD:-}", got)
	}
	if !cfg.Roles["provider"].AllowSet.Match("PUT", "/api/orders/42/status") {
		t.Error("role provider does not allow PUT /api/orders/42/status")
	}
	if got := cfg.InlineSecrets(); len(got) != 0 {
		t.Errorf("InlineSecrets = %q, want none: every secret is a ${ENV} reference", got)
	}
}

// InlineSecrets names the secret fields written in the file, which then needs the care
// of a key file; references to the environment, set or defaulted, do not count.
func TestInlineSecrets(t *testing.T) {
	cfg := mustParse(t, `
redis: {addrs: ["127.0.0.1:6379"], password: "${REDIS_PASSWORD:-}"}
clients:
  - {id: a, api_key_sha256: "`+strings.Repeat("a", 64)+`", secret: "written-here", signature: hmac-sha256, roles: [r]}
  - {id: b, api_key_sha256: "`+strings.Repeat("b", 64)+`", secret: "${SUNSHINE_SECRET}", signature: hmac-sha256, roles: [r]}
roles: {r: {allow: ["GET /x"]}}
upstreams: {u: {targets: ["http://127.0.0.1:1"]}}
routes: [{name: x, match: "GET /x", upstream: u}]
daojia: {base_url: "http://127.0.0.1:1", service_key: "k", service_secret: "also-written-here"}
`)
	want := []string{"clients[0].secret", "daojia.service_secret"}
	if got := cfg.InlineSecrets(); !slices.Equal(got, want) {
		t.Errorf("InlineSecrets = %q, want %q", got, want)
	}
}

func TestRepoConfigNeedsItsSecrets(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data, envOf(nil))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse with no environment: err = %v, want Errors", err)
	}
	for _, name := range []string{"SUNSHINE_SECRET", "DAOJIA_SERVICE_SECRET", "WECHAT_APP_SECRET"} {
		if !strings.Contains(err.Error(), "environment variable "+name+" is not set") {
			t.Errorf("no problem names %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "REDIS_PASSWORD") {
		t.Errorf("REDIS_PASSWORD has a default and must not be reported:\n%v", err)
	}
}

func TestDefaultYAML(t *testing.T) {
	t.Run("valid with the demo key hash", func(t *testing.T) {
		cfg, err := Parse(DefaultYAML, envOf(map[string]string{DemoKeyEnv: keyB}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Clients[0].ID != "demo" || cfg.Clients[0].APIKeySHA256 != keyB {
			t.Errorf("demo client = %+v", cfg.Clients[0])
		}
		if cfg.Upstreams["echo"].Health.Interval != 5*time.Second {
			t.Errorf("echo health interval = %v, want 5s", cfg.Upstreams["echo"].Health.Interval)
		}
		if cfg.TLS.Mode != "self_signed" || cfg.Server.HTTPListen != ":8080" {
			t.Errorf("tls.mode = %q, http_listen = %q", cfg.TLS.Mode, cfg.Server.HTTPListen)
		}
	})
	t.Run("names the missing variable without it", func(t *testing.T) {
		_, err := Parse(DefaultYAML, envOf(nil))
		want := "environment variable " + DemoKeyEnv + " is not set"
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Path != "clients[0].api_key_sha256" || errs[0].Msg != want {
			t.Errorf("err = %v, want one problem at clients[0].api_key_sha256: %s", err, want)
		}
	})
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Run("reads a file and the process environment", func(t *testing.T) {
		t.Setenv("SIGNGATE_TEST_LISTEN", ":9443")
		path := filepath.Join(dir, "ok.yaml")
		if err := os.WriteFile(path, []byte("server:\n  listen: ${SIGNGATE_TEST_LISTEN}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Server.Listen != ":9443" {
			t.Errorf("listen = %q, want :9443", cfg.Server.Listen)
		}
	})
	t.Run("missing file is fs.ErrNotExist", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "absent.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("bad content is Errors", func(t *testing.T) {
		path := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(path, []byte("serve:\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		var errs Errors
		if !errors.As(err, &errs) || err.Error() != `serve (line 1): unknown key "serve"` {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, `
clients:
  - {id: a, api_key_sha256: "${KEY_A}", roles: [r]}
roles:
  r: {}
rate_limits:
  - {key: ip, rate: 10/m}
  - {key: ip, rate: 0.5/s, burst: 0}
upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
`)
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", cfg.Server.Listen, ":8443"},
		{"server.http_listen", cfg.Server.HTTPListen, ":8080"},
		{"server.admin_listen", cfg.Server.AdminListen, "127.0.0.1:9090"},
		{"server.max_body_bytes", cfg.Server.MaxBodyBytes, int64(1 << 20)},
		{"server.shutdown_timeout", cfg.Server.ShutdownTimeout, 30 * time.Second},
		{"server.read_header_timeout", cfg.Server.ReadHeaderTimeout, 10 * time.Second},
		{"server.read_timeout", cfg.Server.ReadTimeout, time.Duration(0)},
		{"server.write_timeout", cfg.Server.WriteTimeout, time.Duration(0)},
		{"server.idle_timeout", cfg.Server.IdleTimeout, 120 * time.Second},
		{"server.max_header_bytes", cfg.Server.MaxHeaderBytes, 65536},
		{"tls.mode", cfg.TLS.Mode, "self_signed"},
		{"tls.min_version", cfg.TLS.MinVersion, "1.2"},
		{"tls.ca", cfg.TLS.CA, "https://acme-v02.api.letsencrypt.org/directory"},
		{"tls.storage_dir", cfg.TLS.StorageDir, "/var/lib/signgate"},
		{"redis.key_prefix", cfg.Redis.KeyPrefix, "signgate:"},
		{"redis.timeout", cfg.Redis.Timeout, 500 * time.Millisecond},
		{"auth.timestamp_skew", cfg.Auth.TimestampSkew, 10 * time.Minute},
		{"auth.nonce_ttl", cfg.Auth.NonceTTL, 20 * time.Minute},
		{"clients[0].signature", cfg.Clients[0].Signature, "none"},
		{"ratelimit.redis_failure", cfg.RateLimit.RedisFailure, "local"},
		{"ratelimit.ipv6_prefix", cfg.RateLimit.IPv6Prefix, 64},
		{"rate_limits[0].burst", cfg.RateLimits[0].Burst, 10},
		{"rate_limits[0] limit", cfg.RateLimits[0].Limit, 10.0 / 60},
		{"rate_limits[0] period", cfg.RateLimits[0].Period, time.Minute},
		{"rate_limits[1].burst (0 means the default)", cfg.RateLimits[1].Burst, 1},
		{"upstreams.backend.dial_timeout", cfg.Upstreams["backend"].DialTimeout, 3 * time.Second},
		{"upstreams.backend.response_timeout", cfg.Upstreams["backend"].ResponseTimeout, 15 * time.Second},
		{"upstreams.backend.retries", cfg.Upstreams["backend"].Retries, 1},
		{"upstreams.backend.health.path", cfg.Upstreams["backend"].Health.Path, ""},
		{"upstreams.backend.health.interval", cfg.Upstreams["backend"].Health.Interval, 10 * time.Second},
		{"upstreams.backend.health.timeout", cfg.Upstreams["backend"].Health.Timeout, 2 * time.Second},
		{"upstreams.backend.passive.max_fails", cfg.Upstreams["backend"].Passive.MaxFails, 3},
		{"upstreams.backend.passive.eject_for", cfg.Upstreams["backend"].Passive.EjectFor, 30 * time.Second},
		{"daojia.version", cfg.Daojia.Version, "v1"},
		{"daojia.timeout", cfg.Daojia.Timeout, 10 * time.Second},
		{"daojia.token.path", cfg.Daojia.Token.Path, "/api/{version}/token/getAccessToken"},
		{"daojia.token.refresh_before", cfg.Daojia.Token.RefreshBefore, 5 * time.Minute},
		{"daojia.token.default_ttl", cfg.Daojia.Token.DefaultTTL, 2 * time.Hour},
		{"daojia.token.invalid_codes", fmt.Sprint(cfg.Daojia.Token.InvalidCodes), "[2]"},
		{"masking.fields", fmt.Sprint(cfg.Masking.Fields), "[phone mobile userPhone contactPhone]"},
		{"masking.max_body_bytes", cfg.Masking.MaxBodyBytes, int64(4 << 20)},
		{"cors.allow_origins", len(cfg.CORS.AllowOrigins), 0},
		{"cors.allow_methods", fmt.Sprint(cfg.CORS.AllowMethods), "[GET POST PUT PATCH DELETE OPTIONS]"},
		{"cors.allow_headers", fmt.Sprint(cfg.CORS.AllowHeaders), "[Content-Type X-Api-Key X-Timestamp X-Nonce X-Signature X-Request-Id]"},
		{"cors.expose_headers", fmt.Sprint(cfg.CORS.ExposeHeaders), "[X-Request-Id Retry-After]"},
		{"cors.max_age", cfg.CORS.MaxAge, 10 * time.Minute},
		{"log.level", cfg.Log.Level, "info"},
		{"log.format", cfg.Log.Format, "json"},
		{"log.audit_file", cfg.Log.AuditFile, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestExplicitValuesOverrideDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		got  func(*Config) any
		want any
	}{
		{"absent http_listen is :8080", "server: {listen: \":8443\"}\n",
			func(c *Config) any { return c.Server.HTTPListen }, ":8080"},
		{`http_listen "" disables it`, "server:\n  http_listen: \"\"\n",
			func(c *Config) any { return c.Server.HTTPListen }, ""},
		{"http_listen with no value is absent", "server:\n  http_listen:\n",
			func(c *Config) any { return c.Server.HTTPListen }, ":8080"},
		{"nonce_ttl follows a given skew", "auth:\n  timestamp_skew: 2m\n",
			func(c *Config) any { return c.Auth.NonceTTL }, 4 * time.Minute},
		{"retries 0 turns retries off", "upstreams:\n  b: {targets: [\"http://b\"], retries: 0}\n",
			func(c *Config) any { return c.Upstreams["b"].Retries }, 0},
		{"max_fails 0 never ejects", "upstreams:\n  b: {targets: [\"http://b\"], passive: {max_fails: 0}}\n",
			func(c *Config) any { return c.Upstreams["b"].Passive.MaxFails }, 0},
		{"empty masking.fields masks no field", "masking:\n  fields: []\n",
			func(c *Config) any { return len(c.Masking.Fields) }, 0},
		{"empty invalid_codes", "daojia:\n  token: {invalid_codes: []}\n",
			func(c *Config) any { return len(c.Daojia.Token.InvalidCodes) }, 0},
		{"empty section keeps defaults", "tls:\nserver: {}\n",
			func(c *Config) any { return c.TLS.Mode + " " + c.Server.Listen }, "self_signed :8443"},
		{"empty file is all defaults", "",
			func(c *Config) any { return c.Server.AdminListen }, "127.0.0.1:9090"},
		{"comment-only file is all defaults", "# nothing yet\n",
			func(c *Config) any { return c.Log.Level }, "info"},
		{"empty document is all defaults", "---\n",
			func(c *Config) any { return c.Log.Format }, "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got(mustParse(t, tt.yaml)); got != tt.want {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestPrecomputed(t *testing.T) {
	cfg := mustParse(t, `
upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
roles:
  provider: {allow: ["PUT /api/orders/*/status"]}
routes:
  - {name: orders, match: "GET /api/orders/*", upstream: backend}
rate_limits:
  - {key: client, rate: 3600/h}
`)
	if !cfg.Routes[0].Pattern.Match("GET", "/api/orders/7") {
		t.Error("routes[0].Pattern does not match GET /api/orders/7")
	}
	set := cfg.Roles["provider"].AllowSet
	if !set.Match("PUT", "/api/orders/7/status") || set.Match("GET", "/api/orders/7/status") {
		t.Error("roles.provider.AllowSet does not follow its allow list")
	}
	if rl := cfg.RateLimits[0]; rl.Limit != 1 || rl.Period != time.Hour || rl.Burst != 3600 {
		t.Errorf("rate_limits[0] = %+v, want Limit 1/s, Period 1h, Burst 3600", rl)
	}
}

func TestSecretsDoNotLeak(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{
		"SUNSHINE_SECRET":       "sunshine-s3cret",
		"DAOJIA_SERVICE_SECRET": "daojia-s3cret",
		"REDIS_PASSWORD":        "redis-s3cret",
		"WECHAT_APP_SECRET":     "wechat-s3cret",
	})
	cfg, err := Parse(data, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		out := fmt.Sprintf(verb, cfg)
		for _, s := range []string{"sunshine-s3cret", "daojia-s3cret", "redis-s3cret", "wechat-s3cret"} {
			if strings.Contains(out, s) {
				t.Errorf("fmt %s of the config shows %q", verb, s)
			}
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"path and line", Problem{"routes[2].upstream", 41, `unknown upstream "bakend"`}, `routes[2].upstream (line 41): unknown upstream "bakend"`},
		{"path of an absent key", Problem{"daojia.base_url", 0, "required"}, "daojia.base_url: required"},
		{"line only, a syntax error", Problem{"", 3, "YAML syntax: oops"}, "line 3: YAML syntax: oops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	errs := Errors{tests[0].p, tests[1].p}
	if got, want := errs.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

// equalLines reports got and want one line each, which reads better than two long
// slices when a message changes.
func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

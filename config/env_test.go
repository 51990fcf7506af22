package config

import (
	"slices"
	"testing"
)

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"HOST": "db.internal", "EMPTY": ""})
	tests := []struct {
		name string
		in   string
		want string
		errs []string
	}{
		{"no reference", "plain value", "plain value", nil},
		{"set variable", "${HOST}:6379", "db.internal:6379", nil},
		{"default unused when set", "${HOST:-localhost}", "db.internal", nil},
		{"default when unset", "${PORT:-6379}", "6379", nil},
		{"default when empty", "${EMPTY:-x}", "x", nil},
		{"empty default", "${PASSWORD:-}", "", nil},
		{"set but empty without default", "${EMPTY}", "", nil},
		{"default may hold colons and slashes", "${URL:-http://a:1/b}", "http://a:1/b", nil},
		{"$$ is a literal $", "pa$$word", "pa$word", nil},
		{"$${X} is not a reference", "$${HOST}", "${HOST}", nil},
		{"lone $ kept", "a$b $", "a$b $", nil},
		{"two references", "${HOST}/${PORT:-1}", "db.internal/1", nil},
		{"missing variable", "${SUNSHINE_SECRET}", "", []string{"environment variable SUNSHINE_SECRET is not set"}},
		{"two missing variables", "${A}${B}", "", []string{"environment variable A is not set", "environment variable B is not set"}},
		{"unterminated", "${HOST", "${HOST", []string{`unterminated "${" (write $$ for a literal $)`}},
		{"bad name", "${1X}", "", []string{"bad environment variable reference ${1X} (want ${NAME} or ${NAME:-default}; $$ for a literal $)"}},
		{"empty name", "${}", "", []string{"bad environment variable reference ${} (want ${NAME} or ${NAME:-default}; $$ for a literal $)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := expand(tt.in, env)
			if len(tt.errs) == 0 && got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !slices.Equal(errs, tt.errs) {
				t.Errorf("expand(%q) problems = %q, want %q", tt.in, errs, tt.errs)
			}
		})
	}
}

func TestEnvInConfig(t *testing.T) {
	t.Run("missing variable reported at its key and line", func(t *testing.T) {
		equalLines(t, problemsOf(t, `roles:
  provider: {allow: ["* /api/**"]}
clients:
  - id: property-miniapp
    api_key_sha256: ${KEY_A}
    roles: [provider]
  - id: other
    api_key_sha256: ${KEY_B}
    signature: hmac-sha256
    secret: ${OTHER_SECRET}
    roles: [provider]
`), []string{"clients[1].secret (line 10): environment variable OTHER_SECRET is not set"})
	})
	t.Run("default fills an integer", func(t *testing.T) {
		cfg := mustParse(t, "server:\n  max_body_bytes: ${MAX_BODY:-2048}\n")
		if cfg.Server.MaxBodyBytes != 2048 {
			t.Errorf("max_body_bytes = %d, want 2048", cfg.Server.MaxBodyBytes)
		}
	})
	t.Run("variable fills a duration and a bool", func(t *testing.T) {
		cfg, err := Parse([]byte("server:\n  shutdown_timeout: ${GRACE}\n  pprof: ${PPROF}\n"),
			envOf(map[string]string{"GRACE": "45s", "PPROF": "true"}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Server.ShutdownTimeout.String() != "45s" || !cfg.Server.Pprof {
			t.Errorf("shutdown_timeout = %v, pprof = %v", cfg.Server.ShutdownTimeout, cfg.Server.Pprof)
		}
	})
	t.Run("expanded value is type-checked", func(t *testing.T) {
		equalLines(t, problemsOf(t, "server:\n  max_body_bytes: ${SIZE:-1MB}\n"),
			[]string{`server.max_body_bytes (line 2): want an integer, got "1MB"`})
	})
	t.Run("$$ in a secret", func(t *testing.T) {
		cfg := mustParse(t, "redis:\n  password: pa$$word\n")
		if got := cfg.Redis.Password.Reveal(); got != "pa$word" {
			t.Errorf("password = %q, want pa$word", got)
		}
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		cfg := mustParse(t, "upstreams:\n  ${NAME}: {targets: [\"http://a\"]}\n")
		if _, ok := cfg.Upstreams["${NAME}"]; !ok {
			t.Errorf("upstreams = %v, want the key ${NAME} as written", cfg.Upstreams)
		}
	})
}

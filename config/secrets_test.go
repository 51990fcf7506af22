package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/testsecret"
)

// What `signgate validate` prints is Errors' text, one Problem per line. A secret
// comes from the environment, and an operator can put its reference in the wrong
// place as easily as in the right one; no problem text may hold its value either
// way: not for a secret field with a problem of its own, and not for a non-secret
// field that happens to receive a secret and is wrong.
func TestProblemsNeverHoldASecret(t *testing.T) {
	env := envOf(map[string]string{
		"PARTNER_SECRET": testsecret.PartnerSecret,
		"DAOJIA_SECRET":  testsecret.DaojiaSecret,
		"REDIS_PASSWORD": testsecret.RedisPassword,
	})
	tests := []struct {
		name, yaml string
	}{
		{"secrets in their places, other problems around them", `
server: {lissen: ":1"}
redis: {addrs: ["nohostport"], password: "${REDIS_PASSWORD}"}
clients:
  - {id: p, api_key_sha256: "short", secret: "${PARTNER_SECRET}", signature: hmac-sha256, roles: [nobody]}
daojia: {base_url: "ftp://x", service_key: "", service_secret: "${DAOJIA_SECRET}"}
`},
		{"a secret where a list belongs", `
redis: {addrs: "${REDIS_PASSWORD}"}
`},
		{"a secret given to a field that takes a list of names", `
clients:
  - {id: p, api_key_sha256: "short", roles: ["${PARTNER_SECRET}"]}
`},
		{"a secret as an unknown key's value", `
clients:
  - {id: p, api_key_sha256: "short", secrit: "${PARTNER_SECRET}"}
`},
		{"a secret given to an enum", `
clients:
  - {id: p, api_key_sha256: "short", signature: "${PARTNER_SECRET}"}
tls: {mode: "${DAOJIA_SECRET}"}
`},
		{"a secret given to a duration and a number", `
server: {shutdown_timeout: "${REDIS_PASSWORD}", max_body_bytes: "${PARTNER_SECRET}"}
`},
		{"a secret given to a URL and an address", `
upstreams: {b: {targets: ["${PARTNER_SECRET}"]}}
server: {listen: "${DAOJIA_SECRET}"}
`},
		{"a secret given to a route pattern and a rate", `
routes: [{name: r, match: "${PARTNER_SECRET}", upstream: b}]
rate_limits: [{key: ip, rate: "${DAOJIA_SECRET}"}]
`},
		{"a secret where a secret goes, but of the wrong type", `
clients:
  - {id: p, api_key_sha256: "short", secret: ["${PARTNER_SECRET}"]}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), env)
			if err == nil {
				t.Fatalf("no problem found in %s", tt.yaml)
			}
			out := err.Error()
			if found := testsecret.Find([]byte(out)); len(found) > 0 {
				t.Errorf("the problems hold %q:\n%s", found, out)
			}
			_ = cfg
			if strings.Contains(tt.name, "enum") && !strings.Contains(out, "got the value of ${PARTNER_SECRET}") {
				t.Errorf("the problem does not name the variable instead: %s", out)
			}
		})
	}
	// And a valid config with every secret set prints none of them, whatever the verb.
	cfg, err := Parse([]byte(`
redis: {addrs: ["127.0.0.1:6379"], password: "${REDIS_PASSWORD}"}
clients:
  - {id: p, api_key_sha256: "`+strings.Repeat("a", 64)+`", secret: "${PARTNER_SECRET}", signature: hmac-sha256, roles: [r]}
roles: {r: {allow: ["GET /x"]}}
daojia: {base_url: "https://x.example", service_key: "k", service_secret: "${DAOJIA_SECRET}"}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if found := testsecret.Find(fmt.Appendf(nil, verb, cfg)); len(found) > 0 {
			t.Errorf("%s of the config holds %q", verb, found)
		}
	}
}

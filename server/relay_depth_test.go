package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
)

// A relay route mounted deeper than one segment relays what follows its whole prefix:
// POST /partners/daojia/serviceUser/getAllServiceUser is 58到家's
// serviceUser/getAllServiceUser, not "daojia/serviceUser/…" under a one-segment prefix.
func TestRelayMountedDeep(t *testing.T) {
	sb := daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})
	platform := httptest.NewServer(sb)
	t.Cleanup(platform.Close)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [app]}
roles:
  app: {allow: ["POST /partners/daojia/**"]}
daojia: {base_url: %q, service_key: %q, service_secret: %q, timeout: 2s}
routes:
  - {name: relay, match: "POST /partners/daojia/**", daojia: relay}
`, auth.HashKey(appKey), platform.URL, djKey, djSecret))

	resp, body := g.do(t, "POST", "/partners/daojia/serviceUser/getAllServiceUser", appKey, strings.NewReader(`{}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"code":0`) {
		t.Fatalf("deep relay call: %d %s, want 58到家's answer", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	for _, p := range []string{"/partners/daojia/token/getAccessToken", "/partners/daojia/TOKEN/getaccesstoken"} {
		resp, body = g.do(t, "POST", p, appKey, strings.NewReader(`{}`), "Content-Type", "application/json")
		wantEnvelopeAnswer(t, p, resp.StatusCode, resp.Header, body, http.StatusNotFound, "no_route")
	}
	if n := sb.TokenFetches(); n != 1 {
		t.Fatalf("%d token fetches, want the relay's own one", n)
	}
}

func TestRelayPrefix(t *testing.T) {
	for match, want := range map[string]string{
		"POST /daojia/**":          "/daojia/",
		"POST /partners/daojia/**": "/partners/daojia/",
		"* /a/b/c/**":              "/a/b/c/",
		"POST /**":                 "/",
	} {
		if got := relayPrefix(match); got != want {
			t.Errorf("relayPrefix(%q) = %q, want %q", match, got, want)
		}
	}
}

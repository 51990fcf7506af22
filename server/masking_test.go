package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/internal/leakcheck"
)

const (
	opsKey = "ops-key-1234567890"
	// orderList is shaped like the backend's answer to a provider: owners' phones
	// as strings, as numbers, in free text, with +86, and Unicode escapes.
	orderList = `{"code":0,"data":[{"orderId":"2026112300012","service":"日常保洁","owner":{"name":"\u5f20\u4e09","phone":"13812345678"},` +
		`"contactPhone":13912345678,"remark":"到了请打 +86 137-1234-5678 谢谢","price":"50.00"},` +
		`{"orderId":"2026112300013","owner":{"name":"李四","mobile":"+8615888888888"},"staff":[{"name":"王阿姨","userPhone":"18600001111"}]}]}`
)

// mobileRE finds a mainland mobile number that is not part of a longer digit run.
var mobileRE = regexp.MustCompile(`(^|[^0-9])1[3-9][0-9]{9}([^0-9]|$)`)

func maskingConfig(upstreamURL, extra string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, roles: [provider]}
  - {id: ops-console, api_key_sha256: %q, roles: [ops]}
roles:
  resident_app: {allow: ["* /api/**"]}
  provider: {allow: ["* /api/**"], mask: true}
  ops: {allow: ["* /api/**"], unmask: true}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: staff-create, match: "POST /api/staff", upstream: backend, mask_request: true}
  - {name: api, match: "* /api/**", upstream: backend}
masking:
  fields: [phone, mobile, userPhone, contactPhone]
  detect: [cn_mobile]
  max_body_bytes: 4096
%s`, auth.HashKey(appKey), auth.HashKey(providerKey), auth.HashKey(opsKey), upstreamURL, extra)
}

// ordersUpstream answers orderList (gzip when asked), echoes request bodies on
// POST, and serves a few awkward bodies.
func ordersUpstream(t *testing.T) (*httptest.Server, *sync.Map) {
	seen := &sync.Map{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store("accept-encoding", r.Header.Get("Accept-Encoding"))
		switch r.URL.Path {
		case "/api/staff":
			b, _ := io.ReadAll(r.Body)
			seen.Store("staff-body", string(b))
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"code":0}`))
		case "/api/big":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"phone":"13812345678","pad":"` + strings.Repeat("x", 5000) + `"}`))
		case "/api/broken":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"phone":"13812345678", oops`))
		case "/api/note":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("业主电话 13812345678，备用 139-1234-5678"))
		default:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("ETag", `"v1"`)
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				zw.Write([]byte(orderList))
				zw.Close()
				return
			}
			w.Write([]byte(orderList))
		}
	}))
	t.Cleanup(up.Close)
	return up, seen
}

func TestProviderSeesMaskedPhones(t *testing.T) {
	up, seen := ordersUpstream(t)
	g := startGateway(t, maskingConfig(up.URL, ""))

	t.Run("provider role gets every phone masked, the rest byte for byte", func(t *testing.T) {
		resp, body := g.do(t, "GET", "/api/orders", providerKey, nil, "Accept-Encoding", "identity")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if m := mobileRE.Find(body); m != nil {
			t.Fatalf("a full mobile number reached the provider: %q in %s", m, body)
		}
		for _, want := range []string{`"phone":"138****5678"`, `"contactPhone":"139****5678"`, `+86 137-****-5678`,
			`"mobile":"+86158****8888"`, `"userPhone":"186****1111"`, `"name":"\u5f20\u4e09"`, `"orderId":"2026112300012"`, `"price":"50.00"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("masked body lacks %s:\n%s", want, body)
			}
		}
		if resp.Header.Get("ETag") == `"v1"` {
			t.Error("the upstream's ETag was kept for a changed body")
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
		}
	})
	t.Run("gzip from the upstream is decoded, masked and re-encoded", func(t *testing.T) {
		req, _ := http.NewRequest("GET", g.url+"/api/orders", nil)
		req.Header.Set("X-Api-Key", providerKey)
		req.Header.Set("Accept-Encoding", "gzip, br")
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, _ := seen.Load("accept-encoding"); got != "gzip" {
			t.Errorf("upstream was asked for %q, want gzip only", got)
		}
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip back", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		if mobileRE.Match(plain) || !strings.Contains(string(plain), `"phone":"138****5678"`) {
			t.Fatalf("gzip body not masked: %s", plain)
		}
	})
	t.Run("a client without a mask role sees the data as the backend sent it", func(t *testing.T) {
		_, body := g.do(t, "GET", "/api/orders", appKey, nil, "Accept-Encoding", "identity")
		if string(body) != orderList {
			t.Fatalf("resident app got %s", body)
		}
	})
	t.Run("text bodies are masked by pattern", func(t *testing.T) {
		_, body := g.do(t, "GET", "/api/note", providerKey, nil)
		if string(body) != "业主电话 138****5678，备用 139-****-5678" {
			t.Fatalf("text body %q", body)
		}
	})
	t.Run("JSON that does not parse is masked as text, not passed through", func(t *testing.T) {
		_, body := g.do(t, "GET", "/api/broken", providerKey, nil)
		if mobileRE.Match(body) {
			t.Fatalf("broken JSON passed a number through: %s", body)
		}
	})
	t.Run("a body over masking.max_body_bytes is refused with 502", func(t *testing.T) {
		resp, body := g.do(t, "GET", "/api/big", providerKey, nil)
		if resp.StatusCode != 502 || code(t, body) != "upstream_error" || mobileRE.Match(body) {
			t.Fatalf("%d %s, want 502 upstream_error", resp.StatusCode, body)
		}
		if len(g.logs.lines(t, "response refused: it must be masked and cannot be")) == 0 {
			t.Error("no log line says why the response was refused")
		}
	})
	t.Run("mask_request masks the body the upstream receives", func(t *testing.T) {
		resp, _ := g.do(t, "POST", "/api/staff", appKey, strings.NewReader(`{"name":"王阿姨","userPhone":"18600001111"}`),
			"Content-Type", "application/json")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got, _ := seen.Load("staff-body"); got != `{"name":"王阿姨","userPhone":"186****1111"}` {
			t.Fatalf("upstream got %v", got)
		}
	})
}

func TestUnmaskIsAudited(t *testing.T) {
	up, _ := ordersUpstream(t)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	g := startGateway(t, maskingConfig(up.URL, fmt.Sprintf("log: {audit_file: %q}\n", auditFile)))
	resp, body := g.do(t, "GET", "/api/orders?phone=13812345678", opsKey, nil, "Accept-Encoding", "identity")
	if resp.StatusCode != 200 || string(body) != orderList {
		t.Fatalf("ops role got %d %s, want the full values", resp.StatusCode, body)
	}
	g.do(t, "GET", "/api/orders", providerKey, nil) // masked: no audit line
	audit, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(audit)), "\n")
	if len(lines) != 1 {
		t.Fatalf("audit log has %d lines, want 1:\n%s", len(lines), audit)
	}
	for _, want := range []string{`"msg":"audit"`, `"client":"ops-console"`, `"role":"ops"`, `"route":"api"`,
		`"request_id":"` + resp.Header.Get("X-Request-Id") + `"`, `"time":`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("audit line lacks %s: %s", want, lines[0])
		}
	}
	access := g.logs.lines(t, "request")
	if q, _ := access[0]["query"].(string); q != "phone=138****5678" {
		t.Errorf("access log query = %q, want the phone masked", q)
	}
}

// TestRelayAnswersMaskedAndAudited: 58到家's answers through the relay follow the
// caller's role like proxied answers do: masked for a mask role, full and audited
// for an unmask role.
func TestRelayAnswersMaskedAndAudited(t *testing.T) {
	platform := httptest.NewServer(daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"}))
	defer platform.Close()
	up, _ := ordersUpstream(t)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	cfg := strings.Replace(maskingConfig(up.URL, fmt.Sprintf(`log: {audit_file: %q}
daojia: {base_url: %q, service_key: %q, service_secret: %q, timeout: 2s}
`, auditFile, platform.URL, djKey, djSecret)),
		`  - {name: api, match: "* /api/**", upstream: backend}`,
		`  - {name: api, match: "* /api/**", upstream: backend}
  - {name: relay, match: "POST /daojia/**", daojia: relay}`, 1)
	cfg = strings.ReplaceAll(cfg, `allow: ["* /api/**"]`, `allow: ["* /api/**", "POST /daojia/**"]`)
	g := startGateway(t, cfg)

	resp, b := g.do(t, "POST", "/daojia/serviceUser/saveServiceUser", opsKey,
		strings.NewReader(`{"userId":"u1","userName":"张三","userPhone":"15888888888"}`), "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("save: %d %s", resp.StatusCode, b)
	}
	resp, b = g.do(t, "POST", "/daojia/serviceUser/getAllServiceUser", providerKey, strings.NewReader(`{}`))
	if resp.StatusCode != 200 || !strings.Contains(string(b), "158****8888") || strings.Contains(string(b), "15888888888") {
		t.Fatalf("provider (mask) through the relay: %d %s, want the phone masked", resp.StatusCode, b)
	}
	if !json.Valid(b) {
		t.Fatalf("masked relay answer is not JSON: %s", b)
	}
	resp, b = g.do(t, "POST", "/daojia/serviceUser/getAllServiceUser", opsKey, strings.NewReader(`{}`))
	if resp.StatusCode != 200 || !strings.Contains(string(b), "15888888888") {
		t.Fatalf("ops (unmask) through the relay: %d %s, want the full phone", resp.StatusCode, b)
	}
	audit, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(audit), `"msg":"audit"`); n != 2 ||
		!strings.Contains(string(audit), `"method":"POST","path":"/daojia/serviceUser/getAllServiceUser","route":"relay"`) {
		t.Fatalf("audit log, want two relay lines with method and path:\n%s", audit)
	}
}

// maskedRelayGateway is a gateway relaying a mask role (providerKey) to a 58到家
// stand-in whose token endpoint hands out a token and whose every other path
// answer serves (JSON); extra is appended to the config.
func maskedRelayGateway(t *testing.T, extra string, answer http.HandlerFunc) *testGateway {
	t.Helper()
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/token/getAccessToken" {
			io.WriteString(w, `{"code":0,"message":"ok","data":{"accessToken":"tok-relay-masked","expiresIn":7200}}`)
			return
		}
		answer(w, r)
	}))
	t.Cleanup(platform.Close)
	return startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: provider, api_key_sha256: %q, roles: [masked]}
roles:
  masked: {allow: ["POST /daojia/**"], mask: true}
daojia: {base_url: %q, service_key: %q, service_secret: %q, timeout: 2s}
routes:
  - {name: relay, match: "POST /daojia/**", daojia: relay}
`, auth.HashKey(providerKey), platform.URL, djKey, djSecret)+extra)
}

// A 58到家 answer through the relay reaches a mask role with no full number in any
// header, not only in its body: the relay passes on none of 58到家's own headers.
func TestRelayAnswerHeadersMasked(t *testing.T) {
	g := maskedRelayGateway(t, "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Contact", "call 13812345678")
		w.Header().Set("Link", `</users/13912345678>; rel="self"`)
		io.WriteString(w, `{"code":0,"message":"ok","data":{"userPhone":"15888888888"}}`)
	})
	resp, body := g.do(t, "POST", "/daojia/serviceUser/getServiceUser", providerKey, strings.NewReader(`{}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "158****8888") {
		t.Fatalf("relay: %d %s", resp.StatusCode, body)
	}
	for name, values := range resp.Header {
		for _, v := range values {
			if len(leakcheck.FindString(name+": "+v)) > 0 {
				t.Errorf("header %s: %q holds a full number", name, v)
			}
		}
	}
	if got := resp.Header.Get("X-Contact"); got != "" && got != "call 138****5678" {
		t.Errorf("X-Contact %q, want it masked or not passed on", got)
	}
}

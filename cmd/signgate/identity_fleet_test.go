package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testredis"
)

// TestWeChatSessionsAcrossProcesses: two gateway processes on one redis-server and
// `signgate sandbox` standing in for WeChat. An owner logs in on one; her session
// works on the other; a logout on the second ends it on the first within a second;
// the upstream learns her openid and never a caller's own; and nothing a gateway
// logs holds the session token or a session_key.
func TestWeChatSessionsAcrossProcesses(t *testing.T) {
	rs := testredis.Start(t)
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"openid": r.Header.Get("X-WX-OpenID"), "authorization": r.Header.Get("Authorization")})
	})}
	upURL := serveOnLoopback(t, &up)
	addrs, release := reserveLoopbackAddrs(t, 1)
	sandboxAddr := addrs[0]
	const appid = "wx00112233445566ff"
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", shutdown_timeout: 2s}
tls: {mode: "off"}
redis: {addrs: [%q]}
clients:
  - {id: miniapp, api_key_sha256: %q, roles: [app]}
roles: {app: {allow: ["* /api/**", "POST /auth/wechat/*"]}}
upstreams: {backend: {targets: [%q]}}
wechat: {appid: %s, secret: fleet-wechat-secret, api_base: "http://%s", check_referer: true}
routes:
  - {name: wx-login, match: "POST /auth/wechat/login", wechat: login}
  - {name: wx-logout, match: "POST /auth/wechat/logout", wechat: logout}
  - {name: orders, match: "* /api/orders/**", upstream: backend, user: required}
`, rs.Addr, auth.HashKey("miniapp-key"), upURL, appid, sandboxAddr))
	release()
	startSandbox(t, sandboxAddr, cfg)
	a := startProcess(t, nil, "serve", "-config", cfg)
	b := startProcess(t, nil, "serve", "-config", cfg)
	client := &http.Client{Timeout: 5 * time.Second}
	call := func(p *gatewayProcess, method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+p.listen+path, strings.NewReader(body))
		req.Header.Set("X-Api-Key", "miniapp-key")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}

	// The mini-program's wx.login code, minted by the sandbox as WeChat would give it.
	resp, err := client.Post("http://"+sandboxAddr+"/sandbox/wechat/codes", "application/json", strings.NewReader(`{"user":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	var minted struct{ Code, OpenID string }
	json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if minted.Code == "" || minted.OpenID == "" {
		t.Fatalf("sandbox minted %+v", minted)
	}
	referer := "https://servicewechat.com/" + appid + "/3/page-frame.html"
	status, body := call(a, "POST", "/auth/wechat/login", `{"code":"`+minted.Code+`"}`, "Referer", referer)
	var login struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &login) != nil || login.Token == "" || login.ExpiresIn <= 0 {
		t.Fatalf("login on a: %d %s", status, body)
	}
	if status, body := call(a, "POST", "/auth/wechat/login", `{"code":"`+minted.Code+`"}`, "Referer", referer); status != http.StatusUnauthorized || !strings.Contains(body, `"invalid_code"`) {
		t.Errorf("the same code again: %d %s, want 401 invalid_code (WeChat's 40163)", status, body)
	}

	bearer := "Bearer " + login.Token
	status, body = call(b, "GET", "/api/orders/1", "", "Authorization", bearer, "X-WX-OpenID", "o-mallory")
	if status != http.StatusOK || !strings.Contains(body, `"openid":"`+minted.OpenID+`"`) || !strings.Contains(body, `"authorization":""`) {
		t.Fatalf("a's session on b: %d %s, want the upstream to see openid %s and no token", status, body, minted.OpenID)
	}
	if status, body := call(b, "POST", "/auth/wechat/logout", "", "Authorization", bearer); status != http.StatusOK {
		t.Fatalf("logout on b: %d %s", status, body)
	}
	deadline := time.Now().Add(time.Second)
	for {
		status, body := call(a, "GET", "/api/orders/1", "", "Authorization", bearer)
		if status == http.StatusUnauthorized && strings.Contains(body, `"invalid_session"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a still serves the session a second after the logout on b: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The gateways' own logs: every line is JSON; none holds the token.
	for _, p := range []*gatewayProcess{a, b} {
		for drained := false; !drained; {
			select {
			case m, ok := <-p.lines:
				if !ok {
					drained = true
					break
				}
				line, _ := json.Marshal(m)
				if strings.Contains(string(line), login.Token) || strings.Contains(string(line), "fleet-wechat-secret") {
					t.Errorf("a gateway log line holds the session token or the AppSecret: %s", line)
				}
			default:
				drained = true
			}
		}
	}
}

package wechat

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// get calls the sandbox's jscode2session with q and returns the status and answer.
func get(t *testing.T, base string, q url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + SandboxLoginPath + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return resp.StatusCode, a
}

func loginQuery(appid, secret, code string) url.Values {
	q := url.Values{"grant_type": {"authorization_code"}}
	for k, v := range map[string]string{"appid": appid, "secret": secret, "js_code": code} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func TestSandboxAnswersAsWeChat(t *testing.T) {
	sb, srv := startSandbox(t)
	code := mint(t, sb, SandboxCode{OpenID: "o-alice"})
	status, a := get(t, srv.URL, loginQuery(testAppID, testSecret, code))
	if status != 200 || a["openid"] != "o-alice" || a["session_key"] == nil || a["errcode"] != nil || a["unionid"] != nil {
		t.Fatalf("%d %v", status, a)
	}
	for _, tc := range []struct {
		name    string
		q       url.Values
		errcode float64
	}{
		{"the code again", loginQuery(testAppID, testSecret, code), 40163},
		{"a code never minted", loginQuery(testAppID, testSecret, "0123456789abcdef0123456789abcdef"), 40029},
		{"wrong appid", loginQuery("wx99999999aaaaaaaa", testSecret, mint(t, sb, SandboxCode{})), 40013},
		{"wrong secret", loginQuery(testAppID, "sgtest-wrong-Qe61", mint(t, sb, SandboxCode{})), 40125},
		{"no appid", loginQuery("", testSecret, "c"), 41002},
		{"no secret", loginQuery(testAppID, "", "c"), 41004},
		{"no code", loginQuery(testAppID, testSecret, ""), 41008},
		{"another grant_type", url.Values{"appid": {testAppID}, "secret": {testSecret}, "js_code": {"c"}, "grant_type": {"client_credential"}}, 40002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, a := get(t, srv.URL, tc.q)
			if status != 200 || a["errcode"] != tc.errcode || !strings.Contains(a["errmsg"].(string), "rid: ") {
				t.Errorf("%d %v, want errcode %v", status, a, tc.errcode)
			}
		})
	}
}

func TestSandboxCodesAreGoodOnceAndForAWhile(t *testing.T) {
	clock := newTestClock()
	sb := NewSandbox(SandboxOptions{AppID: testAppID, Secret: testSecret, Now: clock.Now, CodeTTL: time.Minute})
	srv := newHTTPTestServer(t, sb)
	c := newTestClient(t, srv, ClientOptions{})

	code := mint(t, sb, SandboxCode{})
	first, err := c.Code2Session(bg, code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Code2Session(bg, code); !isErrcode(err, 40163) {
		t.Errorf("the code twice: %v", err)
	}
	second, err := c.Code2Session(bg, mint(t, sb, SandboxCode{}))
	if err != nil {
		t.Fatal(err)
	}
	if first.OpenID != second.OpenID || first.SessionKey.Reveal() == second.SessionKey.Reveal() {
		t.Error("two logins of one user: want one openid and two session_keys")
	}

	late := mint(t, sb, SandboxCode{})
	clock.Advance(time.Minute)
	if _, err := c.Code2Session(bg, late); !isErrcode(err, 40029) {
		t.Errorf("an expired code: %v", err)
	}
}

func isErrcode(err error, errcode int) bool {
	ae, ok := err.(*APIError)
	return ok && ae.Errcode == errcode
}

func TestSandboxMintsCodesOverHTTP(t *testing.T) {
	sb, srv := startSandbox(t)
	post := func(body string) (int, map[string]string) {
		t.Helper()
		resp, err := http.Post(srv.URL+SandboxCodesPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a map[string]string
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a
	}
	status, a := post(`{"openid":"o-alice"}`)
	if status != 200 || a["openid"] != "o-alice" || len(a["code"]) != 32 {
		t.Fatalf("%d %v", status, a)
	}
	c := newTestClient(t, srv.URL, ClientOptions{})
	if s, err := c.Code2Session(bg, a["code"]); err != nil || s.OpenID != "o-alice" {
		t.Errorf("%+v %v", s, err)
	}

	// Without an openid, the same one for the same user, every time.
	_, x := post(``)
	_, y := post(`{}`)
	_, z := post(`{"user":"carol"}`)
	if x["openid"] != y["openid"] || x["openid"] != DeriveOpenID(sb.AppID(), "demo") || z["openid"] == x["openid"] || len(z["openid"]) != 28 {
		t.Errorf("derived openids %q %q %q", x["openid"], y["openid"], z["openid"])
	}

	for body, want := range map[string]int{
		`{"openid":"o alice"}`:    400,
		`{"opneid":"o-alice"}`:    400,
		`not json`:                400,
		strings.Repeat(" ", 5000): 413,
	} {
		if status, _ := post(body); status != want {
			t.Errorf("%.20q: %d, want %d", body, status, want)
		}
	}
	resp, _ := http.Get(srv.URL + SandboxCodesPath)
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET %s: %d", SandboxCodesPath, resp.StatusCode)
	}
}

func TestSandboxKeepsFewCodes(t *testing.T) {
	clock := newTestClock()
	sb := NewSandbox(SandboxOptions{MaxCodes: 3, Now: clock.Now})
	for range 3 {
		if _, _, err := sb.Mint(SandboxCode{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := sb.Mint(SandboxCode{}); err == nil {
		t.Error("a fourth code with three outstanding")
	}
	clock.Advance(DefaultSandboxCodeTTL)
	if _, _, err := sb.Mint(SandboxCode{}); err != nil {
		t.Errorf("after the others expired: %v", err)
	}
	if sb.AppID() != DemoAppID {
		t.Errorf("appid %q, want the demo's", sb.AppID())
	}
}

func TestSandboxMounts(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/", http.NotFoundHandler())
	sb := NewSandbox(SandboxOptions{})
	sb.Mount(mux)
	srv := newHTTPTestServer(t, mux)
	code, _, _ := sb.Mint(SandboxCode{})
	c, err := NewClient(ClientOptions{AppID: DemoAppID, Secret: DemoSecret, APIBase: srv})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Code2Session(bg, code); err != nil {
		t.Error(err)
	}
}

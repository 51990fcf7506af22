package daojia

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sandboxCall is one raw call to a Sandbox: system parameters and a daojiaJson,
// signed with secret unless sign is set.
type sandboxCall struct {
	path       string
	params     map[string]string
	daojiaJSON string // sent as a nested object; "" for none
	secret     string
	form       bool
}

func (sc sandboxCall) send(t *testing.T, env *sandboxEnv) (int, daojiaAnswer) {
	t.Helper()
	p := map[string]string{}
	for k, v := range sc.params {
		p[k] = v
	}
	if sc.daojiaJSON != "" {
		p["daojiaJson"] = sc.daojiaJSON
	}
	if _, given := p[SignParam]; !given {
		p[SignParam] = Sign(p, sc.secret)
	}
	var body, contentType string
	if sc.form {
		v := url.Values{}
		for k, s := range p {
			v.Set(k, s)
		}
		body, contentType = v.Encode(), "application/x-www-form-urlencoded"
	} else {
		var b strings.Builder
		b.WriteString("{")
		first := true
		for k, s := range p {
			if !first {
				b.WriteString(",")
			}
			first = false
			key, _ := json.Marshal(k)
			b.Write(key)
			b.WriteString(":")
			if k == "daojiaJson" {
				b.WriteString(s)
			} else {
				val, _ := json.Marshal(s)
				b.Write(val)
			}
		}
		b.WriteString("}")
		body, contentType = b.String(), "application/json"
	}
	resp, err := http.Post(env.server.URL+sc.path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a daojiaAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	return resp.StatusCode, a
}

func TestSandboxChecksEveryCall(t *testing.T) {
	env := newSandboxEnv(t, nil)
	now := env.clock.Now()
	system := func(edit func(map[string]string)) map[string]string {
		p := map[string]string{"serviceKey": testKey, "format": "json", "timestamp": Timestamp(now)}
		if edit != nil {
			edit(p)
		}
		return p
	}
	_, a := sandboxCall{path: "/api/v1/token/getAccessToken", params: system(nil), secret: testSecret}.send(t, env)
	var issued struct {
		AccessToken string
		ExpiresIn   int
	}
	if a.Code != 0 || json.Unmarshal(a.Data, &issued) != nil {
		t.Fatalf("token answer %+v", a)
	}
	if !regexp.MustCompile(`^[0-9A-F]{32}$`).MatchString(issued.AccessToken) || issued.ExpiresIn != 7200 {
		t.Fatalf("issued %+v, want 32 upper-case hex digits for 7200s", issued)
	}
	withToken := func(edit func(map[string]string)) map[string]string {
		return system(func(p map[string]string) {
			p["accessToken"] = issued.AccessToken
			if edit != nil {
				edit(p)
			}
		})
	}

	const users = "/api/v1/serviceUser/"
	tests := []struct {
		name     string
		call     sandboxCall
		status   int
		wantCode int
	}{
		{"token for a form body", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(nil), secret: testSecret, form: true}, 200, CodeOK},
		{"token signed with another secret", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(nil), secret: "nope"}, 200, CodeBadSign},
		{"token with a lower-case sign", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p[SignParam] = strings.ToLower(Sign(p, testSecret))
		})}, 200, CodeOK},
		{"timestamp 11 minutes old", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p["timestamp"] = Timestamp(now.Add(-11 * time.Minute))
		}), secret: testSecret}, 200, CodeBadTimestamp},
		{"timestamp 11 minutes ahead", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p["timestamp"] = Timestamp(now.Add(11 * time.Minute))
		}), secret: testSecret}, 200, CodeBadTimestamp},
		{"timestamp in UTC layout", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p["timestamp"] = now.UTC().Format(time.RFC3339)
		}), secret: testSecret}, 200, CodeBadParams},
		{"unknown serviceKey", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p["serviceKey"] = "1234"
		}), secret: testSecret}, 200, CodeBadParams},
		{"format xml", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p["format"] = "xml"
		}), secret: testSecret}, 200, CodeBadParams},
		{"no sign", sandboxCall{path: "/api/v1/token/getAccessToken", params: system(func(p map[string]string) {
			p[SignParam] = ""
		})}, 200, CodeBadParams},
		{"API call without accessToken", sandboxCall{path: users + "getAllServiceUser", params: system(nil), secret: testSecret}, 200, CodeBadParams},
		{"API call with an unknown accessToken", sandboxCall{path: users + "getAllServiceUser", params: system(func(p map[string]string) {
			p["accessToken"] = "64256A615F66CC8FBE38AFCFD26EA744"
		}), secret: testSecret}, 200, CodeInvalidToken},
		{"API call with a good accessToken", sandboxCall{path: users + "getAllServiceUser", params: withToken(nil), secret: testSecret}, 200, CodeOK},
		{"API call with a bad sign", sandboxCall{path: users + "getAllServiceUser", params: withToken(nil), secret: "nope"}, 200, CodeBadSign},
		{"save without daojiaJson", sandboxCall{path: users + "saveServiceUser", params: withToken(nil), secret: testSecret}, 200, CodeBadParams},
		{"save with a numeric userId", sandboxCall{path: users + "saveServiceUser", params: withToken(nil), daojiaJSON: `{"userId":7,"userName":"李四"}`, secret: testSecret}, 200, CodeOK},
		{"update by that numeric userId as a string", sandboxCall{path: users + "updateServiceUser", params: withToken(nil), daojiaJSON: `{"userId":"7","userAge":30}`, secret: testSecret}, 200, CodeOK},
		{"update an unknown user", sandboxCall{path: users + "updateServiceUser", params: withToken(nil), daojiaJSON: `{"userId":"8"}`, secret: testSecret}, 200, CodeNotFound},
		{"update without userId", sandboxCall{path: users + "updateServiceUser", params: withToken(nil), daojiaJSON: `{"userAge":30}`, secret: testSecret}, 200, CodeBadParams},
		{"daojiaJson given as a string", sandboxCall{path: users + "saveServiceUser", params: withToken(func(p map[string]string) {
			p["daojiaJson"] = `{"userName":"王五"}`
		}), secret: testSecret, form: true}, 200, CodeOK},
		{"unknown API", sandboxCall{path: users + "deleteServiceUser", params: withToken(nil), secret: testSecret}, 404, CodeNotFound},
		{"unknown version", sandboxCall{path: "/api/v2/serviceUser/getAllServiceUser", params: withToken(nil), secret: testSecret}, 404, CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := tt.call.send(t, env)
			if status != tt.status || a.Code != tt.wantCode {
				t.Fatalf("answered HTTP %d code %d (%s), want HTTP %d code %d", status, a.Code, a.Message, tt.status, tt.wantCode)
			}
		})
	}

	t.Run("expired token", func(t *testing.T) {
		env.clock.Advance(2*time.Hour + time.Second)
		now = env.clock.Now()
		_, a := sandboxCall{path: users + "getAllServiceUser", params: withToken(nil), secret: testSecret}.send(t, env)
		if a.Code != CodeInvalidToken || a.Message != "accessToken invalid" {
			t.Fatalf("answered %+v", a)
		}
	})
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(env.server.URL + users + "getAllServiceUser")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("GET answered %d", resp.StatusCode)
		}
	})
}

func TestSandboxDefaultsToTheDemoPartner(t *testing.T) {
	sb := NewSandbox(SandboxOptions{})
	if sb.o.ServiceKey != DemoServiceKey || sb.o.ServiceSecret != DemoServiceSecret || sb.tokenPath != "/api/v1/token/getAccessToken" {
		t.Fatalf("defaults %+v", sb.o)
	}
}

package daojia

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/secret"
)

// daojiaAnswer is 58到家's answer form, as a relay caller reads it.
type daojiaAnswer struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func decodeAnswer(t *testing.T, rec *httptest.ResponseRecorder) daojiaAnswer {
	t.Helper()
	var a daojiaAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d %q is not 58到家's form: %v", rec.Code, rec.Body, err)
	}
	return a
}

// envelope is the gateway's error answer.
type envelope struct {
	Code, Message string
	RequestID     string `json:"request_id"`
}

func decodeEnvelope(t *testing.T, rec *httptest.ResponseRecorder) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
		t.Fatalf("answer %d %q is not the error envelope: %v", rec.Code, rec.Body, err)
	}
	return e
}

func TestRelayRoundTrip(t *testing.T) {
	env := newSandboxEnv(t, nil)
	relay := env.client(t, nil).Relay("/daojia/")

	rec := relayPost(t, relay, "/daojia/serviceUser/saveServiceUser",
		"{\n  \"userName\": \"张XX\",\n  \"userPhone\": \"15888888888\",\n  \"userAge\": 18\n}")
	saved := decodeAnswer(t, rec)
	if rec.Code != 200 || saved.Code != 0 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("save answered %d %s (%s)", rec.Code, rec.Body, rec.Header().Get("Content-Type"))
	}
	var id struct{ UserID string }
	_ = json.Unmarshal(saved.Data, &id)
	if id.UserID == "" {
		t.Fatalf("save assigned no userId: %s", saved.Data)
	}

	rec = relayPost(t, relay, "/daojia/serviceUser/updateServiceUser", `{"userId":"`+id.UserID+`","userAge":19}`)
	if a := decodeAnswer(t, rec); a.Code != 0 {
		t.Fatalf("update answered %s", rec.Body)
	}
	rec = relayPost(t, relay, "/daojia/serviceUser/updateServiceUser", `{"userId":"nobody","userAge":19}`)
	if a := decodeAnswer(t, rec); rec.Code != 200 || a.Code != CodeNotFound {
		t.Fatalf("update of an unknown user answered %d %s", rec.Code, rec.Body)
	}

	rec = relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
	var users []map[string]any
	if a := decodeAnswer(t, rec); a.Code != 0 || json.Unmarshal(a.Data, &users) != nil {
		t.Fatalf("getAll answered %s", rec.Body)
	}
	if len(users) != 1 || users[0]["userId"] != id.UserID || users[0]["userName"] != "张XX" || users[0]["userAge"] != 19.0 {
		t.Fatalf("getAll listed %v", users)
	}
	if n := env.sandbox.TokenFetches(); n != 1 {
		t.Fatalf("%d token fetches for four calls, want 1", n)
	}
}

func TestRelayRefusesBadCalls(t *testing.T) {
	env := newSandboxEnv(t, nil)
	relay := env.client(t, nil).Relay("/daojia/")
	tests := []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"GET", http.MethodGet, "/daojia/serviceUser/getAllServiceUser", "", 400, "bad_request", "takes POST"},
		{"malformed JSON", http.MethodPost, "/daojia/serviceUser/saveServiceUser", `{"userName":`, 400, "bad_request", "body must be a JSON object"},
		{"JSON array", http.MethodPost, "/daojia/serviceUser/saveServiceUser", `[{"userName":"x"}]`, 400, "bad_request", "body must be a JSON object: is not a JSON object"},
		{"JSON string", http.MethodPost, "/daojia/serviceUser/saveServiceUser", `"x"`, 400, "bad_request", "body must be a JSON object"},
		{"empty body", http.MethodPost, "/daojia/serviceUser/saveServiceUser", ``, 400, "bad_request", "body must be a JSON object"},
		{"two objects", http.MethodPost, "/daojia/serviceUser/saveServiceUser", `{} {}`, 400, "bad_request", "body must be a JSON object"},
		{"no path", http.MethodPost, "/daojia/", `{}`, 400, "bad_request", "58到家 path"},
		{"dot segments", http.MethodPost, "/daojia/serviceUser/../token", `{}`, 400, "bad_request", "58到家 path"},
		{"empty segment", http.MethodPost, "/daojia/serviceUser//getAllServiceUser", `{}`, 400, "bad_request", "58到家 path"},
		{"trailing slash", http.MethodPost, "/daojia/serviceUser/", `{}`, 400, "bad_request", "58到家 path"},
		{"outside the prefix", http.MethodPost, "/other/serviceUser/getAllServiceUser", `{}`, 404, "no_route", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			req.URL.Path = tt.path // as routed, without the client's cleaning
			info := &reqinfo.Info{RequestID: "req-1"}
			req = req.WithContext(reqinfo.With(req.Context(), info))
			rec := httptest.NewRecorder()
			relay.ServeHTTP(rec, req)
			e := decodeEnvelope(t, rec)
			if rec.Code != tt.status || e.Code != tt.code || !strings.Contains(e.Message, tt.message) || e.RequestID != "req-1" {
				t.Fatalf("answered %d %s", rec.Code, rec.Body)
			}
			if info.ErrCode != tt.code {
				t.Fatalf("reqinfo error code %q", info.ErrCode)
			}
		})
	}
	if env.sandbox.TokenFetches() != 0 {
		t.Fatal("a refused call reached 58到家")
	}
}

func TestRelayBodyTooLarge(t *testing.T) {
	env := newSandboxEnv(t, nil)
	relay := env.client(t, nil).Relay("/daojia/")
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16) // what the server's body limit does
		relay.ServeHTTP(w, r)
	})
	rec := relayPost(t, limited, "/daojia/serviceUser/saveServiceUser", `{"userName":"a name longer than sixteen bytes"}`)
	if e := decodeEnvelope(t, rec); rec.Code != 413 || e.Code != "body_too_large" {
		t.Fatalf("answered %d %s", rec.Code, rec.Body)
	}
}

func TestRelayUpstreamFailures(t *testing.T) {
	hang := func(onPath string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, onPath) {
					// Reading the body lets the server notice the client hanging up.
					_, _ = io.Copy(io.Discard, r.Body)
					select { // longer than the client's Timeout; ends when the client gives up
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
					return
				}
				next.ServeHTTP(w, r)
			})
		}
	}
	tests := []struct {
		name    string
		env     func(t *testing.T) *sandboxEnv
		edit    func(*Options)
		status  int
		code    string
		message string
	}{
		{"58到家 down", func(t *testing.T) *sandboxEnv {
			env := newSandboxEnv(t, nil)
			env.server.Close()
			return env
		}, nil, 502, "upstream_error", "the call to 58到家 failed"},
		{"token endpoint too slow", func(t *testing.T) *sandboxEnv { return newSandboxEnv(t, hang("/token/")) },
			func(o *Options) { o.Timeout = 100 * time.Millisecond }, 504, "upstream_timeout", "did not answer in time"},
		{"API too slow", func(t *testing.T) *sandboxEnv { return newSandboxEnv(t, hang("/serviceUser/")) },
			func(o *Options) { o.Timeout = 100 * time.Millisecond }, 504, "upstream_timeout", "did not answer in time"},
		{"token refused for a wrong secret", func(t *testing.T) *sandboxEnv { return newSandboxEnv(t, nil) },
			func(o *Options) { o.ServiceSecret = secret.Secret("wrongSecret") }, 502, "upstream_error", "did not issue an accessToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env(t)
			relay := env.client(t, tt.edit).Relay("/daojia/")
			start := time.Now()
			rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
			e := decodeEnvelope(t, rec)
			if rec.Code != tt.status || e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Fatalf("answered %d %s", rec.Code, rec.Body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v: the Timeout was not applied", d)
			}
		})
	}
}

// The secret and every token stay out of logs and answers, through fetches, a
// refusal and refetch, a token refusal, and failures.
func TestLogsNeverHoldSecretOrToken(t *testing.T) {
	var logs syncBuffer
	env := newSandboxEnv(t, nil)
	env.sandbox.o.Logger = jsonLogger(&logs)
	c := env.client(t, func(o *Options) { o.Logger = jsonLogger(&logs) })
	relay := c.Relay("/daojia/")
	ctx := context.Background()
	var answers bytes.Buffer
	call := func(h http.Handler, path, body string) {
		rec := relayPost(t, h, path, body)
		answers.Write(rec.Body.Bytes())
	}

	call(relay, "/daojia/serviceUser/saveServiceUser", `{"userName":"张XX"}`)
	first, _ := c.Token(ctx)
	env.sandbox.ExpireTokens()
	call(relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
	second, _ := c.Token(ctx)
	call(relay, "/daojia/serviceUser/getAllServiceUser", `[]`)
	call(relay, "/daojia/../x", `{}`)
	wrong := env.client(t, func(o *Options) {
		o.ServiceSecret = secret.Secret("wrongSecret")
		o.Store = newMemStore(nil)
		o.Logger = jsonLogger(&logs)
	})
	call(wrong.Relay("/daojia/"), "/daojia/serviceUser/getAllServiceUser", `{}`)

	if first == "" || second == "" || first == second {
		t.Fatalf("tokens %q and %q: the refetch did not happen", first, second)
	}
	out := logs.String()
	for _, s := range []string{testSecret, "wrongSecret", first, second} {
		if strings.Contains(out, s) {
			t.Errorf("the logs hold %q:\n%s", s, out)
		}
		if strings.Contains(answers.String(), s) {
			t.Errorf("an answer holds %q", s)
		}
	}
	for _, want := range []string{`"msg":"fetched a 58到家 accessToken","expires_in":7200000000000`, `58到家 refused the accessToken`, `58到家 relay call failed`} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs lack %s:\n%s", want, out)
		}
	}
}

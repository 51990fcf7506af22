package daojia

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 58到家 answering wrongly: for the token endpoint and for an API call, every way an
// answer can be broken (an HTML error page, text, JSON of the wrong shape, a body too
// large, cut short, stalled, a reset connection). The relay's caller gets an envelope
// within the call timeout, never the broken bytes and never a hang; one warning is
// logged; the token cache is not poisoned, so the next call after 58到家 recovers
// succeeds. (Down and slow are in relay_test.go's TestRelayUpstreamFailures.)

// fault is one broken answer.
type fault struct {
	name  string
	serve func(w http.ResponseWriter)
}

var faults = []fault{
	{"an HTML 502 page", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>")
	}},
	{"text with status 200", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "service temporarily unavailable")
	}},
	{"JSON cut short", func(w http.ResponseWriter) {
		io.WriteString(w, `{"code":0,"message":"ok","data":{"accessTok`)
	}},
	{"an empty 200", func(w http.ResponseWriter) {}},
	{"a body over 8 MB", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"code":0,"data":"`)
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 9 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	}},
	{"Content-Length larger than the body", func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "500")
		io.WriteString(w, `{"code":0,"data":{}}`)
		panic(http.ErrAbortHandler) // closes the connection 480 bytes short
	}},
	{"a chunked body that stops", func(w http.ResponseWriter) {
		io.WriteString(w, `{"code":0,`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}},
	{"a reset connection", func(w http.ResponseWriter) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}},
	{"headers, then silence past the timeout", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"code":0,`)
		w.(http.Flusher).Flush()
		time.Sleep(2500 * time.Millisecond) // past the client's Timeout (brokenCallTimeout)
	}},
}

// tokenFaults are answers of the token endpoint that are JSON, HTTP 200, and still
// no token.
var tokenFaults = []fault{
	{"data is a string", func(w http.ResponseWriter) { io.WriteString(w, `{"code":0,"data":"token"}`) }},
	{"accessToken is a number", func(w http.ResponseWriter) { io.WriteString(w, `{"code":0,"data":{"accessToken":12345}}`) }},
	{"no accessToken", func(w http.ResponseWriter) { io.WriteString(w, `{"code":0,"data":{}}`) }},
	{"an array", func(w http.ResponseWriter) { io.WriteString(w, `[{"accessToken":"x"}]`) }},
	{"code is an object", func(w http.ResponseWriter) { io.WriteString(w, `{"code":{"v":0},"data":{"accessToken":"x"}}`) }},
	{"an accessToken of 2 KB", func(w http.ResponseWriter) {
		fmt.Fprintf(w, `{"code":0,"data":{"accessToken":%q}}`, strings.Repeat("t", 2048))
	}},
}

// faultyPlatform is a sandbox whose answers on paths containing onPath are replaced by
// the current fault while one is set.
type faultyPlatform struct {
	*sandboxEnv
	current atomic.Pointer[fault]
}

func newFaultyPlatform(t *testing.T, onPath string) *faultyPlatform {
	p := &faultyPlatform{}
	p.sandboxEnv = newSandboxEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f := p.current.Load(); f != nil && strings.Contains(r.URL.Path, onPath) {
				f.serve(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	return p
}

// brokenCallTimeout is the relay's call timeout in these tests: short, so the
// silent platform is given up on quickly, yet long enough that reading and refusing
// an 8 MB answer under -race on a busy 2-core machine fits in it (300ms did not).
const brokenCallTimeout = time.Second

func TestRelayAnswersBrokenPlatformWithAnEnvelope(t *testing.T) {
	for _, where := range []struct {
		name, onPath string
		faults       []fault
		message      string
	}{
		{"token endpoint", "/token/", append(append([]fault{}, faults...), tokenFaults...), ""},
		{"API call", "/serviceUser/", faults, ""},
	} {
		t.Run(where.name, func(t *testing.T) {
			var logs syncBuffer
			p := newFaultyPlatform(t, where.onPath)
			c := p.client(t, func(o *Options) {
				o.Timeout = brokenCallTimeout
				o.Logger = jsonLogger(&logs)
			})
			relay := c.Relay("/daojia/")
			var answers bytes.Buffer
			for _, f := range where.faults {
				t.Run(f.name, func(t *testing.T) {
					if where.onPath == "/serviceUser/" {
						// A good token first, so the API call is what breaks.
						if _, err := c.Token(t.Context()); err != nil {
							t.Fatal(err)
						}
					} else {
						// Past the cached token's expiry, so the call needs a new one.
						p.clock.Advance(3 * time.Hour)
					}
					p.current.Store(&f)
					start := time.Now()
					rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
					took := time.Since(start)
					answers.Write(rec.Body.Bytes())
					e := decodeEnvelope(t, rec)
					wantStatus, wantCode := 502, "upstream_error"
					if strings.Contains(f.name, "silence") {
						wantStatus, wantCode = 504, "upstream_timeout"
					}
					if rec.Code != wantStatus || e.Code != wantCode {
						t.Fatalf("answered %d %s, want %d %s", rec.Code, rec.Body, wantStatus, wantCode)
					}
					if strings.Contains(rec.Body.String(), "<html") || strings.Contains(rec.Body.String(), "xxxx") {
						t.Fatalf("the broken answer reached the caller: %.200s", rec.Body)
					}
					if took > 3*time.Second {
						t.Fatalf("took %v: the call timeout was not applied", took)
					}
					if !strings.Contains(logs.String(), `"msg":"58到家 relay call failed"`) &&
						!strings.Contains(logs.String(), `"msg":"58到家 answered something that is not JSON"`) {
						t.Fatalf("nothing logged:\n%s", logs.String())
					}

					// 58到家 recovers: the next call succeeds, whatever the token cache
					// saw meanwhile.
					p.current.Store(nil)
					rec = relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
					if a := decodeAnswer(t, rec); rec.Code != 200 || a.Code != 0 {
						t.Fatalf("after 58到家 recovered: %d %s", rec.Code, rec.Body)
					}
				})
			}
			tok, _ := c.Token(t.Context())
			for _, s := range []string{testSecret, tok} {
				if strings.Contains(logs.String(), s) || strings.Contains(answers.String(), s) {
					t.Errorf("the logs or answers hold %q", s)
				}
			}
		})
	}
}

// JSON of a shape the relay does not know (no code, an array, a code of another
// type) is 58到家's own answer: the relay hands it on as it came, status and all,
// since only the caller knows what it asked for. What it refuses is what no caller
// could read as 58到家's form: anything that is not JSON.
func TestRelayPassesOddJSONAsItCame(t *testing.T) {
	p := newFaultyPlatform(t, "/serviceUser/")
	relay := p.client(t, nil).Relay("/daojia/")
	for _, body := range []string{`[1,2,3]`, `{"unexpected":true}`, `{"code":"x","data":null}`, `"just a string"`, `null`} {
		p.current.Store(&fault{body, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, body)
		}})
		rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
		if rec.Code != http.StatusAccepted || rec.Body.String() != body {
			t.Errorf("%s: answered %d %s", body, rec.Code, rec.Body)
		}
	}
}

// Concurrent relay calls over pooled connections to a 58到家 that cuts every third
// answer short: each caller gets its own answer or an envelope, never another's.
func TestRelayAnswersNeverCrossCallers(t *testing.T) {
	var n atomic.Int64
	p := &faultyPlatform{}
	p.sandboxEnv = newSandboxEnv(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/serviceUser/") {
				next.ServeHTTP(w, r)
				return
			}
			var call struct {
				DaojiaJSON struct{ Caller string } `json:"daojiaJson"`
			}
			body, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(body, &call)
			answer := fmt.Sprintf(`{"code":0,"message":"ok","data":{"caller":%q}}`, call.DaojiaJSON.Caller)
			w.Header().Set("Content-Type", "application/json")
			if n.Add(1)%3 == 0 {
				w.Header().Set("Content-Length", fmt.Sprint(len(answer)+50))
				io.WriteString(w, answer)
				panic(http.ErrAbortHandler)
			}
			io.WriteString(w, answer)
		})
	})
	relay := p.client(t, nil).Relay("/daojia/")
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := range 90 {
		wg.Go(func() {
			caller := fmt.Sprintf("caller-%d", i)
			rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{"caller":"`+caller+`"}`)
			kind := fmt.Sprint(rec.Code)
			if rec.Code == 200 && !strings.Contains(rec.Body.String(), `"caller":"`+caller+`"`) {
				kind = "foreign"
				t.Errorf("%s got %s", caller, rec.Body)
			}
			mu.Lock()
			counts[kind]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("outcomes: %v", counts)
	if counts["200"] == 0 || counts["502"] == 0 {
		t.Errorf("outcomes %v: want both whole answers and cut ones", counts)
	}
}

package server

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/route"
)

// X-Api-Key sent twice is refused before any lookup: which copy counts would be a
// guess, and a proxy or WAF in front may guess the other way.
func TestTwoAPIKeysRefused(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	tests := []struct {
		name     string
		hdr      []string
		want     int
		wantCode string
	}{
		{"the same key twice", []string{"X-Api-Key", appKey, "X-Api-Key", appKey}, 400, "bad_request"},
		{"two clients' keys", []string{"X-Api-Key", providerKey, "X-Api-Key", appKey}, 400, "bad_request"},
		{"a known key after an unknown one", []string{"X-Api-Key", "nope", "X-Api-Key", appKey}, 400, "bad_request"},
		{"an empty copy and a key", []string{"X-Api-Key", "", "X-Api-Key", appKey}, 400, "bad_request"},
		{"two spellings of the name", []string{"x-api-key", appKey, "X-API-KEY", appKey}, 400, "bad_request"},
		{"the key twice in one value", []string{"X-Api-Key", appKey + ", " + appKey}, 401, "unknown_key"},
		{"one key", []string{"X-Api-Key", appKey}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sendRaw(t, addr, request("GET", "/api/services", "", tt.hdr...))
			if a.status != tt.want || tt.wantCode != "" && code(t, a.body) != tt.wantCode {
				t.Fatalf("%d %s, want %d %s", a.status, a.body, tt.want, tt.wantCode)
			}
			if hits := up.hits(); tt.want != 200 && len(hits) != 0 {
				t.Fatalf("backend saw %q", hits)
			}
		})
	}
	t.Run("over HTTP/2", func(t *testing.T) {
		tg := startGateway(t, baseConfig(up.URL, ""))
		req, _ := http.NewRequest("GET", tg.url+"/api/services", nil)
		req.Header.Add("X-Api-Key", appKey)
		req.Header.Add("X-Api-Key", appKey)
		resp, err := tg.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 400 || code(t, b) != "bad_request" {
			t.Fatalf("%s %d %s", resp.Proto, resp.StatusCode, b)
		}
	})
}

// Each read of a request body waits at most the idle bound for bytes (nginx's
// client_body_timeout): an upload that keeps moving may take longer than the bound
// in all, one that stops is answered 400, and a response that streams on after the
// body was read is never cut by it, on HTTP/1.1 (where net/http reads the connection
// in the background once the body is over) and HTTP/2 alike.
func TestBodyReadIdleBound(t *testing.T) {
	const idle = 400 * time.Millisecond
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return // limitBodyIdle answers
		}
		if r.URL.Path != "/stream" {
			fmt.Fprintf(w, "got %d", len(b))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 6 { // 1.2 s in all: three times the idle bound
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done(): // as the proxy stops when the request is cancelled
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	recorded := func(next http.Handler) http.Handler { // what accessLog gives limitBody
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&recordingWriter{ResponseWriter: w}, r)
		})
	}
	srv := httptest.NewUnstartedServer(chain(app, recorded, limitBodyIdle(1<<20, idle)))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	h2 := srv.Client()
	h1 := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	defer h1.CloseIdleConnections()

	// trickle sends n bytes, one per gap, pausing for stall after the third.
	trickle := func(n int, gap, stall time.Duration) io.Reader {
		pr, pw := io.Pipe()
		go func() {
			for i := range n {
				if i == 3 {
					time.Sleep(stall)
				}
				if _, err := pw.Write([]byte{'x'}); err != nil {
					return
				}
				time.Sleep(gap)
			}
			pw.Close()
		}()
		return pr
	}
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1", h1}, {"HTTP/2", h2}} {
		t.Run(c.name+": steady upload longer than the bound in all", func(t *testing.T) {
			resp, err := c.client.Post(srv.URL+"/", "text/plain", trickle(8, idle/4, 0))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "got 8" {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
		t.Run(c.name+": upload that stops", func(t *testing.T) {
			start := time.Now()
			resp, err := c.client.Post(srv.URL+"/", "text/plain", trickle(8, 10*time.Millisecond, 3*idle))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || code(t, b) != "bad_request" {
				t.Fatalf("%d %s, want 400 bad_request", resp.StatusCode, b)
			}
			if took := time.Since(start); took > hangBound {
				t.Fatalf("answered after %v", took)
			}
		})
		t.Run(c.name+": response streaming on after the body", func(t *testing.T) {
			resp, err := c.client.Post(srv.URL+"/stream", "text/plain", strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			events := 0
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					events++
				}
			}
			if events != 6 || sc.Err() != nil {
				t.Fatalf("%d of 6 events, %v: the stream was cut", events, sc.Err())
			}
		})
	}
}

// An ip rate limit holds for requests refused before routing as for routed ones,
// from one budget per address: an address that sprays 404s and non-canonical paths
// runs out as fast as one that calls routes, and its routed calls are refused too.
// The chain is built as buildGateway builds it (routeTo and cleanPath answering
// through refusals, the route's own ip limit before its handler).
func TestRefusalsBeforeRoutingAreRateLimited(t *testing.T) {
	cfg, err := parseConfig(baseConfig("http://127.0.0.1:1", `rate_limits:
  - {key: ip, rate: 1/h, burst: 4}
  - {key: ip, routes: [orders-create], rate: 1/h, burst: 100}
  - {key: client, rate: 1/h, burst: 100}
`))
	if err != nil {
		t.Fatal(err)
	}
	rules := limitRules(cfg.RateLimits, cfg.RateLimit.IPv6Prefix)
	if got := refusalRules(rules); len(got) != 1 || got[0].Burst != 4 {
		t.Fatalf("refusal rules %v, want the ip rule on every route only", got)
	}
	lim := ratelimit.NewLocal(ratelimit.LocalOptions{})
	logger := slog.New(slog.DiscardHandler)
	var table route.Table[*routeEntry]
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, rt := range cfg.Routes {
		before, _ := limitsFor(rules, rt.Name, rt.Public)
		table.Add(rt.Pattern, &routeEntry{name: rt.Name, handler: rateLimit(lim, before, logger)(ok)})
	}
	refuse := refusals(lim, refusalRules(rules), logger)
	h := chain(routeTo(&table, refuse), cleanPath(refuse))
	send := func(ip, method, path string) (int, string) {
		req := httptest.NewRequest(method, "http://gw"+path, nil)
		req.RemoteAddr = ip + ":1234"
		req = req.WithContext(reqinfo.With(req.Context(), &reqinfo.Info{RequestID: "r"}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, code(t, rec.Body.Bytes())
	}
	steps := []struct {
		ip, method, path string
		want             int
	}{
		{"192.0.2.1", "GET", "/nowhere", 404},
		{"192.0.2.1", "GET", "/api/x/../y", 400},
		{"192.0.2.1", "GET", "/api/services", 200}, // routed: the same budget
		{"192.0.2.1", "GET", "/nowhere/else", 404},
		{"192.0.2.1", "GET", "/nowhere", 429}, // the fifth request from this address
		{"192.0.2.1", "GET", "/api//services", 429},
		{"192.0.2.1", "GET", "/api/services", 429},
		{"192.0.2.2", "GET", "/nowhere", 404}, // another address has its own budget
		{"192.0.2.2", "CONNECT", "/", 400},
	}
	for i, s := range steps {
		if got, c := send(s.ip, s.method, s.path); got != s.want {
			t.Fatalf("step %d, %s %s from %s: %d %s, want %d", i, s.method, s.path, s.ip, got, c, s.want)
		}
	}
	t.Run("no ip rule, nothing added", func(t *testing.T) {
		if got := refusals(lim, nil, logger); reflect.ValueOf(got).Pointer() != reflect.ValueOf(apierror.Write).Pointer() {
			t.Fatal("refusals added a limit without a rule")
		}
	})
}

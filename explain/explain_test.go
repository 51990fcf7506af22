package explain

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signgate/signgate/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// noEnv is an environment with nothing set: every secret gets its stand-in, every
// ${NAME:-default} its default, so the golden files do not depend on the machine.
func noEnv(string) (string, bool) { return "", false }

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, _, err := Load(path, noEnv)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// sampleTarget is a request path a route's match takes: "*" as 42, a final "**"
// as two more segments.
func sampleTarget(match string) (method, target string) {
	method, path, _ := strings.Cut(match, " ")
	if method == "*" {
		method = "GET"
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch s {
		case "*":
			segs[i] = "42"
		case "**":
			segs[i] = "x/y"
		}
	}
	return method, strings.Join(segs, "/")
}

// goldenRequests are the requests explained for a config: one for every route (as
// every client, so every client is in the file), then extra ones worth reading.
func goldenRequests(cfg *config.Config, extra []Request) []Request {
	var reqs []Request
	for _, rt := range cfg.Routes {
		m, p := sampleTarget(rt.Match)
		reqs = append(reqs, Request{Method: m, Target: p})
	}
	return append(reqs, extra...)
}

// The explanation of every route of the repository's configs, for every client,
// checked against testdata/*.golden (go test ./explain -run Explain -update
// rewrites them; read the diff).
func TestExplainGolden(t *testing.T) {
	for _, tc := range []struct {
		config, golden string
		extra          []Request
	}{
		{"../examples/config.demo.yaml", "demo.golden", []Request{
			{Method: "PUT", Target: "/api/orders/42/status"},
			{Method: "PUT", Target: "/api/orders/42/status", Client: "sunshine-housekeeping"},
			{Method: "GET", Target: "/api/services", Client: "sunshine-housekeeping"},
			{Method: "HEAD", Target: "/api/services/"},
			{Method: "POST", Target: "/daojia/serviceUser/saveServiceUser"},
			{Method: "POST", Target: "/daojia/token/getAccessToken", Client: "property-backend"},
			{Method: "GET", Target: "/daojia/serviceUser/getAllServiceUser", Client: "property-backend"},
			{Method: "get", Target: "/api/services"},
			{Method: "GET", Target: "/api/orders/../admin"},
			{Method: "GET", Target: "/api/orders/42%2Fstatus"},
			{Method: "GET", Target: "/elsewhere"},
		}},
		{"../config.yaml", "config.golden", []Request{
			{Method: "POST", Target: "/callbacks/daojia/order?x=1"},
			{Method: "GET", Target: "/api/orders/42/events", Client: "sunshine-housekeeping"},
			{Method: "PUT", Target: "/api/orders/42/status", Client: "property-miniapp"},
			{Method: "OPTIONS", Target: "/api/orders"},
			{Method: "GET", Target: "/api/orders;jsessionid=1"},
		}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			cfg := load(t, tc.config)
			var b bytes.Buffer
			fmt.Fprintf(&b, "# signgate explain -config %s, for every route and some requests worth reading\n", strings.TrimPrefix(tc.config, "../"))
			for _, req := range goldenRequests(cfg, tc.extra) {
				cmd := "signgate explain"
				if req.Client != "" {
					cmd += " -key-id " + req.Client
				}
				fmt.Fprintf(&b, "\n$ %s %s %s\n", cmd, req.Method, req.Target)
				e, err := Explain(cfg, req)
				if err != nil {
					t.Fatalf("%v: %v", req, err)
				}
				if err := WriteText(&b, e); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("explanations differ from %s (go test ./explain -run Explain -update rewrites it):\n%s", path, b.String())
			}
		})
	}
}

// Why a request is refused, and by what: the answer each caller would get.
func TestExplainRefusals(t *testing.T) {
	demo := load(t, "../examples/config.demo.yaml")
	root := load(t, "../config.yaml")
	for _, tc := range []struct {
		name string
		cfg  *config.Config
		req  Request
		want string // the answer, "" when the request goes through
	}{
		{"provider may move a status", demo, Request{"PUT", "/api/orders/42/status", "sunshine-housekeeping"}, ""},
		{"the mini-program may not move a status", demo, Request{"PUT", "/api/orders/42/status", "property-miniapp"},
			"403 forbidden: none of client property-miniapp's roles [resident_app] allows PUT /api/orders/42/status"},
		{"the provider may not delete an order", demo, Request{"DELETE", "/api/orders/42", "sunshine-housekeeping"},
			"403 forbidden: none of client sunshine-housekeeping's roles [provider] allows DELETE /api/orders/42"},
		{"HEAD is decided as GET", demo, Request{"HEAD", "/api/services", "property-miniapp"}, ""},
		{"a trailing slash does not move a request", demo, Request{"PUT", "/api/orders/42/status/", "property-miniapp"},
			"403 forbidden: none of client property-miniapp's roles [resident_app] allows PUT /api/orders/42/status"},
		{"lower-case method", demo, Request{"get", "/api/services", "property-miniapp"},
			"400 bad_request: the request method must be upper-case letters, such as GET"},
		{"dot segments", demo, Request{"GET", "/api/orders/../admin", "property-backend"},
			"400 bad_request: the request path is not in canonical form"},
		{"encoded slash", demo, Request{"PUT", "/api/orders/42%2Fstatus", "sunshine-housekeeping"},
			"400 bad_request: the request path is not in canonical form"},
		{"servlet path parameters", demo, Request{"GET", "/api/orders;x=1", "property-backend"},
			`400 bad_request: the request path is not in canonical form: ";" (path parameters) is not accepted in a path`},
		{"CONNECT", demo, Request{"CONNECT", "/api/services", "property-backend"},
			"400 bad_request: protocol upgrades (Connection: upgrade, e.g. WebSocket or h2c) and CONNECT are not proxied"},
		{"no route", demo, Request{"GET", "/elsewhere", "property-backend"}, "404 no_route: no route matches GET /elsewhere"},
		{"a GET finds no relay route", demo, Request{"GET", "/daojia/serviceUser/getAllServiceUser", "property-backend"},
			"404 no_route: no route matches GET /daojia/serviceUser/getAllServiceUser"},
		{"relay is not for the mini-program", demo, Request{"POST", "/daojia/serviceUser/saveServiceUser", "property-miniapp"},
			"403 forbidden: none of client property-miniapp's roles [resident_app] allows POST /daojia/serviceUser/saveServiceUser"},
		{"relay never calls the token endpoint", root, Request{"POST", "/daojia/token/getAccessToken", "property-backend"},
			"404 no_route: the 58到家 token endpoint is not relayed"},
		{"callback with a query", root, Request{"POST", "/callbacks/daojia/order?x=1", ""},
			"400 bad_request: a 58到家 callback takes no query string: its parameters travel in the signed body"},
		{"callback", root, Request{"POST", "/callbacks/daojia/order", ""}, ""},
		{"public route takes anyone", root, Request{"GET", "/api/public/terms", ""}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Explain(tc.cfg, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			switch {
			case e.Refused != nil:
				got = e.Refused.String()
			case len(e.Callers) != 1:
				t.Fatalf("%d caller blocks, want 1", len(e.Callers))
			case e.Callers[0].Refused != nil:
				got = e.Callers[0].Refused.String()
			}
			if got != tc.want {
				t.Errorf("answer\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func TestExplainUnknownClient(t *testing.T) {
	_, err := Explain(load(t, "../examples/config.demo.yaml"), Request{"GET", "/api/services", "nobody"})
	if err == nil || !strings.Contains(err.Error(), `no client "nobody"`) {
		t.Fatalf("err = %v, want one naming the unknown client", err)
	}
}

// Load stands in for secrets that are not set, names them, and keeps defaults.
func TestExplainLoadStandIns(t *testing.T) {
	_, standIns, err := Load("../examples/config.demo.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := "SUNSHINE_SECRET PROPERTY_BACKEND_SECRET DAOJIA_SERVICE_SECRET WECHAT_APP_SECRET"
	if got := strings.Join(standIns, " "); got != want {
		t.Errorf("stand-ins %q, want %q", got, want)
	}
	if _, _, err := Load("", noEnv); err != nil {
		t.Errorf("the embedded default: %v", err)
	}
}

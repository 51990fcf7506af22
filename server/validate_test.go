package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	propertybackend "github.com/signgate/signgate/examples/property-backend/backend"
)

// demoSpecPath is the booking API's interface spec, which examples/config.demo.yaml
// holds POST /api/orders to.
func demoSpecPath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("../examples/orders.openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reportsSpec is a second spec beside the booking API's: an operation with query
// and header parameters (the booking API has only path ones), and one that streams.
const reportsSpec = `openapi: 3.0.3
info: {title: Reports, version: "1"}
paths:
  /api/reports:
    get:
      parameters:
        - {name: from, in: query, required: true, schema: {type: string, format: date}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: X-Report-Format, in: header, schema: {type: string, enum: [csv, json]}}
      responses:
        "200":
          description: the report
          content:
            application/json:
              schema:
                type: object
                required: [rows]
                properties:
                  rows: {type: array, items: {type: string}}
  /api/reports/live:
    get:
      responses:
        "200":
          description: rows as they come
          content:
            text/event-stream:
              schema: {type: string}
`

// writeReportsSpec writes reportsSpec into a fresh directory.
func writeReportsSpec(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "reports.openapi.yaml")
	if err := os.WriteFile(p, []byte(reportsSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// validateConfig is a gateway in front of upstreamURL whose two routes validate
// requests and answers in the modes given, against the booking and reports specs.
// The provider's answers are masked.
func validateConfig(t testing.TB, upstreamURL, request, response string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", max_body_bytes: 4096, shutdown_timeout: 5s}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, roles: [provider]}
roles:
  resident_app: {allow: ["GET /api/services", "POST /api/orders", "GET /api/orders/*", "DELETE /api/orders/*", "PUT /api/orders/*/status", "GET /api/orders/*/calls", "GET /api/reports", "GET /api/reports/live"]}
  provider: {allow: ["GET /api/orders/*", "POST /api/orders/*/staff", "PUT /api/orders/*/status"], mask: true}
upstreams:
  backend: {targets: [%q], response_timeout: 5s}
openapi:
  specs: [%q, %q]
routes:
  - {name: orders-create, match: "POST /api/orders", upstream: backend, validate: {request: %s, response: %s}}
  - {name: api, match: "* /api/**", upstream: backend, validate: {request: %s, response: %s}}
masking: {fields: [phone], detect: [cn_mobile], max_body_bytes: 2048}
`, auth.HashKey(appKey), auth.HashKey(providerKey), upstreamURL, demoSpecPath(t), writeReportsSpec(t), request, response, request, response)
}

// bookingJSON is a booking the spec accepts, with the changes given (a nil value
// removes the member).
func bookingJSON(change map[string]any) string {
	b := map[string]any{
		"name":             "王芳",
		"phone":            "13812345678",
		"address":          "幸福小區 3 棟 2 單元 501",
		"service_type":     "cleaning",
		"appointment_time": "2026-11-23T10:00:00+08:00",
	}
	for k, v := range change {
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	out, _ := json.Marshal(b)
	return string(out)
}

// validOrder is an order as the booking API answers it.
const validOrder = `{"id":42,"name":"王芳","phone":"13812345678","address":"幸福小區 3 棟 2 單元 501","service_type":"cleaning",` +
	`"service_name":"日常保潔","appointment_time":"2026-11-23T10:00:00+08:00","status":"待接單","staff":null,` +
	`"history":[{"status":"待接單","at":"2026-11-22T09:00:00+08:00"}],"created_at":"2026-11-22T09:00:00+08:00"}`

// specUpstream is the booking backend as far as these tests need it: it records
// what reaches it and answers as answer says (validOrder and friends by default).
type specUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	got    []string // "METHOD /path?query body"
	answer func(w http.ResponseWriter, r *http.Request)
}

func newSpecUpstream(t *testing.T) *specUpstream {
	u := &specUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		answer := u.answer
		u.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch {
		case r.URL.Path == "/api/reports":
			io.WriteString(w, `{"rows":["a","b"]}`)
		case r.Method == "POST":
			w.Header().Set("Location", "/api/orders/42")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, validOrder)
		default:
			io.WriteString(w, validOrder)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *specUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

func (u *specUpstream) answerWith(f func(w http.ResponseWriter, r *http.Request)) {
	u.mu.Lock()
	u.answer = f
	u.mu.Unlock()
}

// fullEnvelope is the error envelope with its errors array.
type fullEnvelope struct {
	Code      string                `json:"code"`
	Message   string                `json:"message"`
	RequestID string                `json:"request_id"`
	Errors    []apierror.FieldError `json:"errors"`
}

// metricOf reads one series from the gateway's /metrics (0 when absent).
func metricOf(t *testing.T, g *testGateway, series string) float64 {
	t.Helper()
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	v, _ := metricValue(t, string(text), series)
	return v
}

func failures(route, direction string) string {
	return fmt.Sprintf("signgate_validation_failures_total{direction=%q,route=%q}", direction, route)
}

func skipped(route, direction, reason string) string {
	return fmt.Sprintf("signgate_validation_skipped_total{direction=%q,reason=%q,route=%q}", direction, reason, route)
}

// Every kind of violation is answered 400 bad_request with every problem, where it
// is and what is wrong, and the upstream never sees the request.
func TestValidationRefusesWhatTheSpecForbids(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "off"))
	asJSON := []string{"Content-Type", "application/json"}
	const pattern = `string doesn't match the regular expression "^1[3-9][0-9]{9}$"`
	const enum = `value is not one of the allowed values ["cleaning","appliance_washing","nanny","maternity_nurse"]`
	const extra = "not a member the spec allows here (additionalProperties: false)"
	const oneProblem = "the request does not match the interface spec: 1 problem, in errors"
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		message                  string
		errors                   []apierror.FieldError
	}{
		{"a required member missing", "POST", "/api/orders", bookingJSON(map[string]any{"address": nil}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/address", Message: `property "address" is missing`}}},
		{"a member of the wrong type", "POST", "/api/orders", bookingJSON(map[string]any{"name": 5}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/name", Message: "value must be a string"}}},
		{"a service the backend does not offer (enum)", "POST", "/api/orders", bookingJSON(map[string]any{"service_type": "window_cleaning"}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/service_type", Message: enum}}},
		{"a phone that breaks the pattern", "POST", "/api/orders", bookingJSON(map[string]any{"phone": "1381234567"}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/phone", Message: pattern}}},
		{"an appointment that is not a date-time", "POST", "/api/orders", bookingJSON(map[string]any{"appointment_time": "明天上午10點"}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/appointment_time", Message: "not a date-time: want RFC 3339 with a time zone, such as 2026-11-23T10:00:00+08:00"}}},
		{"a day its month does not have", "POST", "/api/orders", bookingJSON(map[string]any{"appointment_time": "2026-02-30T10:00:00+08:00"}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/appointment_time", Message: "not a date-time: want RFC 3339 with a time zone, such as 2026-11-23T10:00:00+08:00"}}},
		{"a member additionalProperties: false refuses", "POST", "/api/orders", bookingJSON(map[string]any{"coupon": "FREE"}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/coupon", Message: extra}}},
		{"a member named by a phone number, masked", "POST", "/api/orders", bookingJSON(map[string]any{"13812345678": "call me"}), asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/138****5678", Message: extra}}},
		{"every violation at once", "POST", "/api/orders",
			bookingJSON(map[string]any{"phone": "+8613812345678", "service_type": "window_cleaning", "address": nil, "coupon": "FREE", "name": ""}), asJSON,
			"the request does not match the interface spec: 5 problems, in errors",
			[]apierror.FieldError{
				{In: "body", At: "/address", Message: `property "address" is missing`},
				{In: "body", At: "/coupon", Message: extra},
				{In: "body", At: "/name", Message: "minimum string length is 1"},
				{In: "body", At: "/phone", Message: pattern},
				{In: "body", At: "/service_type", Message: enum},
			}},
		{"a status move that is not a status", "PUT", "/api/orders/42/status", `{"status":"done"}`, asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/status", Message: `value is not one of the allowed values ["待接單","已接單","服務中","已完成","已取消"]`}}},
		{"no body", "POST", "/api/orders", "", nil, oneProblem,
			[]apierror.FieldError{{In: "body", At: "", Message: "a body is required"}}},
		{"not JSON", "POST", "/api/orders", `{"name":`, asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "", Message: "the body is not valid JSON: unexpected end of JSON input"}}},
		{"a member named twice", "POST", "/api/orders", `{"phone":"1","phone":"13812345678"}`, asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "/phone", Message: `member "phone" appears twice: send it once`}}},
		{"another media type", "POST", "/api/orders", bookingJSON(nil), []string{"Content-Type", "text/plain"}, oneProblem,
			[]apierror.FieldError{{In: "header", At: "Content-Type", Message: `want application/json, got "text/plain"`}}},
		{"a path parameter that is not an integer", "GET", "/api/orders/abc", "", nil, oneProblem,
			[]apierror.FieldError{{In: "path", At: "id", Message: "value is an invalid integer: invalid syntax"}}},
		{"a path parameter below its minimum", "GET", "/api/orders/0", "", nil, oneProblem,
			[]apierror.FieldError{{In: "path", At: "id", Message: "number must be at least 1"}}},
		{"a required query parameter missing", "GET", "/api/reports", "", nil, oneProblem,
			[]apierror.FieldError{{In: "query", At: "from", Message: "required, and missing"}}},
		{"query parameters of the wrong format and too large", "GET", "/api/reports?from=yesterday&limit=500", "", nil,
			"the request does not match the interface spec: 2 problems, in errors",
			[]apierror.FieldError{
				{In: "query", At: "from", Message: "not a date: want RFC 3339 full-date, such as 2026-11-23"},
				{In: "query", At: "limit", Message: "number must be at most 100"},
			}},
		{"a header parameter outside its enum", "GET", "/api/reports?from=2026-11-01", "", []string{"X-Report-Format", "pdf"}, oneProblem,
			[]apierror.FieldError{{In: "header", At: "X-Report-Format", Message: `value is not one of the allowed values ["csv","json"]`}}},
		{"a body where the operation takes none", "GET", "/api/orders/42", `{"x":1}`, asJSON, oneProblem,
			[]apierror.FieldError{{In: "body", At: "", Message: "this operation takes no body"}}},
		{"a method no operation takes", "DELETE", "/api/orders/42", "", nil,
			"DELETE /api/orders/42 is not in the interface spec: no operation of it takes this method and path", nil},
		{"a path no operation takes, its number masked", "GET", "/api/orders/13812345678/calls", "", nil,
			"GET /api/orders/138****5678/calls is not in the interface spec: no operation of it takes this method and path", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp, raw := g.do(t, tc.method, tc.path, appKey, body, tc.hdr...)
			var env fullEnvelope
			if err := json.Unmarshal(raw, &env); err != nil {
				t.Fatalf("status %d, body %s: %v", resp.StatusCode, raw, err)
			}
			want := fullEnvelope{Code: "bad_request", Message: tc.message, RequestID: resp.Header.Get("X-Request-Id"), Errors: tc.errors}
			if resp.StatusCode != 400 || env.RequestID == "" || !equalEnvelopes(env, want) {
				t.Errorf("status %d, envelope\n %s\nwant\n %s", resp.StatusCode, raw, mustJSON(want))
			}
			if got := up.requests(); len(got) != before {
				t.Errorf("the upstream received %q", got[before:])
			}
		})
	}
	if n := metricOf(t, g, failures("api", "request")) + metricOf(t, g, failures("orders-create", "request")); n < 20 {
		t.Errorf("%v request failures counted, want one per refused request", n)
	}
}

func equalEnvelopes(a, b fullEnvelope) bool {
	return a.Code == b.Code && a.Message == b.Message && a.RequestID == b.RequestID && slices.Equal(a.Errors, b.Errors)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// What the spec allows reaches the upstream byte for byte, as the caller sent it.
func TestValidationPassesValidRequestsAsSent(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "enforce"))
	booking := bookingJSON(nil)
	resp, body := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(booking), "Content-Type", "application/json")
	if resp.StatusCode != 201 || string(body) != validOrder {
		t.Fatalf("booking: %d %s", resp.StatusCode, body)
	}
	resp, body = g.do(t, "GET", "/api/reports?from=2026-11-01&limit=10", appKey, nil, "X-Report-Format", "csv")
	if resp.StatusCode != 200 {
		t.Fatalf("report: %d %s", resp.StatusCode, body)
	}
	want := []string{"POST /api/orders " + booking, "GET /api/reports?from=2026-11-01&limit=10"}
	if got := up.requests(); !slices.Equal(got, want) {
		t.Errorf("the upstream received\n %q\nwant\n %q", got, want)
	}
	for _, route := range []string{"orders-create", "api"} {
		for _, dir := range []string{"request", "response"} {
			if n := metricOf(t, g, failures(route, dir)); n != 0 {
				t.Errorf("%s %s failures %v, want 0", route, dir, n)
			}
		}
	}
}

// A caller who may not call the route learns nothing about the spec: it is
// refused as it would be without one.
func TestValidationComesAfterAuthentication(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "enforce"))
	bad := bookingJSON(map[string]any{"phone": "1", "coupon": "x"})
	for _, tc := range []struct {
		name, method, path, key string
		status                  int
		code                    string
	}{
		{"no API key", "POST", "/api/orders", "", 401, "missing_credentials"},
		{"an unknown API key", "POST", "/api/orders", "guess", 401, "unknown_key"},
		{"a role that may not book", "POST", "/api/orders", providerKey, 403, "forbidden"},
		{"no API key, a path not in the spec", "DELETE", "/api/orders/1", "", 401, "missing_credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := g.do(t, tc.method, tc.path, tc.key, strings.NewReader(bad), "Content-Type", "application/json")
			var env fullEnvelope
			_ = json.Unmarshal(raw, &env)
			if resp.StatusCode != tc.status || env.Code != tc.code || env.Errors != nil {
				t.Errorf("%d %s, want %d %s and no errors array", resp.StatusCode, raw, tc.status, tc.code)
			}
		})
	}
	if n := metricOf(t, g, failures("orders-create", "request")) + metricOf(t, g, failures("api", "request")); n != 0 {
		t.Errorf("%v requests counted as checked, want none", n)
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("the upstream received %q", got)
	}
}

// report passes the request, and logs and counts what it breaks, masked.
func TestValidationReportModePassesLogsAndCounts(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "report", "off"))
	bad := bookingJSON(map[string]any{"phone": "138-1234-5678", "13912345678": "x"})
	resp, _ := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(bad), "Content-Type", "application/json")
	if resp.StatusCode != 201 {
		t.Fatalf("status %d, want the upstream's 201", resp.StatusCode)
	}
	if got := up.requests(); len(got) != 1 || got[0] != "POST /api/orders "+bad {
		t.Errorf("the upstream received %q", got)
	}
	if n := metricOf(t, g, failures("orders-create", "request")); n != 1 {
		t.Errorf("request failures %v, want 1", n)
	}
	lines := g.logs.lines(t, "request does not match the interface spec")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1", len(lines))
	}
	l := lines[0]
	got := loggedViolations(t, l)
	want := `[{"in":"body","at":"/139****5678","message":"not a member the spec allows here (additionalProperties: false)"},` +
		`{"in":"body","at":"/phone","message":"string doesn't match the regular expression \"^1[3-9][0-9]{9}$\""}]`
	if got != want || l["route"] != "orders-create" || l["mode"] != "report" || l["client"] != "property-miniapp" || l["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Errorf("log line %v\nviolations %s\nwant       %s", l, got, want)
	}
}

// An answer that drifted from the spec: report passes it on and logs and counts
// it; enforce answers 502 instead. The log line is masked and the caller never sees
// what was wrong.
func TestResponseValidationDrift(t *testing.T) {
	drifted := strings.Replace(strings.Replace(validOrder, `"status":"待接單"`, `"status":"pending"`, 1), `"staff":null`, `"staff":null,"13812345678":"owner"`, 1)
	wantLogged := `[{"in":"body","at":"/138****5678","message":"not a member the spec allows here (additionalProperties: false)"},` +
		`{"in":"body","at":"/status","message":"value is not one of the allowed values [\"待接單\",\"已接單\",\"服務中\",\"已完成\",\"已取消\"]"}]`
	for _, mode := range []string{"report", "enforce"} {
		for _, gzipped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s gzip=%t", mode, gzipped), func(t *testing.T) {
				up := newSpecUpstream(t)
				up.answerWith(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					if gzipped {
						if r.Header.Get("Accept-Encoding") != "gzip" {
							t.Errorf("the upstream was asked for Accept-Encoding %q, want gzip", r.Header.Get("Accept-Encoding"))
						}
						w.Header().Set("Content-Encoding", "gzip")
						w.Write(gzipBytes([]byte(drifted)))
						return
					}
					io.WriteString(w, drifted)
				})
				g := startGateway(t, validateConfig(t, up.URL, "enforce", mode))
				hdr := []string{"Accept-Encoding", "identity"}
				if gzipped {
					hdr = []string{"Accept-Encoding", "gzip"}
				}
				resp, body := g.do(t, "GET", "/api/orders/42", appKey, nil, hdr...)
				if gzipped && resp.Header.Get("Content-Encoding") == "gzip" {
					body = gunzip(t, body)
				}
				switch mode {
				case "report":
					if resp.StatusCode != 200 || string(body) != drifted {
						t.Errorf("report: %d %s, want the upstream's answer as it was", resp.StatusCode, body)
					}
				case "enforce":
					var env fullEnvelope
					_ = json.Unmarshal(body, &env)
					if resp.StatusCode != 502 || env.Code != "upstream_error" || env.Errors != nil ||
						strings.Contains(string(body), "pending") || strings.Contains(string(body), "allowed") || strings.Contains(string(body), "interface spec") {
						t.Errorf("enforce: %d %s, want a bare 502 upstream_error", resp.StatusCode, body)
					}
					if n := metricOf(t, g, `signgate_upstream_errors_total{code="upstream_error",route="api"}`); n != 1 {
						t.Errorf("upstream errors %v, want 1", n)
					}
				}
				if n := metricOf(t, g, failures("api", "response")); n != 1 {
					t.Errorf("response failures %v, want 1", n)
				}
				lines := g.logs.lines(t, "response does not match the interface spec")
				if len(lines) != 1 {
					t.Fatalf("%d log lines, want 1", len(lines))
				}
				l := lines[0]
				if got := loggedViolations(t, l); got != wantLogged || l["status"] != float64(200) || l["mode"] != mode || l["route"] != "api" {
					t.Errorf("log line %v\nviolations %s\nwant       %s", l, got, wantLogged)
				}
			})
		}
	}
}

// loggedViolations is a log line's violations, as the envelope would write them.
func loggedViolations(t *testing.T, line map[string]any) string {
	t.Helper()
	var vs []apierror.FieldError
	if err := json.Unmarshal([]byte(mustJSON(line["violations"])), &vs); err != nil {
		t.Fatalf("violations %v: %v", line["violations"], err)
	}
	return mustJSON(vs)
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The demo's spec is the reference backend's API: the whole booking flow, its
// errors included, passes both ways in enforce mode, masked provider and all.
func TestOpenAPIDemoSpecMatchesTheReferenceBackend(t *testing.T) {
	be := httptest.NewServer(propertybackend.New(propertybackend.Options{}))
	defer be.Close()
	g := startGateway(t, validateConfig(t, be.URL, "enforce", "enforce"))
	tomorrow := time.Now().Add(24 * time.Hour).Format(time.RFC3339)
	lastWeek := time.Now().Add(-7 * 24 * time.Hour).Format(time.RFC3339)
	asJSON := []string{"Content-Type", "application/json"}
	for _, step := range []struct {
		name, method, path, key, body string
		status                        int
	}{
		{"list the services", "GET", "/api/services", appKey, "", 200},
		{"book", "POST", "/api/orders", appKey, bookingJSON(map[string]any{"appointment_time": tomorrow}), 201},
		{"read the order", "GET", "/api/orders/1", appKey, "", 200},
		{"assign staff", "POST", "/api/orders/1/staff", providerKey,
			`{"name":"李秀英","phone":"13998765432","photo":"https://img.example.com/li.jpg","skills":["日常保潔"]}`, 200},
		{"accept", "PUT", "/api/orders/1/status", providerKey, `{"status":"已接單"}`, 200},
		{"start", "PUT", "/api/orders/1/status", providerKey, `{"status":"服務中"}`, 200},
		{"finish", "PUT", "/api/orders/1/status", providerKey, `{"status":"已完成"}`, 200},
		{"read it done, masked", "GET", "/api/orders/1", providerKey, "", 200},
		{"an appointment in the past (the backend's 400)", "POST", "/api/orders", appKey, bookingJSON(map[string]any{"appointment_time": lastWeek}), 400},
		{"a move the state machine refuses (the backend's 400)", "PUT", "/api/orders/1/status", providerKey, `{"status":"已取消"}`, 400},
		{"an order that does not exist (the backend's 404)", "GET", "/api/orders/99", appKey, "", 404},
	} {
		var body io.Reader
		var hdr []string
		if step.body != "" {
			body, hdr = strings.NewReader(step.body), asJSON
		}
		resp, got := g.do(t, step.method, step.path, step.key, body, hdr...)
		if resp.StatusCode != step.status {
			t.Errorf("%s: %d %s, want %d", step.name, resp.StatusCode, got, step.status)
		}
	}
	for _, route := range []string{"orders-create", "api"} {
		for _, dir := range []string{"request", "response"} {
			if n := metricOf(t, g, failures(route, dir)); n != 0 {
				t.Errorf("%s %s failures %v, want 0: %v", route, dir, n, g.logs.lines(t, dir+" does not match the interface spec"))
			}
		}
	}
}

// A masked caller's answer is checked as the upstream sent it: the masked phone
// (138****5678) breaks the spec's pattern, the upstream's does not.
func TestResponseValidationSeesTheAnswerBeforeMasking(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "enforce"))
	resp, body := g.do(t, "GET", "/api/orders/42", providerKey, nil)
	var o struct{ Phone string }
	_ = json.Unmarshal(body, &o)
	if resp.StatusCode != 200 || o.Phone != "138****5678" {
		t.Fatalf("provider: %d %s, want the order with the phone masked", resp.StatusCode, body)
	}
	if n := metricOf(t, g, failures("api", "response")); n != 0 {
		t.Errorf("response failures %v, want 0", n)
	}
}

// Streams and answers over masking.max_body_bytes are passed on whole and
// unchecked, counted with why; none is held in memory whole.
func TestResponseValidationSkipsWhatItCannotHold(t *testing.T) {
	large := `{"rows":["` + strings.Repeat("x", 3000) + `"], "drift": 1}`
	for _, tc := range []struct {
		name   string
		path   string
		answer func(w http.ResponseWriter)
		want   string
		reason string
	}{
		{"server-sent events", "/api/reports/live", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		}, "data: 0\n\ndata: 1\n\ndata: 2\n\n", skipStream},
		{"a Content-Length over the limit", "/api/reports?from=2026-11-01", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(large)))
			io.WriteString(w, large)
		}, large, skipTooLarge},
		{"chunked beyond the limit", "/api/reports?from=2026-11-01", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			for i := 0; i < len(large); i += 500 {
				io.WriteString(w, large[i:min(i+500, len(large))])
				w.(http.Flusher).Flush()
			}
		}, large, skipTooLarge},
		{"an encoding the gateway cannot read", "/api/reports?from=2026-11-01", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, "not really brotli")
		}, "not really brotli", skipEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newSpecUpstream(t)
			up.answerWith(func(w http.ResponseWriter, r *http.Request) { tc.answer(w) })
			g := startGateway(t, validateConfig(t, up.URL, "enforce", "enforce"))
			resp, body := g.do(t, "GET", tc.path, appKey, nil, "Accept-Encoding", "identity")
			if resp.StatusCode != 200 || string(body) != tc.want {
				t.Errorf("%d, %d bytes, want 200 and the upstream's %d bytes", resp.StatusCode, len(body), len(tc.want))
			}
			if n := metricOf(t, g, skipped("api", "response", tc.reason)); n != 1 {
				t.Errorf("skipped{reason=%s} %v, want 1", tc.reason, n)
			}
			if n := metricOf(t, g, failures("api", "response")); n != 0 {
				t.Errorf("response failures %v, want 0", n)
			}
		})
	}
}

// A reload whose spec is broken is refused with the spec's file and line, and the
// running config keeps validating as before; a good spec is then taken up.
func TestOpenAPIReloadWithABrokenSpecKeepsServing(t *testing.T) {
	up := newSpecUpstream(t)
	dir := t.TempDir()
	spec, err := os.ReadFile(demoSpecPath(t))
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "orders.openapi.yaml")
	write := func(b []byte) {
		if err := os.WriteFile(specPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(spec)
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := strings.Replace(validateConfig(t, up.URL, "enforce", "off"), strconv.Quote(demoSpecPath(t)), "orders.openapi.yaml", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayFrom(t, func() (*config.Config, error) { return config.Load(cfgPath) }, "")
	book := func(phone string) int {
		resp, _ := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(bookingJSON(map[string]any{"phone": phone})), "Content-Type", "application/json")
		return resp.StatusCode
	}
	if book("+8613812345678") != 400 || book("13812345678") != 201 {
		t.Fatal("the spec does not hold before the reload")
	}

	write(bytes.Replace(spec, []byte("    Phone:\n"), []byte("    Phone: {\n"), 1))
	err = g.srv.Reload()
	var problems config.Errors
	if !errors.As(err, &problems) || len(problems) == 0 {
		t.Fatalf("Reload: %v, want the spec's problems", err)
	}
	p := problems[0]
	if p.Path != "openapi.specs[0]" || p.Line != 13 || !strings.Contains(p.Msg, specPath+":") || !strings.Contains(p.Msg, "YAML syntax") {
		t.Errorf("problem %q, want openapi.specs[0] at its line, naming %s and the line in it", p.String(), specPath)
	}
	logged := g.logs.lines(t, "config reload refused; the running config keeps serving")
	if len(logged) == 0 || !strings.Contains(fmt.Sprint(logged[len(logged)-1]["problem"]), specPath) {
		t.Errorf("reload refusal logged as %v", logged)
	}
	if book("+8613812345678") != 400 || book("13812345678") != 201 {
		t.Error("the running config stopped validating after a refused reload")
	}

	write(bytes.Replace(spec, []byte(`pattern: "^1[3-9][0-9]{9}$"`), []byte(`pattern: "^(\\+86)?1[3-9][0-9]{9}$"`), 1))
	if err := g.srv.Reload(); err != nil {
		t.Fatalf("Reload with a good spec: %v", err)
	}
	if book("+8613812345678") != 201 {
		t.Error("the new spec was not taken up")
	}
}

// A route with validate: that no operation covers is a config problem, at the
// route's line: every request there would be refused.
func TestOpenAPIUncoveredRouteIsAConfigProblem(t *testing.T) {
	yaml := strings.Replace(validateConfig(t, "http://127.0.0.1:1", "enforce", "off"), "masking:",
		"  - {name: refunds, match: \"POST /refunds\", upstream: backend, validate: {request: enforce}}\nmasking:", 1)
	cfg, err := parseConfig(yaml)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckSpecs(cfg)
	want := `routes[2].match (line 17): route "refunds" validates against openapi.specs, but no operation there covers "POST /refunds": every request would be refused as not in the interface spec`
	if err == nil || err.Error() != want {
		t.Errorf("CheckSpecs:\n %v\nwant\n %s", err, want)
	}
	// The gateway refuses it before building anything, at start and on reload.
	if _, err := buildGateway(cfg, deps{}, nil); err == nil || err.Error() != want {
		t.Errorf("buildGateway: %v, want the same problem", err)
	}
}

// FuzzValidateRequest sends bookings the fuzzer makes up through the gateway's
// handler to a real upstream: no input panics, signgate never answers 5xx, and a
// refusal is always the 400 envelope with its errors placed in the request.
func FuzzValidateRequest(f *testing.F) {
	for _, seed := range []string{
		bookingJSON(nil),
		bookingJSON(map[string]any{"phone": "1", "coupon": 1, "name": nil}),
		`{"name":"a","name":"b"}`,
		`[{"a":[1,2,{"b":null}]}]`,
		`{"appointment_time":"2026-02-29T25:61:00+99:99"}`,
		"{\"name\":\"\xff\"}",
		`{"service_type":{"$ref":"#/x"}}`,
		`1e400`,
		`{} {}`,
		`{"\u0070hone":"13812345678","phone":"1"}`,
		strings.Repeat("[", 5000),
	} {
		f.Add([]byte(seed), uint8(0))
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/api/orders/42")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, validOrder)
	}))
	defer up.Close()
	cfg, err := parseConfig(validateConfig(f, up.URL, "enforce", "enforce"))
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h := srv.gw.Load().handler
	types := []string{"application/json", "application/json; charset=utf-8", "application/merge-patch+json", "text/plain", "", "application/json; charset=utf-16"}
	f.Fuzz(func(t *testing.T, body []byte, ctype uint8) {
		r := httptest.NewRequest("POST", "https://gw/api/orders", bytes.NewReader(body))
		r.Header.Set("X-Api-Key", appKey)
		if ct := types[int(ctype)%len(types)]; ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body.Bytes())
		}
		if w.Code == 400 {
			var env fullEnvelope
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Code != "bad_request" || env.RequestID == "" {
				t.Fatalf("400 that is not the envelope: %s", w.Body.Bytes())
			}
			for _, e := range env.Errors {
				if !slices.Contains([]string{"path", "query", "header", "body"}, e.In) || e.Message == "" {
					t.Fatalf("error %+v is not placed in the request", e)
				}
			}
		}
	})
}

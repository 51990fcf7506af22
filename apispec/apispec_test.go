package apispec

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// demoSpec is the booking API's spec, which examples/config.demo.yaml validates.
const demoSpec = "../examples/orders.openapi.yaml"

func loadDemo(t testing.TB) *Spec {
	t.Helper()
	s, err := Load([]string{demoSpec})
	if err != nil {
		t.Fatalf("the demo spec does not load:\n%v", err)
	}
	return s
}

// writeSpec writes a document into a fresh directory and returns its path.
func writeSpec(t *testing.T, name, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindTheOperationARequestIsFor(t *testing.T) {
	s := loadDemo(t)
	for _, tc := range []struct {
		method, path string
		want         string // "METHOD template", "" for none
		params       map[string]string
	}{
		{"POST", "/api/orders", "POST /api/orders", nil},
		{"GET", "/api/orders/42", "GET /api/orders/{id}", map[string]string{"id": "42"}},
		{"PUT", "/api/orders/42/status", "PUT /api/orders/{id}/status", map[string]string{"id": "42"}},
		{"POST", "/api/orders/7/staff", "POST /api/orders/{id}/staff", map[string]string{"id": "7"}},
		{"GET", "/api/services", "GET /api/services", nil},
		{"DELETE", "/api/orders/42", "", nil},
		{"GET", "/api/orders/42/status", "", nil},
		{"GET", "/api/orders", "", nil},
		{"GET", "/api/orders//status", "", nil},
		{"GET", "/api", "", nil},
		{"GET", "/", "", nil},
	} {
		o, params := s.Find(tc.method, tc.path)
		got := ""
		if o != nil {
			got = o.Method + " " + o.Path
		}
		if got != tc.want || (o != nil && !reflect.DeepEqual(params, tc.params)) {
			t.Errorf("%s %s: found %q %v, want %q %v", tc.method, tc.path, got, params, tc.want, tc.params)
		}
	}
}

// Concrete paths are matched before templated ones whatever the order in the file,
// and a server URL's path prefixes every path.
func TestFindPrefersLiteralsAndServerPrefixes(t *testing.T) {
	path := writeSpec(t, "s.yaml", `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: "https://api.example.com/v2/"}, {url: /v2}]
paths:
  /orders/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {responses: {"200": {description: ok}}}
  /orders/mine:
    get: {responses: {"200": {description: ok}}}
  /files/{name}.json:
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    get: {responses: {"200": {description: ok}}}
`)
	s, err := Load([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v2/orders/mine", "/v2/orders/mine"},
		{"/v2/orders/9", "/v2/orders/{id}"},
		{"/v2/files/a.b.json", "/v2/files/{name}.json"},
		{"/v2/files/a.xml", ""},
		{"/orders/9", ""},
	} {
		o, _ := s.Find("GET", tc.path)
		got := ""
		if o != nil {
			got = o.Path
		}
		if got != tc.want {
			t.Errorf("GET %s: found %q, want %q", tc.path, got, tc.want)
		}
	}
	if o, params := s.Find("GET", "/v2/files/a.b.json"); o == nil || params["name"] != "a.b" {
		t.Errorf("mixed segment: params %v", params)
	}
}

// signgate validate names a route with validate: that no operation covers: every
// request there would be refused as not in the spec.
func TestCoversGatewayRoutePatterns(t *testing.T) {
	s := loadDemo(t)
	for match, want := range map[string]bool{
		"POST /api/orders":            true,
		"* /api/orders/**":            true,
		"GET /api/orders/*":           true,
		"PUT /api/orders/*/status":    true,
		"* /api/**":                   true,
		"* /**":                       true,
		"GET /api/orders/42":          true,
		"DELETE /api/orders/*":        false,
		"POST /api/refunds":           false,
		"GET /api/orders/*/receipt":   false,
		"PUT /api/orders/*/status/**": true, // "**" takes no segment too
		"GET /api/services/**":        true,
		"GET /api/services/*":         false,
	} {
		if got := s.Covers(match); got != want {
			t.Errorf("Covers(%q) = %v, want %v", match, got, want)
		}
	}
}

// A broken spec is a config error naming its file and line, whatever is broken.
func TestLoadNamesFileAndLine(t *testing.T) {
	const head = "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\n"
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"YAML syntax", head + "paths: {/a: {get: {responses: {\"200\": {description: ok}}}}\n", 4, "YAML syntax"},
		{"unknown type", head + "paths:\n  /a:\n    get:\n      responses:\n        \"200\":\n          description: ok\n          content:\n            application/json:\n              schema: {type: strin}\n", 10, `unsupported 'type' value "strin"`},
		{"pattern that is not RE2", head + "paths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {type: string, pattern: \"(?=x)\"}\n      responses: {\"200\": {description: ok}}\n", 8, "error parsing regexp"},
		{"missing info.version", "openapi: 3.0.3\ninfo: {title: t}\npaths: {}\n", 2, "version"},
		{"wrong shape", head + "paths:\n  /a:\n    get:\n      responses: 5\n", 6, "cannot construct"},
		{"Swagger 2.0", "swagger: \"2.0\"\ninfo: {title: t, version: \"1\"}\npaths: {}\n", 1, "Swagger 2.0"},
		{"3.1 const", "openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              properties:\n                kind: {const: booking}\n      responses: {\"200\": {description: ok}}\n", 12, "const is a JSON Schema 2020-12 keyword signgate does not enforce"},
		{"remote $ref", head + "paths:\n  /a:\n    get:\n      responses:\n        \"200\": {$ref: \"https://example.com/r.yaml#/R\"}\n", 0, "remote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeSpec(t, "broken.yaml", tc.doc)
			_, err := Load([]string{path})
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Load: %v, want Problems", err)
			}
			p := ps[0]
			if p.File != path || p.Line != tc.line || !strings.Contains(p.Msg, tc.msg) || p.Spec != 0 {
				t.Errorf("problem %+v\nwant file %s line %d and a message holding %q", p, path, tc.line, tc.msg)
			}
		})
	}
}

func TestLoadRefusesAnOperationDefinedTwice(t *testing.T) {
	const doc = "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /a/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    get: {responses: {\"200\": {description: ok}}}\n"
	a := writeSpec(t, "a.yaml", doc)
	b := writeSpec(t, "b.yaml", strings.ReplaceAll(doc, "id", "x"))
	_, err := Load([]string{a, b})
	if err == nil || !strings.Contains(err.Error(), "GET /a/{x} is also defined as GET /a/{id} in "+a) {
		t.Errorf("Load: %v", err)
	}
}

// What OpenAPI 3.1 adds that the built-in validator enforces: type lists with
// null, numeric exclusive bounds, boolean schemas.
func TestOpenAPI31(t *testing.T) {
	path := writeSpec(t, "31.yaml", `openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /a:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [note, qty]
              additionalProperties: false
              properties:
                note: {type: [string, "null"], maxLength: 5}
                qty: {type: integer, exclusiveMinimum: 0}
                never: false
      responses: {"200": {description: ok}}
`)
	s, err := Load([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := s.Find("POST", "/a")
	for body, want := range map[string][]Violation{
		`{"note":null,"qty":1}`:       nil,
		`{"note":"short","qty":3}`:    nil,
		`{"note":"too long","qty":1}`: {{In: "body", At: "/note", Message: "maximum string length is 5"}},
		`{"note":1,"qty":0}`: {
			{In: "body", At: "/note", Message: "value must be one of string, null"},
			{In: "body", At: "/qty", Message: "number must be more than 0"},
		},
		`{"note":null,"qty":1,"never":1}`: {{In: "body", At: "/never", Message: "the false schema accepts no value"}},
	} {
		got, _ := o.ValidateRequest(context.Background(), jsonRequest("POST", "/a", body), nil, []byte(body))
		if !sameViolations(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", body, got, want)
		}
	}
}

// The body is read once and strictly: what the validator checks is what any
// upstream parser reads.
func TestJSONBodiesAreReadStrictly(t *testing.T) {
	s := loadDemo(t)
	o, _ := s.Find("PUT", "/api/orders/1/status")
	for body, want := range map[string]Violation{
		`{"status":"已接單","status":"已取消"}`: {In: "body", At: "/status", Message: `member "status" appears twice: send it once`},
		`{"status":"已接單"} {"status":"x"}`: {In: "body", Message: "the body holds more than one JSON value: send one"},
		"{\"status\":\"\xff\"}":           {In: "body", Message: "the body is not valid UTF-8: send JSON as UTF-8"},
		`{"status":`:                      {In: "body", Message: "the body is not valid JSON: unexpected end of JSON input"},
		`{"status" "x"}`:                  {In: "body", Message: "the body is not valid JSON: invalid character '\"' after object key"},
	} {
		got, _ := o.ValidateRequest(context.Background(), jsonRequest("PUT", "/api/orders/1/status", body), map[string]string{"id": "1"}, []byte(body))
		if !sameViolations(got, []Violation{want}) {
			t.Errorf("%q:\n got %+v\nwant %+v", body, got, want)
		}
	}
}

// Nested duplicate members are located by their JSON Pointer.
func TestDuplicateMemberIsLocated(t *testing.T) {
	_, err := decodeJSON([]byte(`{"x":[1,{}],"a":[ 0 , {"b":{"c/d":1,"c\u002fd":2}}]}`))
	je, ok := err.(*jsonError)
	if !ok || je.at() != "/a/1/b/c~1d" {
		t.Fatalf("err %v at %q", err, je.at())
	}
}

func TestResponseDrift(t *testing.T) {
	s := loadDemo(t)
	o, params := s.Find("GET", "/api/orders/42")
	req := jsonRequest("GET", "/api/orders/42", "")
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   []Violation
	}{
		{"as the spec says", 200, h, order(`"13812345678"`, `"待接單"`), nil},
		{"a status it does not list", 418, h, `{}`, []Violation{{In: "status", At: "418", Message: "not a status the operation answers with"}}},
		{"phone drifted", 200, h, order(`"+86 138 1234 5678"`, `"待接單"`), []Violation{{In: "body", At: "/phone", Message: `string doesn't match the regular expression "^1[3-9][0-9]{9}$"`}}},
		{"status renamed", 200, h, order(`"13812345678"`, `"pending"`), []Violation{{In: "body", At: "/status", Message: `value is not one of the allowed values ["待接單","已接單","服務中","已完成","已取消"]`}}},
		{"HTML error page", 200, http.Header{"Content-Type": {"text/html"}}, "<html>", []Violation{{In: "header", At: "Content-Type", Message: `want application/json, got "text/html"`}}},
		{"error envelope", 404, h, `{"code":"not_found","message":"no order 42"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unchecked := o.ValidateResponse(context.Background(), req, params, tc.status, tc.header, []byte(tc.body))
			if !sameViolations(got, tc.want) || unchecked != "" {
				t.Errorf("got %+v (unchecked %q)\nwant %+v", got, unchecked, tc.want)
			}
		})
	}
}

// order is an order as the backend answers it, with phone and status as given.
func order(phone, status string) string {
	return `{"id":42,"name":"王芳","phone":` + phone + `,"address":"幸福小區 3 棟","service_type":"cleaning",` +
		`"service_name":"日常保潔","appointment_time":"2026-11-23T10:00:00+08:00","status":` + status + `,"staff":null,` +
		`"history":[{"status":"待接單","at":"2026-11-22T09:00:00+08:00"}],"created_at":"2026-11-22T09:00:00+08:00"}`
}

func jsonRequest(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// sameViolations compares as sets: kin-openapi reports an object's members in
// name order, which is a detail, not the contract.
func sameViolations(got, want []Violation) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// A form body is checked by kin-openapi's decoders; a media type nothing can
// decode is not the caller's fault: it passes, said to be unchecked.
func TestOtherMediaTypes(t *testing.T) {
	path := writeSpec(t, "forms.yaml", `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    post:
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [qty]
              properties:
                qty: {type: integer, maximum: 9}
          application/xml:
            schema: {type: object}
      responses: {"200": {description: ok}}
`)
	s, err := Load([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := s.Find("POST", "/a")
	form := func(ct, body string) ([]Violation, string) {
		r := httptest.NewRequest("POST", "/a", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		return o.ValidateRequest(context.Background(), r, nil, []byte(body))
	}
	if vs, unchecked := form("application/x-www-form-urlencoded", "qty=3"); len(vs) != 0 || unchecked != "" {
		t.Errorf("a good form: %+v %q", vs, unchecked)
	}
	if vs, _ := form("application/x-www-form-urlencoded", "qty=30"); !sameViolations(vs, []Violation{{In: "body", At: "/qty", Message: "number must be at most 9"}}) {
		t.Errorf("a form over its maximum: %+v", vs)
	}
	if vs, unchecked := form("application/xml", "<a/>"); len(vs) != 0 || unchecked != UncheckedMediaType {
		t.Errorf("xml: %+v %q, want unchecked %q", vs, unchecked, UncheckedMediaType)
	}
	if vs, _ := form("application/json; charset=utf-16", "{}"); !sameViolations(vs, []Violation{{In: "header", At: "Content-Type", Message: "a charset other than UTF-8 cannot be checked against the interface spec: send UTF-8"}}) {
		t.Errorf("utf-16: %+v", vs)
	}
	r := httptest.NewRequest("POST", "/a", strings.NewReader("x"))
	r.Header["Content-Type"] = []string{"application/x-www-form-urlencoded", "application/xml"}
	if vs, _ := o.ValidateRequest(context.Background(), r, nil, []byte("x")); !sameViolations(vs, []Violation{{In: "header", At: "Content-Type", Message: "stated more than once: send one"}}) {
		t.Errorf("two Content-Types: %+v", vs)
	}
	r = httptest.NewRequest("POST", "/a", strings.NewReader("x"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Content-Encoding", "gzip")
	if vs, _ := o.ValidateRequest(context.Background(), r, nil, []byte("x")); !sameViolations(vs, []Violation{{In: "header", At: "Content-Encoding", Message: "a compressed body cannot be checked against the interface spec: send it uncompressed"}}) {
		t.Errorf("gzip: %+v", vs)
	}
}

// One Spec serves every request at once: validation shares the compiled documents
// and nothing else (run with -race).
func TestConcurrentValidation(t *testing.T) {
	s := loadDemo(t)
	good := `{"status":"已接單"}`
	bad := `{"status":"done","x":1}`
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				body := good
				if i%2 == 1 {
					body = bad
				}
				o, params := s.Find("PUT", "/api/orders/7/status")
				vs, _ := o.ValidateRequest(context.Background(), jsonRequest("PUT", "/api/orders/7/status", body), params, []byte(body))
				if (len(vs) == 0) != (body == good) {
					t.Errorf("%s: %+v", body, vs)
					return
				}
				h := http.Header{"Content-Type": {"application/json"}}
				if vs, _ := o.ValidateResponse(context.Background(), jsonRequest("PUT", "/api/orders/7/status", ""), params, 200, h, []byte(order(`"13812345678"`, `"已接單"`))); len(vs) != 0 {
					t.Errorf("answer: %+v", vs)
					return
				}
			}
		})
	}
	wg.Wait()
}

package server

// Attacks on OpenAPI validation, written during a security review and run through
// the real gateway against a real upstream. The attacker is a partner (or a
// mini-program user) who wants a request the interface spec forbids to reach the
// backend anyway: a value the gateway checks is not the value the backend reads.
// Each test says how, and what the gateway must do instead; a failing test is a
// finding.

import (
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
)

// FINDING (the first two cases). A query parameter sent twice: kin-openapi checks
// the first value (url.Values.Get); PHP and Rack keep the last, ASP.NET joins them
// ("10,500"), Express makes an array. Each case here is past the spec (limit at
// most 100, from a date) in the backend's reading, and reaches it.
//
// Held (the last two): a pair net/url cannot read (after a ";", which Rack 2 and
// Python before 3.9.2 split on; a broken escape, which PHP and Node keep as
// "500%") is invisible to the check, but httputil.ReverseProxy drops such pairs
// from the outbound query, so the backend never sees them either.
func TestAttackOASQueryParameterSpellings(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "off"))
	for _, tc := range []struct{ name, query string }{
		{"limit twice, the second too large", "from=2026-11-01&limit=10&limit=500"},
		{"from twice, the second not a date", "from=2026-11-01&from=yesterday"},
		{"limit after a semicolon", "from=2026-11-01&x=1;limit=500"},
		{"limit with a broken escape", "from=2026-11-01&limit=500%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			resp, body := g.do(t, "GET", "/api/reports?"+tc.query, appKey, nil)
			got := up.requests()
			if len(got) == before {
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%d %s, want 400", resp.StatusCode, body)
				}
				return
			}
			if sent := got[len(got)-1]; strings.Contains(sent, "limit=500") || strings.Contains(sent, "from=yesterday") {
				t.Errorf("%d: the upstream received %q, which breaks the spec in the backend's reading", resp.StatusCode, sent)
			}
		})
	}
}

// FINDING. A header parameter sent twice: kin-openapi checks the first value
// (Header.Get), the backend may read the last, or both joined ("csv, pdf").
// X-Report-Format's enum is [csv, json]; "pdf" reaches the backend.
func TestAttackOASHeaderParameterTwice(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "off"))
	before := len(up.requests())
	resp, body := atkDo(t, g.client, g.url, "GET", "/api/reports?from=2026-11-01", nil,
		http.Header{"X-Report-Format": {"csv", "pdf"}})
	if got := up.requests(); len(got) != before {
		t.Errorf("%d: X-Report-Format: csv and pdf reached the upstream (pdf is outside the enum)", resp.StatusCode)
	} else if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("%d %s, want 400", resp.StatusCode, body)
	}
}

// tipsSpec is an operation whose body schema, as most do, does not close its
// members with additionalProperties: false.
const tipsSpec = `openapi: 3.0.3
info: {title: Tips, version: "1"}
paths:
  /api/tips:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [amount]
              properties:
                amount: {type: integer, minimum: 1, maximum: 100}
      responses:
        "200": {description: taken}
`

// FINDING (low). decodeJSON refuses a member named twice "where the upstream
// could read something other than what is checked", but compares names exactly.
// Go's encoding/json (the reference backend's), ASP.NET Core's System.Text.Json
// (web defaults) and Jackson with ACCEPT_CASE_INSENSITIVE_PROPERTIES match member
// names without regard to case, the last one winning: {"amount":5,"AMOUNT":100000}
// is checked as 5 and booked as 100000. With additionalProperties: false the extra
// member is refused; without it (the OpenAPI default) it passes.
func TestAttackOASMemberNamedTwiceInAnotherCase(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "tips.openapi.yaml")
	if err := os.WriteFile(spec, []byte(tipsSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	var decoded []int
	up := goTipBackend(t, &decoded)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["POST /api/tips"]}
upstreams: {backend: {targets: [%q]}}
openapi: {specs: [%q]}
routes:
  - {name: tips, match: "POST /api/tips", upstream: backend, validate: {request: enforce}}
`, auth.HashKey(appKey), up, spec))
	for _, body := range []string{`{"amount":5,"AMOUNT":100000}`, `{"amount":5,"Amount":100000}`, `{"amount":5,"\u0041mount":100000}`} {
		resp, raw := g.do(t, "POST", "/api/tips", appKey, strings.NewReader(body), "Content-Type", "application/json")
		if resp.StatusCode == http.StatusOK && len(decoded) > 0 && decoded[len(decoded)-1] > 100 {
			t.Errorf("%s passed the spec's maximum of 100: the backend booked amount %d", body, decoded[len(decoded)-1])
		} else if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s", body, resp.StatusCode, raw)
		}
	}
}

// goTipBackend is a backend that decodes the tip as Go's encoding/json does, into
// a struct with a json tag, and records the amount it read.
func goTipBackend(t *testing.T, decoded *[]int) string {
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tip struct {
			Amount int `json:"amount"`
		}
		_ = json.NewDecoder(r.Body).Decode(&tip)
		mu.Lock()
		*decoded = append(*decoded, tip.Amount)
		mu.Unlock()
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// Held (regression guard): a body the gateway cannot check as the backend will
// read it is refused, never passed unchecked: a charset other than UTF-8 however
// spelled, the media type in capitals, no Content-Type, a compressed body however
// the coding is spelled.
func TestAttackOASBodySpellings(t *testing.T) {
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "off"))
	bad := bookingJSON(map[string]any{"phone": "1", "coupon": "FREE"})
	for _, tc := range []struct {
		name string
		hdr  http.Header
		body string
	}{
		{"charset=utf-16", http.Header{"Content-Type": {"application/json; charset=utf-16"}}, bad},
		{"charset quoted", http.Header{"Content-Type": {`application/json; charset="UTF-16LE"`}}, bad},
		{"charset twice", http.Header{"Content-Type": {"application/json; charset=utf-8; charset=utf-16"}}, bad},
		{"media type in capitals", http.Header{"Content-Type": {"Application/JSON"}}, bad},
		{"two media types in one value", http.Header{"Content-Type": {"application/json, text/plain"}}, bad},
		{"no Content-Type", nil, bad},
		{"a form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "phone=1&coupon=FREE"},
		{"gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, string(gzipBytes([]byte(bad)))},
		{"GZIP", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"GZIP"}}, string(gzipBytes([]byte(bad)))},
		{"identity, then gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity", "gzip"}}, string(gzipBytes([]byte(bad)))},
		{"a byte-order mark", http.Header{"Content-Type": {"application/json"}}, "\ufeff" + bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			resp, body := atkDo(t, g.client, g.url, "POST", "/api/orders", strings.NewReader(tc.body), tc.hdr)
			if got := up.requests(); len(got) != before {
				t.Errorf("%d: the upstream received a booking the spec forbids", resp.StatusCode)
			} else if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%d %s, want 400", resp.StatusCode, body)
			}
		})
	}
}

// digitsOf maps full-width digits to ASCII and drops everything else.
func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９':
			b.WriteRune('0' + r - '０')
		}
	}
	return b.String()
}

var fullMobile = regexp.MustCompile(`1[3-9][0-9]{9}`)

// Held (regression guard): a number the caller or the upstream writes where a
// violation names it (a member's name) is masked in the answer and in the log in
// every form DESIGN counts as a number: separated by spaces, dashes or dots,
// +86-prefixed, full-width.
func TestAttackOASViolationsMaskNumbersInEveryForm(t *testing.T) {
	forms := []string{"138 1234 5678", "138-1234-5678", "138.1234.5678", "+86 138 1234 5678", "８６１３８１２３４５６７８", "１３８１２３４５６７８"}
	up := newSpecUpstream(t)
	g := startGateway(t, validateConfig(t, up.URL, "enforce", "report"))
	change := map[string]any{}
	for _, f := range forms {
		change[f] = "x"
	}
	resp, body := g.do(t, "POST", "/api/orders", appKey, strings.NewReader(bookingJSON(change)), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var env fullEnvelope
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != len(forms) {
		t.Fatalf("%s: want one error per member", body)
	}
	for _, e := range env.Errors {
		if fullMobile.MatchString(digitsOf(e.At + e.Message)) {
			t.Errorf("the answer names a full number: %+v", e)
		}
	}
	drifted := validOrder[:len(validOrder)-1]
	for _, f := range forms {
		drifted += fmt.Sprintf(",%q:1", f)
	}
	drifted += "}"
	up.answerWith(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, drifted)
	})
	if resp, body := g.do(t, "GET", "/api/orders/42", appKey, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("report mode: %d %s", resp.StatusCode, body)
	}
	for _, msg := range []string{"request does not match the interface spec", "response does not match the interface spec"} {
		lines := g.logs.lines(t, msg)
		if len(lines) == 0 {
			t.Fatalf("no %q line", msg)
		}
		for _, l := range lines {
			v, _ := json.Marshal(l["violations"])
			var vs []map[string]string
			_ = json.Unmarshal(v, &vs)
			for _, x := range vs {
				if fullMobile.MatchString(digitsOf(x["at"] + x["message"])) {
					t.Errorf("%s: the log names a full number: %v", msg, x)
				}
			}
		}
	}
}

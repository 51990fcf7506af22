package apispec

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// paramsSpec declares parameters of every shape a repeat could be read in.
const paramsSpec = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /r:
    parameters:
      - {name: page, in: query, schema: {type: integer}}
      - {name: tag, in: query, schema: {type: string}}
    get:
      parameters:
        - {name: tag, in: query, schema: {type: array, items: {type: string}}}
        - {name: limit, in: query, schema: {type: integer, maximum: 100}}
        - {name: ids, in: query, explode: false, schema: {type: array, items: {type: integer}}}
        - {name: pipes, in: query, style: pipeDelimited, explode: true, schema: {type: array, items: {type: integer}}}
        - {name: either, in: query, schema: {oneOf: [{type: string}, {type: array, items: {type: string}}]}}
        - {name: q, in: query, content: {application/json: {schema: {type: object}}}}
        - {name: filter, in: query, schema: {type: object, properties: {color: {type: string}, page: {type: integer}}}}
        - {name: deep, in: query, style: deepObject, schema: {type: object, properties: {a: {type: string}}}}
        - {name: x-report-format, in: header, schema: {type: string, enum: [csv, json]}}
        - {name: X-Tags, in: header, schema: {type: array, items: {type: string}}}
        - {name: Accept, in: header, schema: {type: string}}
      responses: {"200": {description: ok}}
`

// A parameter that holds one value is checked on one of its statements; stated
// more than once, the backend may read another, so it is a violation. An array
// the style explodes into statements may repeat, as may an array header's lines.
func TestParameterStatedMoreThanOnce(t *testing.T) {
	s, err := Load([]string{writeSpec(t, "p.yaml", paramsSpec)})
	if err != nil {
		t.Fatal(err)
	}
	o, params := s.Find("GET", "/r")
	twice := func(in, at string) []Violation {
		return []Violation{{In: in, At: at, Message: "stated more than once: send it once"}}
	}
	for _, tc := range []struct {
		name, query string
		header      http.Header
		want        []Violation
	}{
		{"once each", "limit=10&page=2&ids=1,2&q=%7B%7D", nil, nil},
		{"limit twice", "limit=10&limit=500", nil, twice("query", "limit")},
		{"limit twice, once escaped", "limit=10&l%69mit=500", nil, twice("query", "limit")},
		{"limit twice, the first empty", "limit=&limit=50", nil, twice("query", "limit")},
		{"the path item's page twice", "page=1&page=2", nil, twice("query", "page")},
		{"tag, an array the operation overrides the path item's string with", "tag=a&tag=b", nil, nil},
		{"an exploded array", "pipes=1&pipes=2", nil, nil},
		{"an array in one statement, twice", "ids=1,2&ids=3", nil, twice("query", "ids")},
		{"a schema one of whose choices is an array", "either=a&either=b", nil, nil},
		{"a content parameter twice (kin-openapi reads the two as a list)", "q=%7B%7D&q=%7B%7D", nil,
			append(twice("query", "q"), Violation{In: "query", At: "q", Message: "value must be an object"})},
		{"a member of an exploded object twice", "color=red&color=blue", nil, twice("query", "filter/color")},
		{"a deepObject member twice (kin-openapi's own refusal)", "deep[a]=x&deep[a]=y", nil,
			[]Violation{{In: "query", At: "deep/a", Message: "value is array items must be set with indexes"}}},
		{"an undeclared key twice", "other=1&other=2", nil, nil},
		{"a header twice", "", http.Header{"X-Report-Format": {"csv", "pdf"}}, twice("header", "X-Report-Format")},
		{"a comma within one header line", "", http.Header{"X-Report-Format": {"csv, pdf"}},
			[]Violation{{In: "header", At: "X-Report-Format", Message: `value is not one of the allowed values ["csv","json"]`}}},
		{"an array header on two lines", "", http.Header{"X-Tags": {"a", "b,c"}}, nil},
		{"a header OpenAPI ignores", "", http.Header{"Accept": {"text/csv", "application/json"}}, nil},
	} {
		r := httptest.NewRequest("GET", "/r?"+tc.query, nil)
		for k, v := range tc.header {
			r.Header[k] = v
		}
		if got, _ := o.ValidateRequest(context.Background(), r, params, nil); !sameViolations(got, tc.want) {
			t.Errorf("%s (%s %v):\n got %+v\nwant %+v", tc.name, tc.query, tc.header, got, tc.want)
		}
	}
}

// Go's encoding/json, ASP.NET Core and case-insensitive Jackson match a member's
// name to a field without regard to case, the last one winning: a name stated
// twice in any letter case is a member named twice.
func TestMemberNamedTwiceInAnotherCase(t *testing.T) {
	many := `{"m0":0,"m1":1,"m2":2,"m3":3,"m4":4,"m5":5,"m6":6,"m7":7,"m8":8,"m9":9,"m10":0,"m11":1,"m12":2,"m13":3,"m14":4,"m15":5,"m16":6,`
	for body, want := range map[string]struct{ at, msg string }{
		`{"amount":5,"AMOUNT":100000}`:          {"/AMOUNT", `member "AMOUNT" appears twice, also as "amount" (names are matched regardless of case): send it once`},
		`{"amount":5,"\u0041mount":100000}`:     {"/Amount", `member "Amount" appears twice, also as "amount" (names are matched regardless of case): send it once`},
		`{"a":{"Kind":1,"\u212aind":2}}`:        {"/a/\u212aind", "member \"\u212aind\" appears twice, also as \"Kind\" (names are matched regardless of case): send it once"},
		`{"size":1,"ſize":2}`:                   {"/ſize", `member "ſize" appears twice, also as "size" (names are matched regardless of case): send it once`},
		`{"Straße":1,"STRASSE":2,"straße":3}`:   {"/straße", `member "straße" appears twice, also as "Straße" (names are matched regardless of case): send it once`},
		many + `"Amount":1,"m17":7,"AMOUNT":2}`: {"/AMOUNT", `member "AMOUNT" appears twice, also as "Amount" (names are matched regardless of case): send it once`},
		many + `"M3":1}`:                        {"/M3", `member "M3" appears twice, also as "m3" (names are matched regardless of case): send it once`},
		many + `"m3":1}`:                        {"/m3", `member "m3" appears twice: send it once`},
	} {
		_, err := decodeJSON([]byte(body))
		je, ok := err.(*jsonError)
		if !ok || je.at() != want.at || je.msg != want.msg {
			t.Errorf("%s: %v at %q, want %q at %q", body, err, je.at(), want.msg, want.at)
		}
	}
	for _, body := range []string{`{"a":1,"b":2,"ab":3,"A_":4}`, `{"ss":1,"ß":2}`, many + `"M17":1}`} {
		if _, err := decodeJSON([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

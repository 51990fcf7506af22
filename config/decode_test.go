package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown key with its line",
			yaml: "server:\n  listen: \":8443\"\n  lissen: \":8443\"\n",
			want: []string{`server.lissen (line 3): unknown key "lissen"`},
		},
		{
			name: "unknown top-level section",
			yaml: "servers:\n  listen: \":8443\"\n",
			want: []string{`servers (line 1): unknown key "servers"`},
		},
		{
			name: "unknown key in a list element",
			yaml: "routes:\n  - name: api\n    match: \"GET /\"\n    upsteam: backend\n",
			want: []string{`routes[0].upsteam (line 4): unknown key "upsteam"`},
		},
		{
			name: "computed fields cannot be written",
			yaml: "roles:\n  r: {allowset: []}\n",
			want: []string{`roles.r.allowset (line 2): unknown key "allowset"`},
		},
		{
			name: "wrong scalar types",
			yaml: "server:\n  max_body_bytes: abc\n  pprof: yes\n  shutdown_timeout: 30\n",
			want: []string{
				`server.max_body_bytes (line 2): want an integer, got "abc"`,
				`server.pprof (line 3): want true or false, got "yes"`,
				`server.shutdown_timeout (line 4): want a duration such as "10s" or "2h", got "30"`,
			},
		},
		{
			name: "mapping where a list belongs",
			yaml: "clients: {id: a}\n",
			want: []string{`clients (line 1): want a list, got a mapping`},
		},
		{
			name: "scalar where a mapping belongs",
			yaml: "upstreams:\n  backend: http://127.0.0.1:9000\n",
			want: []string{`upstreams.backend (line 2): want a mapping, got "http://127.0.0.1:9000"`},
		},
		{
			name: "list where a string belongs",
			yaml: "tls:\n  email: [a, b]\n",
			want: []string{`tls.email (line 2): want a string, got a list`},
		},
		{
			name: "duplicate key",
			yaml: "server:\n  listen: \":1\"\n  listen: \":2\"\n",
			want: []string{`server.listen (line 3): key "listen" is already set at line 2`},
		},
		{
			name: "file that is not a mapping",
			yaml: "- server\n",
			want: []string{`line 1: want a mapping, got a list`},
		},
		{
			name: "YAML syntax error has its line",
			yaml: "server:\n  listen: [\n",
			want: []string{`line 2: YAML syntax: did not find expected node content`},
		},
		{
			name: "two documents",
			yaml: "server: {}\n---\ntls: {}\n",
			want: []string{`line 2: only one YAML document is allowed`},
		},
		{
			name: "an anchor that merges itself",
			yaml: "server: {<<: &a {<<: *a}}\n",
			want: []string{`server (line 1): << merges nested too deep`},
		},
		{
			name: "merge of a scalar",
			yaml: "server: {<<: x}\n",
			want: []string{`server (line 1): << merges a mapping or a list of mappings, got "x"`},
		},
		{
			name: "wrong type does not also fail validation",
			yaml: "server:\n  max_body_bytes: 1MB\nroutes:\n  - name: a\n    match: GET /\n    upstream: ${NOPE}\n",
			want: []string{
				`server.max_body_bytes (line 2): want an integer, got "1MB"`,
				`routes[0].upstream (line 6): environment variable NOPE is not set`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, problemsOf(t, tt.yaml), tt.want)
		})
	}
}

func TestAliasFanOutIsBounded(t *testing.T) {
	// 400 upstreams aliasing one list of 400 targets: 160,000 values from a few KB.
	var b strings.Builder
	b.WriteString("x: &t [")
	for i := range 400 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"http://a"`)
	}
	b.WriteString("]\nupstreams:\n")
	for i := range 400 {
		fmt.Fprintf(&b, "  u%d: {targets: *t}\n", i)
	}
	errs := problemsOf(t, b.String())
	want := "too many values: more than 100000, counting every use of an alias"
	if !slices.ContainsFunc(errs, func(s string) bool { return strings.HasSuffix(s, want) }) {
		t.Errorf("no problem says %q; got %d problems, first %q", want, len(errs), errs[0])
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	cfg := mustParse(t, `
upstreams:
  a: &pool
    targets: ["http://10.0.0.1:80"]
    retries: 2
  b:
    <<: *pool
    retries: 0
  c:
    <<: [{dial_timeout: 1s}, {dial_timeout: 9s, retries: 5}]
    targets: ["http://10.0.0.2:80"]
`)
	a, b, c := cfg.Upstreams["a"], cfg.Upstreams["b"], cfg.Upstreams["c"]
	if a.Retries != 2 || b.Retries != 0 {
		t.Errorf("retries a=%d b=%d, want 2 and 0: keys written in the mapping win over merged ones", a.Retries, b.Retries)
	}
	if len(b.Targets) != 1 || b.Targets[0] != "http://10.0.0.1:80" {
		t.Errorf("b.targets = %v, want the merged targets of a", b.Targets)
	}
	if c.DialTimeout != time.Second || c.Retries != 5 {
		t.Errorf("c: dial_timeout %v retries %d, want 1s from the first merge and 5 from the second", c.DialTimeout, c.Retries)
	}
}

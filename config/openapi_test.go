package config

import (
	"os"
	"path/filepath"
	"testing"
)

// validateRoutes is a config with an upstream and the routes given.
func validateRoutes(routes, extra string) string {
	return "upstreams: {u: {targets: [\"http://u:1\"]}}\n" +
		"daojia: {base_url: \"http://d:1\", service_key: k, service_secret: s}\n" +
		"wechat: {appid: wx0123456789abcdef, secret: s}\n" +
		"routes:\n" + routes + extra
}

func TestOpenAPIValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "validate without specs",
			yaml: validateRoutes("  - {name: a, match: \"POST /a\", upstream: u, validate: {request: enforce}}\n", ""),
			want: []string{`routes[0].validate (line 5): needs openapi.specs: the interface spec to check requests and answers against`},
		},
		{
			name: "off and empty need nothing",
			yaml: validateRoutes("  - {name: a, match: \"POST /a\", upstream: u, validate: {request: off, response: \"\"}}\n", ""),
		},
		{
			name: "a word that is not a mode",
			yaml: validateRoutes("  - {name: a, match: \"POST /a\", upstream: u, validate: {request: strict, response: warn}}\n", "openapi: {specs: [a.yaml]}\n"),
			want: []string{
				`routes[0].validate.request (line 5): want one of , enforce, report, off; got "strict"`,
				`routes[0].validate.response (line 5): want one of , enforce, report, off; got "warn"`,
			},
		},
		{
			name: "routes the gateway or 58到家 answers",
			yaml: validateRoutes(
				"  - {name: r, match: \"POST /d/**\", daojia: relay, validate: {request: enforce}}\n"+
					"  - {name: w, match: \"POST /login\", wechat: login, validate: {response: report}}\n",
				"openapi: {specs: [a.yaml]}\n"),
			want: []string{
				`routes[0].validate (line 5): a daojia: relay route speaks 58到家's API, not an upstream's: validate applies to routes with an upstream`,
				`routes[1].validate (line 6): a wechat: login route is answered by the gateway itself: validate applies to routes with an upstream`,
			},
		},
		{
			name: "an empty spec path",
			yaml: "openapi:\n  specs:\n    - \"\"\n",
			want: []string{`openapi.specs[0] (line 3): may not be empty: want the path of an OpenAPI 3.0 or 3.1 file`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			equalLines(t, problemsOf(t, tc.yaml), tc.want)
		})
	}
}

// A relative spec path is the config file's neighbour, wherever signgate runs
// from; an absolute one stays as written.
func TestLoadResolvesSpecsAgainstTheConfigsDirectory(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(t.TempDir(), "shared.yaml")
	path := filepath.Join(dir, "config.yaml")
	yaml := "openapi:\n  specs: [orders.openapi.yaml, specs/staff.yaml, " + abs + "]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "orders.openapi.yaml"), filepath.Join(dir, "specs", "staff.yaml"), abs}
	equalLines(t, cfg.OpenAPI.Specs, want)
}

// The server reports what it finds wrong with the specs at the lines the file
// names them, as validate's own problems are.
func TestProblemAtPlacesLaterProblems(t *testing.T) {
	cfg := mustParse(t, validateRoutes(
		"  - {name: a, match: \"POST /a\", upstream: u}\n"+
			"  - name: b\n    match: \"POST /b\"\n    upstream: u\n    validate: {request: enforce}\n",
		"openapi:\n  specs:\n    - a.yaml\n    - b.yaml\n"))
	for _, tc := range []struct {
		path string
		want string
	}{
		{"openapi.specs[1]", "openapi.specs[1] (line 13): broken"},
		{"routes[1].match", "routes[1].match (line 7): broken"},
		{"routes[1].validate", "routes[1].validate (line 9): broken"},
		{"routes[1].validate.request", "routes[1].validate.request (line 9): broken"},
		{"nowhere.at.all", "nowhere.at.all: broken"},
	} {
		if got := cfg.ProblemAt(tc.path, "broken").String(); got != tc.want {
			t.Errorf("ProblemAt(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signgate validate loads the interface specs (relative to the config file) and
// names, in its problem format, a broken spec and a route with validate: that no
// operation covers.
func TestValidateChecksTheInterfaceSpecs(t *testing.T) {
	spec, err := os.ReadFile("../../examples/orders.openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	config := `upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
openapi:
  specs: [orders.openapi.yaml]
routes:
  - {name: orders-create, match: "POST /api/orders", upstream: backend, validate: {request: enforce}}
  - {name: orders, match: "* /api/orders/**", upstream: backend, validate: {request: enforce, response: report}}
%s  - {name: api, match: "* /api/**", upstream: backend}
`
	setup := func(t *testing.T, spec []byte, extraRoute string) (dir, path string) {
		dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "orders.openapi.yaml"), spec, 0o600); err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(strings.Replace(config, "%s", extraRoute, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir, path
	}

	t.Run("the spec covers every validated route", func(t *testing.T) {
		_, path := setup(t, spec, "")
		if out, code := runCLI(t, "", "validate", "-config", path); code != 0 || strings.TrimSpace(out) != "ok" {
			t.Errorf("exit %d\n%s", code, out)
		}
	})
	t.Run("a route no operation covers", func(t *testing.T) {
		_, path := setup(t, spec, "  - {name: refunds, match: \"POST /api/refunds\", upstream: backend, validate: {request: enforce}}\n")
		out, code := runCLI(t, "", "validate", "-config", path)
		want := `routes[2].match (line 8): route "refunds" validates against openapi.specs, but no operation there covers "POST /api/refunds": every request would be refused as not in the interface spec`
		if code != 1 || strings.TrimSpace(out) != want {
			t.Errorf("exit %d\n%s\nwant exit 1 and\n%s", code, out, want)
		}
	})
	t.Run("a broken spec, with its file and line", func(t *testing.T) {
		broken := strings.Replace(string(spec), "      schema: {type: integer, format: int64, minimum: 1}", "      schema: {type: int, format: int64, minimum: 1}", 1)
		dir, path := setup(t, []byte(broken), "")
		out, code := runCLI(t, "", "validate", "-config", path)
		want := "openapi.specs[0] (line 4): " + filepath.Join(dir, "orders.openapi.yaml") + ":"
		if code != 1 || !strings.HasPrefix(out, want) || !strings.Contains(out, `unsupported 'type' value "int"`) {
			t.Errorf("exit %d\n%s\nwant exit 1 and a line starting %s", code, out, want)
		}
	})
}

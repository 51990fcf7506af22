package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/signgate/signgate/config"
)

func TestExplainCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // lines the output holds
	}{
		{"a provider's status move, flags first",
			[]string{"-config", "../../examples/config.demo.yaml", "-key-id", "sunshine-housekeeping", "PUT", "/api/orders/42/status"}, 0,
			[]string{"route: order-status (routes[3], match \"PUT /api/orders/*/status\")", "client sunshine-housekeeping:", "  => sent to upstream property-backend"}},
		{"the mini-program's, flags after",
			[]string{"PUT", "/api/orders/42/status", "-config", "../../examples/config.demo.yaml", "-key-id", "property-miniapp"}, 0,
			[]string{"  => refused: 403 forbidden: none of client property-miniapp's roles [resident_app] allows PUT /api/orders/42/status"}},
		{"the embedded default", []string{"-config", "", "GET", "/api/hello"}, 0, []string{"route: "}},
		{"an unknown client", []string{"-config", "../../examples/config.demo.yaml", "-key-id", "nobody", "GET", "/api/services"}, 1, nil},
		{"no path", []string{"-config", "../../examples/config.demo.yaml", "GET"}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"explain"}, tc.args...), nil, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			lines := strings.Split(stdout.String(), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no line %q in:\n%s", w, &stdout)
				}
			}
		})
	}
}

func TestSchemaCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"schema"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	want, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Error("signgate schema prints something other than config.Schema()")
	}
}

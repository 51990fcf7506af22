package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzConfig feeds Parse arbitrary bytes: it must never panic, and it must answer
// either a config or Errors whose every problem has a message, one per printed line.
func FuzzConfig(f *testing.F) {
	repo, err := os.ReadFile("../config.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(repo)
	f.Add(DefaultYAML)
	f.Add([]byte("server: {<<: &a {<<: *a}}\nroutes: &r [*r]\n"))
	f.Add([]byte("clients:\n  - secret: ${X:-${Y}}\n    id: $$\n"))
	// Every variable is set, so fuzzed references exercise expansion rather than
	// stopping at "not set".
	env := func(name string) (string, bool) { return "v", name != "UNSET" }
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, env)
		if err == nil {
			if cfg == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("err = %T %v, want non-empty Errors", err, err)
		}
		for _, p := range errs {
			if p.Msg == "" {
				t.Errorf("problem without a message: %#v", p)
			}
		}
		if n := strings.Count(err.Error(), "\n") + 1; n < len(errs) {
			t.Errorf("Error() has %d lines for %d problems", n, len(errs))
		}
	})
}

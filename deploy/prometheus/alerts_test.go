// Package prometheus holds no code: its test checks the alert rules and scrape config
// beside it, so a rule that names a metric the gateway does not export, or a file
// Prometheus would refuse, fails `go test` rather than a deploy.
package prometheus

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// rulesFile is the shape of a Prometheus rule file, decoded strictly: an unknown key
// here is one Prometheus would refuse too.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) map[string]rule {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f rulesFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	rules := make(map[string]rule)
	for _, g := range f.Groups {
		if g.Name == "" {
			t.Error("a group without a name")
		}
		for _, r := range g.Rules {
			if _, dup := rules[r.Alert]; dup {
				t.Errorf("alert %q defined twice", r.Alert)
			}
			rules[r.Alert] = r
		}
	}
	return rules
}

func TestAlertRulesAreWellFormed(t *testing.T) {
	rules := loadRules(t)
	if len(rules) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	for name, r := range rules {
		t.Run(name, func(t *testing.T) {
			switch {
			case name == "":
				t.Error("a rule without an alert name")
			case strings.TrimSpace(r.Expr) == "":
				t.Error("no expr")
			case !slices.Contains([]string{"page", "ticket", "info"}, r.Labels["severity"]):
				t.Errorf("severity %q, want page, ticket or info", r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Error("no summary annotation")
			case strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")"):
				t.Errorf("unbalanced parentheses in %q", r.Expr)
			}
		})
	}
}

// The alarms that keep the mini-program working: WeChat refuses a domain with a bad
// certificate, and the relay fails without a 58到家 token.
func TestExpiryAlarms(t *testing.T) {
	rules := loadRules(t)
	tests := []struct {
		alert    string
		severity string
		expr     []string // fragments the expression must hold
	}{
		{"SigngateCertificateExpiresSoon", "ticket", []string{"signgate_tls_certificate_expiry_timestamp_seconds - time()", "< 14 * 86400"}},
		{"SigngateCertificateExpiring", "page", []string{"signgate_tls_certificate_expiry_timestamp_seconds - time()", "< 3 * 86400"}},
		{"SigngateCertificateRenewalFailing", "ticket", []string{"increase(signgate_tls_renewal_failures_total["}},
		{"SigngateDaojiaTokenExpired", "page", []string{"signgate_daojia_token_expiry_timestamp_seconds < time()", `signgate_daojia_token_fetches_total{result="error"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.alert, func(t *testing.T) {
			r, ok := rules[tt.alert]
			if !ok {
				t.Fatalf("alerts.yml has no %s", tt.alert)
			}
			if r.Labels["severity"] != tt.severity {
				t.Errorf("severity %q, want %q", r.Labels["severity"], tt.severity)
			}
			for _, frag := range tt.expr {
				if !strings.Contains(r.Expr, frag) {
					t.Errorf("expr %q lacks %q", r.Expr, frag)
				}
			}
		})
	}
}

var (
	// metricRef is a signgate metric named in an expression.
	metricRef = regexp.MustCompile(`\bsigngate_[a-z0-9_]+`)
	// metricDef is a metric name as the Go code declares it.
	metricDef = regexp.MustCompile(`"(signgate_[a-z0-9_]+)"`)
)

// Every signgate metric a rule names is one the gateway declares, so a renamed
// metric cannot leave an alert that never fires.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	declared := make(map[string]bool)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricDef.FindAllSubmatch(b, -1) {
			declared[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range loadRules(t) {
		for _, ref := range metricRef.FindAllString(r.Expr, -1) {
			base := ref
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(ref, suffix); ok && declared[s] {
					base = s
				}
			}
			if !declared[base] {
				t.Errorf("%s: %s is not a metric the gateway declares", name, ref)
			}
		}
	}
}

func TestScrapeConfigLoadsTheRules(t *testing.T) {
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if !slices.ContainsFunc(cfg.RuleFiles, func(f string) bool { return filepath.Base(f) == "alerts.yml" }) {
		t.Errorf("prometheus.yml rule_files %v do not load alerts.yml", cfg.RuleFiles)
	}
}

// With promtool installed (Debian's prometheus package), Prometheus's own parser
// checks the rules and alerts.test.yml checks what fires when. Without it the tests
// above still hold; promtool is not a test dependency.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: Prometheus's own checks not run")
		return
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The deploy/ files are read by tools this machine lacks (Docker, Prometheus,
// Grafana); the least a test can do is check they parse and name real metrics.
func TestDeployFiles(t *testing.T) {
	t.Run("the fleet's config validates", func(t *testing.T) {
		cmd := exec.Command(binary, "validate", "-config", "../../deploy/config.yaml")
		cmd.Env = append(os.Environ(), "SUNSHINE_SECRET=s3cret")
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("validate: %v\n%s", err, out)
		}
	})
	for _, f := range []string{"../../deploy/docker-compose.yml", "../../deploy/prometheus/alerts.yml", "../../deploy/prometheus/prometheus.yml"} {
		t.Run(f+" is YAML", func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := yaml.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("alerts and dashboard use the metrics the gateway exports", func(t *testing.T) {
		alerts, _ := os.ReadFile("../../deploy/prometheus/alerts.yml")
		dash, err := os.ReadFile("../../deploy/grafana/signgate.json")
		if err != nil || !json.Valid(dash) {
			t.Fatalf("dashboard is not JSON: %v", err)
		}
		for _, m := range []string{"signgate_requests_total", "signgate_request_duration_seconds", "signgate_auth_failures_total",
			"signgate_rate_limited_total", "signgate_upstream_errors_total", "signgate_daojia_token_fetches_total", "signgate_config_reloads_total"} {
			if !strings.Contains(string(alerts), m) || !strings.Contains(string(dash), m) {
				t.Errorf("%s missing from the alerts or the dashboard", m)
			}
		}
	})
}

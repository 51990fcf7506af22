package tlsedge

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestZapToSlog(t *testing.T) {
	var buf logBuffer
	l := zapToSlog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))

	l.Debug("below the level")
	l.Named("obtain").With(zap.String("identifier", "a.test")).Warn("retrying",
		zap.Error(errors.New("CA unreachable")), zap.Duration("after", 2*time.Second),
		zap.Strings("names", []string{"a.test", "b.test"}), zap.Int("attempt", 3))
	l.Error("failed")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (debug filtered out by the slog level):\n%s", len(lines), buf.String())
	}
	var warn map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &warn); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"level": "WARN", "msg": "retrying", "component": "certmagic", "logger": "obtain",
		"identifier": "a.test", "error": "CA unreachable", "after": float64(2e9),
		"names": []any{"a.test", "b.test"}, "attempt": float64(3),
	}
	for k, v := range want {
		if got, _ := json.Marshal(warn[k]); string(got) != mustJSON(t, v) {
			t.Errorf("%s = %s, want %s", k, got, mustJSON(t, v))
		}
	}
	if !strings.Contains(lines[1], `"level":"ERROR"`) {
		t.Errorf("zap error not an slog error: %s", lines[1])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package ratelimit

import (
	"testing"
	"time"
)

func TestRuleAppliesTo(t *testing.T) {
	tests := []struct {
		name   string
		routes []string
		route  string
		want   bool
	}{
		{"no routes means every route", nil, "orders-create", true},
		{"listed route", []string{"api", "orders-create"}, "orders-create", true},
		{"unlisted route", []string{"orders-create"}, "api", false},
		{"requests that matched no route are limited only by unscoped rules", []string{"api"}, "no_route", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rule{Name: "rate_limits[0]", Routes: tt.routes}
			if got := r.AppliesTo(tt.route); got != tt.want {
				t.Fatalf("AppliesTo(%q) = %v, want %v", tt.route, got, tt.want)
			}
		})
	}
}

func TestRuleBurst(t *testing.T) {
	tests := []struct {
		name                   string
		count, burst           int
		wantBurst, wantLimitHd int
	}{
		{"burst given", 10, 40, 40, 10},
		{"burst left out takes the count", 10, 0, 10, 10},
		{"neither: one at a time", 0, 0, 1, 1},
		{"burst without a count reports the burst as the limit", 0, 5, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rule{Count: tt.count, Burst: tt.burst}
			if r.burst() != tt.wantBurst || r.limit() != tt.wantLimitHd {
				t.Fatalf("burst %d, limit %d; want %d, %d", r.burst(), r.limit(), tt.wantBurst, tt.wantLimitHd)
			}
		})
	}
}

func TestStricter(t *testing.T) {
	allowed := func(remaining int, reset time.Duration) Decision {
		return Decision{Allowed: true, Limit: 10, Remaining: remaining, Reset: reset}
	}
	refused := func(retry time.Duration) Decision {
		return Decision{Limit: 10, Reset: time.Minute, RetryAfter: retry}
	}
	tests := []struct {
		name string
		a, b Decision
		want Decision
	}{
		{"a refusal beats an admission", allowed(5, 0), refused(time.Second), refused(time.Second)},
		{"whichever side the refusal is on", refused(time.Second), allowed(5, 0), refused(time.Second)},
		{"of two refusals the later retry", refused(time.Second), refused(time.Minute), refused(time.Minute)},
		{"of two admissions the fewer remaining", allowed(2, time.Second), allowed(7, time.Minute), allowed(2, time.Second)},
		{"equal remaining: the later reset", allowed(2, time.Second), allowed(2, time.Minute), allowed(2, time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Stricter(tt.a, tt.b); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

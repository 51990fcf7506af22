package ratelimit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// Rule is one entry of the config's rate_limits: how many requests per key it lets
// through. Limiters read a Rule and never change it; build rules once per config load.
type Rule struct {
	// Name identifies the rule's buckets, e.g. "rate_limits[2]". A reload that keeps a
	// rule's Name keeps its buckets; one that changes its rate or burst under the same
	// Name keeps the state and applies the new numbers from the next decision on.
	Name string
	// Key says what a bucket is per: "ip", "client", "route", or several joined by "+"
	// ("client+route"). Limiters do not read it; the caller resolves it to the key
	// string it passes to Allow.
	Key string
	// Routes are the route names the rule applies to; empty means every route.
	Routes []string
	// Limit is the sustained rate in events per second ("10/m" is 10/60).
	Limit float64
	// Period is the unit the config gave the rate in (s, m or h).
	Period time.Duration
	// Count is the N of the config's "N/period", reported as RateLimit-Limit.
	Count int
	// Burst is how many events may pass at once after a quiet spell. Below 1 it is
	// taken as Count (so "10/m" admits 10 at once, as the config reads), or 1.
	Burst int
	// IPv6Prefix is, where Key counts by "ip", how many leading bits of an IPv6
	// caller's address make its key (see AddressKey); 0 means DefaultIPv6Prefix.
	// Limiters do not read it either.
	IPv6Prefix int
}

// AppliesTo reports whether the rule limits requests on the named route.
func (r *Rule) AppliesTo(route string) bool {
	return len(r.Routes) == 0 || slices.Contains(r.Routes, route)
}

// burst is the bucket size the limiters use; see Rule.Burst.
func (r *Rule) burst() int {
	switch {
	case r.Burst >= 1:
		return r.Burst
	case r.Count >= 1:
		return r.Count
	}
	return 1
}

// limit is what Decision.Limit reports: the config's N, or the burst when the rule was
// built without one.
func (r *Rule) limit() int {
	if r.Count > 0 {
		return r.Count
	}
	return r.burst()
}

// check refuses a rule no bucket can implement. Config validation should make this
// unreachable; checking here turns a bug into an error instead of a limiter that admits
// nothing, or everything.
func (r *Rule) check() error {
	if !(r.Limit > 0) || math.IsInf(r.Limit, 1) {
		return fmt.Errorf("ratelimit: rule %q: rate %v is not a positive number", r.Name, r.Limit)
	}
	return nil
}

// Decision is a limiter's answer for one request under one rule, with what the
// RateLimit-* and Retry-After headers report.
type Decision struct {
	// Allowed is true when the request may pass.
	Allowed bool
	// Limit is the rule's Count, for RateLimit-Limit.
	Limit int
	// Remaining is how many more requests would pass right now, for RateLimit-Remaining.
	Remaining int
	// Reset is how long until the bucket is full again, for RateLimit-Reset.
	Reset time.Duration
	// RetryAfter is, when refused, how long until one request would pass; 0 when allowed.
	RetryAfter time.Duration
}

// Limiter decides requests against rules. Implementations are safe for concurrent use.
type Limiter interface {
	// Allow takes one request from the bucket of rule and key, key being the value the
	// caller resolved for rule.Key (an IP, a client id, "client-a|orders-create").
	// An error means no decision was made; see NewFallback.
	Allow(ctx context.Context, rule *Rule, key string) (Decision, error)
}

// Stricter returns whichever of two decisions for the same request binds harder, so
// that where several rules apply the strictest answer wins: a refusal over an
// admission, the later retry between refusals, the fewer remaining between admissions.
func Stricter(a, b Decision) Decision {
	switch {
	case a.Allowed != b.Allowed:
		if !a.Allowed {
			return a
		}
		return b
	case !a.Allowed:
		if b.RetryAfter > a.RetryAfter {
			return b
		}
		return a
	case b.Remaining < a.Remaining, b.Remaining == a.Remaining && b.Reset > a.Reset:
		return b
	}
	return a
}

package server

import (
	"net/http"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/ratelimit"
)

// The two decisions `signgate explain` reports that only the gateway's own code
// makes. They are exported as they are, not restated, so the explanation cannot
// drift from what the gateway does.

// RefusedBeforeRouting returns the answer the gateway gives r before any route is
// chosen (a method that is not upper-case letters, a path in other than canonical
// form, a query that does not fit a request line, CONNECT, a non-WebSocket upgrade),
// or nil when r goes on to routing.
func RefusedBeforeRouting(r *http.Request) *apierror.Error { return refusedPath(r) }

// RateLimitsFor returns the indexes into cfg.RateLimits of the rules that apply to
// rt, split as the gateway runs them: before authentication (a stranger's budget:
// its address) and after it (see limitsFor). A rule applying to no request on rt
// (a client rule on a public route) is in neither.
func RateLimitsFor(cfg *config.Config, rt *config.Route) (before, after []int) {
	rules := limitRules(cfg.RateLimits, cfg.RateLimit.IPv6Prefix)
	b, a := limitsFor(rules, rt.Name, rt.Public)
	index := func(picked []*ratelimit.Rule) []int {
		var out []int
		for _, p := range picked {
			for i, r := range rules {
				if r == p {
					out = append(out, i)
				}
			}
		}
		return out
	}
	return index(b), index(a)
}

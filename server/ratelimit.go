package server

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/reqinfo"
)

// limitRules turns rate_limits into rules. A rule's name is its content, so a reload
// that keeps a rule keeps its buckets (in memory and in Redis) and a changed rule
// starts afresh.
func limitRules(cfg []config.RateLimit) []*ratelimit.Rule {
	rules := make([]*ratelimit.Rule, 0, len(cfg))
	for _, rl := range cfg {
		count := int(math.Round(rl.Limit * rl.Period.Seconds()))
		rules = append(rules, &ratelimit.Rule{
			Name:   fmt.Sprintf("%s@%s:%s:b%d", rl.Key, strings.Join(rl.Routes, ","), rl.Rate, rl.Burst),
			Key:    rl.Key,
			Routes: rl.Routes,
			Limit:  rl.Limit,
			Period: rl.Period,
			Count:  count,
			Burst:  rl.Burst,
		})
	}
	return rules
}

// limitsFor returns the rules for one route, split by when they can run: rules keyed
// only by ip and route run before authentication (so key guessing is limited per
// address), rules that name the client after it.
func limitsFor(rules []*ratelimit.Rule, routeName string) (before, after []*ratelimit.Rule) {
	for _, r := range rules {
		if !r.AppliesTo(routeName) {
			continue
		}
		if strings.Contains(r.Key, "client") {
			after = append(after, r)
		} else {
			before = append(before, r)
		}
	}
	return before, after
}

// refusalRules are the rules that also count the requests refused before any route
// is chosen: those keyed by the caller's address alone and scoped to no routes,
// the ones that are meant to hold for everything an address sends.
func refusalRules(rules []*ratelimit.Rule) []*ratelimit.Rule {
	var out []*ratelimit.Rule
	for _, r := range rules {
		if r.Key == "ip" && len(r.Routes) == 0 {
			out = append(out, r)
		}
	}
	return out
}

// refusal answers a request refused before any route is chosen.
type refusal func(w http.ResponseWriter, r *http.Request, err error)

// refusals returns how requests refused before routing (no route matches, or
// cleanPath refuses the path) are answered: counted against rules first, which
// they otherwise reach no route's limiter for, so spraying 404s and 400s would cost
// nothing while every routed request from the same address counts. The buckets are
// the routes' own (same rule, same address), so an address has one budget whatever
// it sends, and a routed request is counted once, by its route. With no such rule
// it is apierror.Write.
func refusals(lim ratelimit.Limiter, rules []*ratelimit.Rule, logger *slog.Logger) refusal {
	if len(rules) == 0 {
		return apierror.Write
	}
	limit := rateLimit(lim, rules, logger)
	return func(w http.ResponseWriter, r *http.Request, err error) {
		limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			apierror.Write(w, r, err)
		})).ServeHTTP(w, r)
	}
}

// rateLimit refuses a request any of rules refuses, with 429 rate_limited, and tells
// the caller where it stands (RateLimit-*) on every answer of a limited route.
func rateLimit(lim ratelimit.Limiter, rules []*ratelimit.Rule, logger *slog.Logger) middleware {
	return func(next http.Handler) http.Handler {
		if len(rules) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.Of(r)
			var d ratelimit.Decision
			decided := false
			for _, rule := range rules {
				got, err := lim.Allow(r.Context(), rule, limitKey(rule.Key, r, info))
				if err != nil {
					// Only a bug gets here (the fallback limiter absorbs Redis
					// failures): let the request through and say so.
					logger.Warn("rate limit not applied", "rule", rule.Name, "err", err)
					continue
				}
				if !decided {
					d, decided = got, true
				} else {
					d = ratelimit.Stricter(d, got)
				}
			}
			if !decided {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
			h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
			h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.Reset)))
			if !d.Allowed {
				e := apierror.New(http.StatusTooManyRequests, "rate_limited", "too many requests; retry after the time in Retry-After")
				e.Header = http.Header{"Retry-After": {strconv.Itoa(max(ceilSeconds(d.RetryAfter), 1))}}
				apierror.Write(w, r, e)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// limitKey resolves a rule's key ("ip", "client", "route" or several joined by "+")
// for this request.
func limitKey(key string, r *http.Request, info *reqinfo.Info) string {
	part := func(p string) string {
		switch p {
		case "ip":
			return remoteIP(r)
		case "client":
			return info.Client
		case "route":
			return info.Route
		}
		return p
	}
	if !strings.Contains(key, "+") {
		return part(key)
	}
	parts := strings.Split(key, "+")
	for i, p := range parts {
		parts[i] = part(p)
	}
	return strings.Join(parts, "|")
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

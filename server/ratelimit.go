package server

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/state"
)

// limitRules turns rate_limits into rules; ipv6Prefix is ratelimit.ipv6_prefix. A
// rule's name is its content, so a reload that keeps a rule keeps its buckets (in
// memory and in Redis) and a changed rule starts afresh. A changed ipv6_prefix needs
// no new name: the keys it makes ("2001:db8::/56") are new keys.
func limitRules(cfg []config.RateLimit, ipv6Prefix int) []*ratelimit.Rule {
	rules := make([]*ratelimit.Rule, 0, len(cfg))
	for _, rl := range cfg {
		count := int(math.Round(rl.Limit * rl.Period.Seconds()))
		rules = append(rules, &ratelimit.Rule{
			Name:       fmt.Sprintf("%s@%s:%s:b%d", rl.Key, strings.Join(rl.Routes, ","), rl.Rate, rl.Burst),
			Key:        rl.Key,
			Routes:     rl.Routes,
			Limit:      rl.Limit,
			Period:     rl.Period,
			Count:      count,
			Burst:      rl.Burst,
			IPv6Prefix: ipv6Prefix,
		})
	}
	return rules
}

// limitsFor returns the rules for one route, split by when they run: before
// authentication, or after it (and after RBAC, or a callback's signature check).
//
// Before authentication a request may be anyone's, so the only budgets it may spend
// there are its own address's: rules keyed by ip. Those must run first, as they are
// what limits key guessing and signature forging per address (per /64 for IPv6).
// Every other rule runs after: a budget keyed by route alone is everybody's, and if
// requests that then fail authentication spent it, a stranger with no key could use
// up a route's whole budget and starve every client of it; a client's budget needs
// the client. A stranger's 401s and 403s therefore cost only its address's budget.
//
// A public route authenticates nobody: all callers are strangers there, and its
// route rules run before it as its ip rules do (client rules have no client to
// count, and are not applied).
func limitsFor(rules []*ratelimit.Rule, routeName string, public bool) (before, after []*ratelimit.Rule) {
	for _, r := range rules {
		if !r.AppliesTo(routeName) {
			continue
		}
		switch {
		case keyHas(r.Key, "client"), keyHas(r.Key, "user"):
			// A client's budget needs the client, an owner's the owner: both are
			// known only after authentication (user+ip too).
			if !public {
				after = append(after, r)
			}
		case keyHas(r.Key, "ip"), public:
			before = append(before, r)
		default:
			after = append(after, r)
		}
	}
	return before, after
}

// keyHas reports whether a rule's key ("ip", "client+route") counts by part.
func keyHas(key, part string) bool {
	for p := range strings.SplitSeq(key, "+") {
		if p == part {
			return true
		}
	}
	return false
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
func refusals(lim ratelimit.Decider, rules []*ratelimit.Rule, logger *slog.Logger) refusal {
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

// The stages of a request's limit decisions (ratelimit.Step.Stage): the rules that
// run before authentication, the replay check authentication makes, the rules that
// run after it. A stage is decided only when every earlier one passed.
const (
	stageBefore = iota
	stageReplay
	stageAfter
)

// rateLimit refuses a request any of rules refuses, with 429 rate_limited, and tells
// the caller where it stands (RateLimit-*) on every answer of a limited route. With
// Redis the rules are decided together, one round trip; in memory (ratelimit.Local)
// one by one, which costs nothing to repeat.
func rateLimit(lim ratelimit.Decider, rules []*ratelimit.Rule, logger *slog.Logger) middleware {
	return func(next http.Handler) http.Handler {
		if len(rules) == 0 {
			return next
		}
		if local, ok := lim.(*ratelimit.Local); ok {
			return allowEach(local, rules, logger, next)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var buf [4]ratelimit.Step
			steps := ruleSteps(buf[:0], rules, r, stageBefore)
			if len(steps) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			out := make([]ratelimit.Outcome, len(steps))
			lim.Decide(r.Context(), steps, out)
			d, decided := stageDecision(steps, out, stageBefore, logger)
			if decided && !limitAnswer(w, r, d) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// allowEach is rateLimit in memory: each rule asked in turn, no steps to build, and
// keys without hash tags, which only Redis Cluster reads.
func allowEach(lim *ratelimit.Local, rules []*ratelimit.Rule, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.Of(r)
		var d ratelimit.Decision
		decided := false
		for _, rule := range rules {
			if info.User == "" && keyHas(rule.Key, "user") {
				continue // see ruleSteps
			}
			got, err := lim.Allow(r.Context(), rule, limitKey(rule, r, info, false))
			if err != nil {
				logger.Warn("rate limit not applied", "rule", rule.Name, "err", err)
				continue
			}
			if !decided {
				d, decided = got, true
			} else {
				d = ratelimit.Stricter(d, got)
			}
		}
		if decided && !limitAnswer(w, r, d) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ruleSteps appends the steps of rules for r, at stage. A rule counting by owner is
// left out for a request without one: it is held by the route's other rules.
func ruleSteps(steps []ratelimit.Step, rules []*ratelimit.Rule, r *http.Request, stage int) []ratelimit.Step {
	info := reqinfo.Of(r)
	for _, rule := range rules {
		if info.User == "" && keyHas(rule.Key, "user") {
			// An owner's budget needs an owner: a request without a
			// session or JWT is held by the route's other rules.
			continue
		}
		steps = append(steps, ratelimit.Step{Rule: rule, Key: limitKey(rule, r, info, true), Stage: stage})
	}
	return steps
}

// stageDecision is the strictest decision of stage's rule steps, and whether there
// was one. A rule step that failed decides nothing: only a bug gets there (the
// fallback limiter answers Redis failures by ratelimit.redis_failure), so the
// request goes on and the failure is logged.
func stageDecision(steps []ratelimit.Step, out []ratelimit.Outcome, stage int, logger *slog.Logger) (ratelimit.Decision, bool) {
	var d ratelimit.Decision
	decided := false
	for i, st := range steps {
		if st.Stage != stage || st.Rule == nil {
			continue
		}
		o := out[i]
		if o.Err != nil {
			logger.Warn("rate limit not applied", "rule", st.Rule.Name, "err", o.Err)
			continue
		}
		if !o.Decided {
			continue
		}
		if !decided {
			d, decided = o.Decision, true
		} else {
			d = ratelimit.Stricter(d, o.Decision)
		}
	}
	return d, decided
}

// limitAnswer tells the caller where it stands under d and, when d refuses,
// answers 429 rate_limited; it reports whether the request may go on.
func limitAnswer(w http.ResponseWriter, r *http.Request, d ratelimit.Decision) bool {
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.Reset)))
	if d.Allowed {
		return true
	}
	e := apierror.New(http.StatusTooManyRequests, "rate_limited", "too many requests; retry after the time in Retry-After")
	e.Header = http.Header{"Retry-After": {strconv.Itoa(max(ceilSeconds(d.RetryAfter), 1))}}
	apierror.Write(w, r, e)
	return false
}

// limitKey resolves a rule's key ("ip", "client", "route", "user" or several joined
// by "+") for this request. An IPv6 caller's ip is its network of rule.IPv6Prefix
// bits. With tag (the buckets are in Redis), the part that says whose budget it is
// comes first, as a Redis Cluster hash tag (state.HashTag): the client, else the
// owner, else the address, else the route. A client's buckets then share a slot with
// its nonces, which auth tags alike, so one script decides a signed request's replay
// check and its client's limits on a Cluster too: "{client-a}|orders".
func limitKey(rule *ratelimit.Rule, r *http.Request, info *reqinfo.Info, tag bool) string {
	key := rule.Key
	part := func(p string) string {
		switch p {
		case "ip":
			return ratelimit.AddressKey(remoteIP(r), rule.IPv6Prefix)
		case "client":
			return info.Client
		case "route":
			return info.Route
		case "user":
			return info.User
		}
		return p
	}
	if !strings.Contains(key, "+") {
		if !tag {
			return part(key)
		}
		return state.HashTag(part(key))
	}
	parts := strings.Split(key, "+")
	if !tag {
		for i, p := range parts {
			parts[i] = part(p)
		}
		return strings.Join(parts, "|")
	}
	principal := 0
	for _, p := range []string{"client", "user", "ip", "route"} {
		if i := slices.Index(parts, p); i >= 0 {
			principal = i
			break
		}
	}
	b := make([]string, 0, len(parts))
	b = append(b, state.HashTag(part(parts[principal])))
	for i, p := range parts {
		if i != principal {
			b = append(b, part(p))
		}
	}
	return strings.Join(b, "|")
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

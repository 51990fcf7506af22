package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Step is one decision a request needs: a rule's bucket, or, with Rule nil, a key to
// admit once within TTL, which is what a replay check is (a nonce seen once).
// Deciding all of a request's steps in one call is what lets a Redis limiter make
// them in one round trip.
type Step struct {
	// Rule is the bucket's rule; nil makes the step a once step.
	Rule *Rule
	// Key is the rule's key, as Allow takes it, or the once step's key (without any
	// KeyPrefix: the limiter adds its own, which is the state store's). A key that
	// starts with a Redis Cluster hash tag, "{client-a}|orders", keeps its bucket in
	// the tag's slot, beside the other keys carrying it: see Redis.Decide.
	Key string
	// TTL is how long a once step's key is remembered; 0 or less is forever.
	TTL time.Duration
	// Stage orders the steps: a stage is decided after every lower one, and not at
	// all once a lower stage refused. Steps come in stage order.
	Stage int
}

// Outcome is what one Step came to.
type Outcome struct {
	// Decided is false for a step not reached, because a lower stage refused, and
	// for one that failed (Err).
	Decided bool
	// Decision is a rule step's answer. A once step is Allowed the first time its
	// key is seen within TTL, and refused after.
	Decision Decision
	// Err is set when the step could not be decided. A rule step behind NewFallback
	// never has one (redis_failure answers instead); a once step can, and whoever
	// asked must then refuse the request rather than skip its replay check.
	Err error
}

// Decider decides all the steps of one request at once, or one rule at a time as a
// Limiter. Every limiter of this package is one.
type Decider interface {
	Limiter
	// Decide decides steps in stage order and writes their outcomes to out, which
	// has len(steps).
	Decide(ctx context.Context, steps []Step, out []Outcome)
	// Known returns the answer of a rule step without a round trip when it is
	// already certain: a Redis bucket that refused until a time not yet reached
	// refuses every request until then, whoever else asks. It spends nothing.
	Known(step Step) (Decision, bool)
}

// errOnceUnsupported answers a once step given to a Decider with nowhere to record
// it.
var errOnceUnsupported = errors.New("ratelimit: this limiter has no store for once steps")

// OnceFunc records key for ttl if it is absent and reports whether it did: a state
// store's SetNX, for Stepwise.
type OnceFunc func(ctx context.Context, key, value string, ttl time.Duration) (bool, error)

// Stepwise returns a Decider that decides each step in turn: rule steps with l, once
// steps with once (a state store's SetNX; nil refuses them with an error). It is for
// limiters and stores in process memory, where a round trip costs nothing to save.
func Stepwise(l Limiter, once OnceFunc) Decider { return stepwise{l, once} }

type stepwise struct {
	l    Limiter
	once OnceFunc
}

func (s stepwise) Allow(ctx context.Context, rule *Rule, key string) (Decision, error) {
	return s.l.Allow(ctx, rule, key)
}

func (s stepwise) Decide(ctx context.Context, steps []Step, out []Outcome) {
	decideStaged(steps, out, func(i int) {
		out[i] = s.decideOne(ctx, steps[i])
	})
}

func (s stepwise) decideOne(ctx context.Context, st Step) Outcome {
	if st.Rule == nil {
		if s.once == nil {
			return Outcome{Err: errOnceUnsupported}
		}
		fresh, err := s.once(ctx, st.Key, "1", st.TTL)
		if err != nil {
			return Outcome{Err: err}
		}
		return Outcome{Decided: true, Decision: Decision{Allowed: fresh}}
	}
	d, err := s.l.Allow(ctx, st.Rule, st.Key)
	if err != nil {
		return Outcome{Err: err}
	}
	return Outcome{Decided: true, Decision: d}
}

func (s stepwise) Known(Step) (Decision, bool) { return Decision{}, false }

// decideStaged walks steps stage by stage, calling decide for each step of a stage
// that is to be decided, and stops after a stage in which a step refused or failed.
// Steps not reached are left undecided.
func decideStaged(steps []Step, out []Outcome, decide func(i int)) {
	stop := false
	for i := 0; i < len(steps); {
		j := i
		for j < len(steps) && steps[j].Stage == steps[i].Stage {
			j++
		}
		if stop {
			for k := i; k < j; k++ {
				out[k] = Outcome{}
			}
			i = j
			continue
		}
		for k := i; k < j; k++ {
			decide(k)
			if blocks(steps[k], out[k]) {
				stop = true
			}
		}
		i = j
	}
}

// blocks reports whether an outcome stops the stages after its own: a refusal, or a
// once step that could not be decided (its request is refused). A rule step that
// failed decides nothing either way; only a bug gets there (see NewFallback).
func blocks(st Step, o Outcome) bool {
	return o.Decided && !o.Decision.Allowed || st.Rule == nil && o.Err != nil
}

package server

import (
	"context"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/tracing"
)

// limitStages returns a route's two rate-limit stages: before, the rules that run
// before authentication, and after, those that run after it (see limitsFor). They
// enclose the route's authentication, RBAC and owner lookup.
//
// With batch (the limits and nonces are in Redis) the two are one round trip: before
// does not ask Redis, it opens the request's batch; authentication adds its replay
// check to it instead of recording the nonce itself (see verifyClientSignature); and
// after adds its own rules and decides them all in one script, stage by stage, as
// they would have been one by one. The order still holds: a request refused by its
// address's budget records no nonce and spends no client's budget, a replayed one
// spends no client's budget, and a client's rules are in the batch only once its
// credentials checked out. A request answered in between (a bad key, a bad
// signature, RBAC) has its before rules, and its replay check if it had one,
// decided as that answer is written, and a refusal of theirs answers instead (see
// pendingLimits). Every route that uses before must have after in its chain.
//
// What deferring the address's decision costs is the work authentication does for a
// request its address's budget would have refused: reading and hashing the body,
// once. A bucket Redis refused is remembered until it refills (ratelimit's Known),
// so a flood from an address over its limit is refused here, before any of that.
//
// Without batch, each stage decides on its own (rateLimit): in memory there is no
// round trip to save, and nonces go to the state store as before.
func limitStages(lim ratelimit.Decider, before, after []*ratelimit.Rule, batch bool, logger *slog.Logger) (middleware, middleware) {
	if !batch || len(before)+len(after) == 0 {
		return rateLimit(lim, before, logger), rateLimit(lim, after, logger)
	}
	open := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := &pendingLimits{w: w, lim: lim, logger: logger}
			p.steps = ruleSteps(p.stepBuf[:0], before, r, stageBefore)
			if d, known := p.known(); known {
				limitAnswer(w, r, d)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), pendingKey{}, p))
			p.r = r
			next.ServeHTTP(p, r)
			if p.state == pendingOpen {
				// Nothing inside answered, nor reached after: the budget is
				// spent all the same.
				p.settle()
			}
		})
	}
	decide := func(next http.Handler) http.Handler {
		immediate := rateLimit(lim, after, logger)(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := pendingFrom(r.Context())
			if p == nil || p.state != pendingOpen {
				immediate.ServeHTTP(w, r)
				return
			}
			if p.commit(after, r) {
				next.ServeHTTP(p.w, r)
			}
		})
	}
	return open, decide
}

type pendingKey struct{}

// pendingFrom returns the request's open batch of limit decisions, or nil.
func pendingFrom(ctx context.Context) *pendingLimits {
	p, _ := ctx.Value(pendingKey{}).(*pendingLimits)
	return p
}

// The states of a pendingLimits.
const (
	pendingOpen     = iota // collecting steps
	pendingPassed          // decided, the request went on
	pendingAnswered        // decided, and the answer was a refusal
)

// pendingLimits is a request's batch of limit decisions between its two limit
// stages, and the ResponseWriter the handlers between them write to. The first
// write decides what was collected so far, so an answer given inside (401, 403)
// comes only after the before rules, and the replay check if there was one, were
// decided as they would have been first: when they refuse, their answer replaces
// it. Headers set inside are held until then, and dropped with a replaced answer.
type pendingLimits struct {
	w      http.ResponseWriter
	r      *http.Request
	lim    ratelimit.Decider
	logger *slog.Logger
	state  int
	steps  []ratelimit.Step
	out    []ratelimit.Outcome
	// v judges the replay check, the step at replayAt, once it is decided.
	v        *auth.Verifier
	replay   auth.Replay
	replayAt int
	header   http.Header

	stepBuf [6]ratelimit.Step
	outBuf  [6]ratelimit.Outcome
}

// known answers from the before rules' refusals already known, without a round trip.
func (p *pendingLimits) known() (ratelimit.Decision, bool) {
	var d ratelimit.Decision
	refused := false
	for _, st := range p.steps {
		k, ok := p.lim.Known(st)
		if !ok {
			continue
		}
		if !refused {
			d, refused = k, true
		} else {
			d = ratelimit.Stricter(d, k)
		}
	}
	return d, refused
}

// addReplay puts rp, the replay check of a request whose signature matched, into
// the batch: v judges it once decided.
func (p *pendingLimits) addReplay(v *auth.Verifier, rp auth.Replay) {
	p.v, p.replay, p.replayAt = v, rp, len(p.steps)
	p.steps = append(p.steps, ratelimit.Step{Key: rp.Key, TTL: rp.TTL, Stage: stageReplay})
}

// decide decides the steps collected.
func (p *pendingLimits) decide(ctx context.Context) {
	if len(p.steps) <= len(p.outBuf) {
		p.out = p.outBuf[:len(p.steps)]
	} else {
		p.out = make([]ratelimit.Outcome, len(p.steps))
	}
	if len(p.steps) > 0 {
		p.lim.Decide(ctx, p.steps, p.out)
	}
}

// answerEarly answers from the stages up to the replay check: a refusal of the
// before rules or of the replay check is written and true returned; otherwise the
// before rules' headers are set and false returned.
func (p *pendingLimits) answerEarly() bool {
	d, decided := stageDecision(p.steps, p.out, stageBefore, p.logger)
	if decided && !limitAnswer(p.w, p.r, d) {
		return true
	}
	if p.v != nil {
		o := p.out[p.replayAt]
		if err := p.v.Recorded(p.r.Context(), p.replay, o.Decided && o.Decision.Allowed, o.Err); err != nil {
			apierror.Write(p.w, p.r, err)
			return true
		}
	}
	return false
}

// settle decides the batch when a handler inside answers before after was reached.
func (p *pendingLimits) settle() {
	p.decide(p.r.Context())
	if p.answerEarly() {
		p.state = pendingAnswered
		return
	}
	p.state = pendingPassed
	h := p.w.Header()
	for k, vs := range p.header {
		h[k] = vs
	}
}

// commit adds the after rules and decides the batch; it reports whether the request
// may go on, having answered it otherwise.
func (p *pendingLimits) commit(after []*ratelimit.Rule, r *http.Request) bool {
	p.r = r
	p.steps = ruleSteps(p.steps, after, r, stageAfter)
	p.decide(r.Context())
	if p.answerEarly() {
		p.state = pendingAnswered
		return false
	}
	p.state = pendingPassed
	h := p.w.Header()
	for k, vs := range p.header {
		h[k] = vs
	}
	if d, decided := stageDecision(p.steps, p.out, stageAfter, p.logger); decided {
		return limitAnswer(p.w, r, d)
	}
	return true
}

// Header returns the headers of the answer being written inside: held apart until
// the batch is decided.
func (p *pendingLimits) Header() http.Header {
	if p.state == pendingPassed {
		return p.w.Header()
	}
	if p.header == nil {
		p.header = make(http.Header)
	}
	return p.header
}

// WriteHeader decides the batch first.
func (p *pendingLimits) WriteHeader(code int) {
	if p.state == pendingOpen {
		p.settle()
	}
	if p.state == pendingPassed {
		p.w.WriteHeader(code)
	}
}

// Write decides the batch first; a body written under a refusal is dropped.
func (p *pendingLimits) Write(b []byte) (int, error) {
	if p.state == pendingOpen {
		p.settle()
	}
	if p.state == pendingPassed {
		return p.w.Write(b)
	}
	return len(b), nil
}

// tracedLimiter gives the Redis decisions made for a traced request a client span:
// "redis EVALSHA", with how many steps it decided (signgate.steps) and whether a
// replay check was among them. Keys are not recorded (client ids, addresses, nonces).
type tracedLimiter struct {
	ratelimit.Decider
	t *tracing.Tracer
}

// traceLimiter wraps lim when tracing is on and the limits are in Redis.
func traceLimiter(t *tracing.Tracer, lim ratelimit.Decider, redis bool) ratelimit.Decider {
	if t == nil || !redis {
		return lim
	}
	return tracedLimiter{lim, t}
}

func (l tracedLimiter) Decide(ctx context.Context, steps []ratelimit.Step, out []ratelimit.Outcome) {
	if !tracing.Recording(ctx) {
		l.Decider.Decide(ctx, steps, out)
		return
	}
	replay := false
	for _, st := range steps {
		replay = replay || st.Rule == nil
	}
	ctx, span := l.t.Start(ctx, "redis EVALSHA", trace.SpanKindClient,
		attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", "EVALSHA"),
		attribute.Int("signgate.steps", len(steps)), attribute.Bool("signgate.replay_check", replay))
	l.Decider.Decide(ctx, steps, out)
	for i, o := range out {
		if o.Err != nil && steps[i].Rule == nil {
			span.SetAttributes(attribute.String("error.type", tracing.ErrorType(o.Err)))
			span.SetStatus(codes.Error, "")
			break
		}
	}
	span.End()
}

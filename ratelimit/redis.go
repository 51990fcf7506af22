package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// decideLua decides a request's steps in one run on the server: rule steps by GCRA,
// the generic cell rate algorithm, once steps by SET NX. Steps come in stage order;
// every step of a stage is decided, and after a stage in which one refused, the
// steps of later stages are left alone (nothing spent, nothing recorded), exactly as
// asking them one by one and stopping would.
//
// A GCRA bucket is a single number, the theoretical arrival time (TAT) at which it
// would be full again, so a decision is one GET and at most one SET. The model is
// go-redis/redis_rate's allowN (after rwz/redis-gcra). Time is Redis's (TIME), never
// the caller's: instances whose clocks disagree still share one timeline. Times are
// whole microseconds since the Unix epoch, about 1.8e15 today, which a Lua number (a
// double, exact to 2^53) holds exactly; that keeps every comparison exact, which is
// what makes "burst 10" admit exactly 10 from any number of instances. The TAT is
// written with %.0f, an exact integer whatever a Redis version's own number
// formatting (Lua's tostring would keep only 14 digits).
//
// KEYS: one per step. ARGV, per step, four values: the kind ("g" GCRA, "o" once),
// the stage, then for GCRA the emission interval in µs (1e6 / rate, at least 1) and
// the burst, for once the TTL in ms (0: forever) and an unused 0.
// Returns four integers per step, as one string of decimal numbers separated by
// spaces (one reply to read, where an array would be one boxed value each): 1
// allowed, 0 refused or -1 not reached; remaining; retry_after µs; reset_after µs.
const decideLua = `
-- Before Redis 5 a script that reads TIME may write only in effects replication
-- mode; since 7 the call is a no-op, and it may one day be gone.
if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local stage, refused, stopped = nil, false, false
local function put(status, remaining, retry, reset)
	out[#out + 1] = string.format('%d %.0f %.0f %.0f', status, remaining, retry, reset)
end
for i = 1, #KEYS do
	local a = (i - 1) * 4
	local kind, st = ARGV[a + 1], ARGV[a + 2]
	if st ~= stage then
		stopped = stopped or refused
		stage = st
	end
	if stopped then
		put(-1, 0, 0, 0)
	elseif kind == 'o' then
		local ttl = tonumber(ARGV[a + 3])
		local set
		if ttl > 0 then
			set = redis.call('SET', KEYS[i], '1', 'PX', ttl, 'NX')
		else
			set = redis.call('SET', KEYS[i], '1', 'NX')
		end
		if set then
			put(1, 0, 0, 0)
		else
			put(0, 0, 0, 0)
			refused = true
		end
	else
		local interval = tonumber(ARGV[a + 3])
		local burst = tonumber(ARGV[a + 4])
		local tat = tonumber(redis.call('GET', KEYS[i]))
		if tat == nil or tat < now then
			tat = now
		end
		-- The request fits if, after it, the bucket is no more than burst intervals behind.
		local new_tat = tat + interval
		local allow_at = new_tat - burst * interval
		if now < allow_at then
			put(0, 0, allow_at - now, tat - now)
			refused = true
		else
			-- The key lives until the bucket is full again; after that its absence means the same.
			redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
			put(1, math.floor((now - allow_at) / interval), 0, new_tat - now)
		end
	end
end
return table.concat(out, ' ')
`

// Batcher is what a Redis limiter needs beyond running scripts to decide a request
// in one round trip: sending several commands in one pipeline, and knowing whether
// keys of different hash slots may live on different nodes (Redis Cluster), so that
// one script may not touch them together. state.Redis.Scripter has it.
type Batcher interface {
	redis.Scripter
	// Batch sends cmds in one pipeline and waits for all of them; each command's
	// own result and error are on it. It returns an error only when ctx ended
	// first, and then no command may be read.
	Batch(ctx context.Context, cmds ...redis.Cmder) error
	// Cluster reports whether the keys of one script must share a hash slot.
	Cluster() bool
}

// RedisOptions configures a Redis limiter.
type RedisOptions struct {
	// KeyPrefix is put in front of every key, as the state store's key_prefix is; a
	// bucket is then KeyPrefix + "rl:" + key + ":" + rule name, and a once step's key
	// KeyPrefix + its key, where the state store keeps it.
	KeyPrefix string
	// Now is the clock that says when a refusal Redis gave has run out (see
	// Decider.Known); nil means time.Now.
	Now func() time.Time
}

// Redis is a Limiter whose buckets live in Redis, so that every signgate instance
// sharing the server draws from the same bucket: with burst 10, a burst of requests
// spread over any number of instances admits exactly 10. A request's decisions, its
// limits and its replay check, are one script run and so one round trip (EVALSHA,
// falling back to EVAL once after the server lost its script cache); on a Cluster,
// one script per hash slot, sent together in one pipeline. Rates are kept to the
// microsecond: 3/s runs as one request per 333,333µs.
//
// A bucket Redis refused is refused until the time Redis said without asking it
// again: nobody's request can refill a bucket sooner, so that answer is exact, and a
// flood from an address over its limit costs Redis nothing.
type Redis struct {
	client   redis.Scripter
	batcher  Batcher // nil when client cannot batch
	cluster  bool
	prefix   string
	script   *redis.Script
	refusals refusals
	// args caches the script arguments of each rate and burst (ruleArgs): as many
	// as the config has distinct rules, whatever the reloads.
	args sync.Map // gcraParams → *[2]any
}

var (
	_ Limiter = (*Redis)(nil)
	_ Decider = (*Redis)(nil)
)

// NewRedis returns a Redis limiter that runs its script through s, typically the state
// store's client (state.Redis.Scripter), so the limiter shares its connection pool and
// timeouts. An s that is a Batcher decides a request's steps in one round trip even
// on a Cluster.
func NewRedis(s redis.Scripter, o RedisOptions) *Redis {
	r := &Redis{client: s, prefix: o.KeyPrefix, script: redis.NewScript(decideLua)}
	if b, ok := s.(Batcher); ok {
		r.batcher, r.cluster = b, b.Cluster()
	}
	r.refusals.init(o.Now)
	return r
}

// Allow takes one request from the bucket of rule and key in Redis. A Redis error is
// returned, wrapped, with no decision; NewFallback decides what it means.
func (r *Redis) Allow(ctx context.Context, rule *Rule, key string) (Decision, error) {
	if err := rule.check(); err != nil {
		return Decision{}, err
	}
	steps := [1]Step{{Rule: rule, Key: key}}
	var out [1]Outcome
	r.Decide(ctx, steps[:], out[:])
	return out[0].Decision, out[0].Err
}

// Known returns the refusal Redis gave step's bucket while it lasts.
func (r *Redis) Known(step Step) (Decision, bool) {
	if step.Rule == nil {
		return Decision{}, false
	}
	return r.refusals.get(step.Rule, step.Key)
}

// Decide decides steps in Redis. On one server (or Sentinel's master) that is one
// script run, whatever the keys. On a Cluster the keys of one script must share a
// hash slot, so the steps are grouped by hash tag ("{client-a}"): each group is a
// script, and the groups go in one pipeline, to their nodes side by side. Groups
// cannot see each other's answers, so two guarantees are kept by grouping:
//
//   - a once step and the later-stage steps sharing its tag are one script: a
//     replayed request spends nothing after its replay check (the server tags a
//     client's nonces and budgets alike);
//   - a later-stage step in another slot than a once step waits for it: a second
//     round trip, made only when the once step passed.
//
// Steps of other groups run while an earlier stage may refuse elsewhere: a request
// refused by its address's budget has had its client's script run beside it. What
// that script took (the nonce, the client's budget) is given back (undo), so the
// outcome is the one server's; between the two, for a round trip, the client's
// bucket holds one request more. Known keeps such refusals to about one per
// bucket and refill.
func (r *Redis) Decide(ctx context.Context, steps []Step, out []Outcome) {
	var buf [8]int
	send := buf[:0] // the steps to ask Redis, by index
	stopAt := math.MaxInt
	for i, st := range steps {
		out[i] = Outcome{}
		if st.Rule != nil {
			if err := st.Rule.check(); err != nil {
				out[i].Err = err
				continue
			}
			if d, ok := r.refusals.get(st.Rule, st.Key); ok && st.Stage < stopAt {
				out[i] = Outcome{Decided: true, Decision: d}
				stopAt = st.Stage
				continue
			}
		}
		send = append(send, i)
	}
	// A refusal known ahead ends its stage; nothing at or after it is asked.
	send = slices.DeleteFunc(send, func(i int) bool { return steps[i].Stage >= stopAt })
	if !r.cluster {
		r.run(ctx, steps, out, [][]int{send})
		return
	}

	groups, later := r.plan(steps, send)
	r.run(ctx, steps, out, groups)
	blocked := math.MaxInt
	for i, st := range steps {
		if blocks(st, out[i]) {
			blocked = min(blocked, st.Stage)
		}
	}
	if blocked != math.MaxInt {
		r.undo(ctx, steps, out, blocked)
	}
	// The steps that waited for a once step in another slot: only if nothing up to
	// their stage blocked.
	if len(later) == 0 || blocked <= steps[later[0]].Stage {
		return
	}
	groups, _ = r.plan(steps, later)
	r.run(ctx, steps, out, groups)
}

// undoLua gives back what decideLua took for steps a lower stage refused in another
// slot: a once step's key is deleted (it was recorded by this request: its SET NX
// succeeded), a bucket's TAT moved back by the emission interval it was moved on.
// KEYS: one per step. ARGV, per step, two values: the kind ("g", "o") and, for
// GCRA, the interval in µs.
const undoLua = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
	if ARGV[2 * i - 1] == 'o' then
		redis.call('DEL', KEYS[i])
	else
		local tat = tonumber(redis.call('GET', KEYS[i]))
		if tat then
			tat = tat - tonumber(ARGV[2 * i])
			if tat <= now then
				redis.call('DEL', KEYS[i])
			else
				redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
			end
		end
	end
end
return 0
`

// undo gives back, on a Cluster, what the steps after stage blocked took in slots
// that could not see the refusal: a request refused by its address's budget (one
// slot) whose client's script (another) recorded its nonce and spent its budget
// gets both back, so it can be sent again and its client is not charged, as on one
// server. It costs a second round trip, on refused requests only; Known keeps those
// to about one per refusal. Best effort: a failure leaves the spend in place.
func (r *Redis) undo(ctx context.Context, steps []Step, out []Outcome, blocked int) {
	byTag := make(map[string][]int)
	var tags []string
	for i, st := range steps {
		if st.Stage <= blocked || !out[i].Decided || !out[i].Decision.Allowed {
			continue
		}
		out[i] = Outcome{}
		tag := hashTag(r.key(st))
		if _, ok := byTag[tag]; !ok {
			tags = append(tags, tag)
		}
		byTag[tag] = append(byTag[tag], i)
	}
	if len(tags) == 0 {
		return
	}
	cmds := make([]*redis.Cmd, 0, len(tags))
	for _, tag := range tags {
		g := byTag[tag]
		args := make([]any, 3, 3+3*len(g))
		args[0], args[1], args[2] = "eval", undoLua, len(g)
		for _, i := range g {
			args = append(args, r.key(steps[i]))
		}
		for _, i := range g {
			if st := steps[i]; st.Rule == nil {
				args = append(args, "o", 0)
			} else {
				args = append(args, "g", max(int64(math.Round(1e6/st.Rule.Limit)), 1))
			}
		}
		cmds = append(cmds, redis.NewCmd(ctx, args...))
	}
	_ = r.send(ctx, cmds)
}

// plan groups the steps to send (by index) by hash tag, for a Cluster. It returns
// the groups to send now, and the steps that must wait for a once step in another
// slot.
func (r *Redis) plan(steps []Step, send []int) (groups [][]int, later []int) {
	onceStage, onceTag := math.MaxInt, ""
	for _, i := range send {
		if st := steps[i]; st.Rule == nil {
			onceStage, onceTag = st.Stage, hashTag(r.key(st))
			break
		}
	}
	byTag := make(map[string]int)
	for _, i := range send {
		st := steps[i]
		tag := hashTag(r.key(st))
		if st.Stage > onceStage && tag != onceTag {
			later = append(later, i)
			continue
		}
		g, ok := byTag[tag]
		if !ok {
			g = len(groups)
			byTag[tag] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups, later
}

// run sends one script per group (all in one pipeline) and reads their answers into
// out.
func (r *Redis) run(ctx context.Context, steps []Step, out []Outcome, groups [][]int) {
	cmds := make([]*redis.Cmd, 0, len(groups))
	used := groups[:0]
	for _, g := range groups {
		if len(g) == 0 {
			continue
		}
		used = append(used, g)
		cmds = append(cmds, r.scriptCmd(ctx, "evalsha", r.script.Hash(), steps, g))
	}
	if len(cmds) == 0 {
		return
	}
	sent := r.now()
	if err := r.send(ctx, cmds); err != nil {
		for _, g := range used {
			fail(out, g, wrap(ctx, err))
		}
		return
	}
	// A server that lost its script cache (a restart, a failover to a replica
	// that never ran it) is sent the script itself, once.
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			cmds[i] = r.scriptCmd(ctx, "eval", decideLua, steps, used[i])
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		retry := make([]*redis.Cmd, len(again))
		for k, i := range again {
			retry[k] = cmds[i]
		}
		if err := r.send(ctx, retry); err != nil {
			for _, i := range again {
				fail(out, used[i], wrap(ctx, err))
			}
			return
		}
		for k, i := range again {
			cmds[i] = retry[k] // send without a Batcher answers with new commands
		}
	}
	for i, c := range cmds {
		r.read(ctx, c, steps, out, used[i], sent)
	}
}

// send runs cmds in one pipeline when the client can batch, one by one otherwise.
func (r *Redis) send(ctx context.Context, cmds []*redis.Cmd) error {
	if r.batcher != nil {
		all := make([]redis.Cmder, len(cmds))
		for i, c := range cmds {
			all[i] = c
		}
		return r.batcher.Batch(ctx, all...)
	}
	for i, c := range cmds {
		args := c.Args()
		var res *redis.Cmd
		keys := make([]string, args[2].(int))
		for k := range keys {
			keys[k] = args[3+k].(string)
		}
		rest := args[3+len(keys):]
		if args[0] == "eval" {
			res = r.client.Eval(ctx, args[1].(string), keys, rest...)
		} else {
			res = r.client.EvalSha(ctx, args[1].(string), keys, rest...)
		}
		cmds[i] = res
	}
	return nil
}

// scriptCmd builds the EVALSHA (or EVAL) of decideLua for the steps g.
func (r *Redis) scriptCmd(ctx context.Context, verb, script string, steps []Step, g []int) *redis.Cmd {
	args := make([]any, 3, 3+5*len(g))
	args[0], args[1], args[2] = verb, script, len(g)
	for _, i := range g {
		args = append(args, r.key(steps[i]))
	}
	for _, i := range g {
		st := steps[i]
		if st.Rule == nil {
			args = append(args, "o", stageArg(st.Stage), max(st.TTL.Milliseconds(), 0), 0)
			continue
		}
		ra := r.ruleArgs(st.Rule)
		args = append(args, "g", stageArg(st.Stage), ra[0], ra[1])
	}
	return redis.NewCmd(ctx, args...)
}

// stageArgs are the stages as script arguments, made once: a request's hot path
// then boxes no string for them.
var stageArgs = [...]any{"0", "1", "2", "3", "4", "5", "6", "7"}

func stageArg(stage int) any {
	if stage >= 0 && stage < len(stageArgs) {
		return stageArgs[stage]
	}
	return strconv.Itoa(stage)
}

// ruleArgs returns a rule's GCRA arguments, the emission interval in µs and the
// burst, boxed once per rate and burst.
func (r *Redis) ruleArgs(rule *Rule) *[2]any {
	k := gcraParams{rule.Limit, rule.burst()}
	if v, ok := r.args.Load(k); ok {
		return v.(*[2]any)
	}
	ra := &[2]any{max(int64(math.Round(1e6/k.limit)), 1), k.burst}
	if v, loaded := r.args.LoadOrStore(k, ra); loaded {
		return v.(*[2]any)
	}
	return ra
}

type gcraParams struct {
	limit float64
	burst int
}

// read puts one script's answer for the steps g into out.
func (r *Redis) read(ctx context.Context, c *redis.Cmd, steps []Step, out []Outcome, g []int, sent time.Time) {
	reply, err := c.Text()
	var res [4 * 8]int64
	var vals []int64
	if err == nil {
		vals, err = parseInts(res[:0], reply)
	}
	if err == nil && len(vals) != 4*len(g) {
		err = fmt.Errorf("script answered %d values for %d steps", len(vals), len(g))
	}
	if err != nil {
		fail(out, g, wrap(ctx, err))
		return
	}
	for k, i := range g {
		v := vals[4*k : 4*k+4]
		if v[0] < 0 {
			continue // not reached
		}
		st := steps[i]
		d := Decision{Allowed: v[0] == 1}
		if st.Rule != nil {
			d.Limit = st.Rule.limit()
			d.Remaining = int(v[1])
			d.RetryAfter = time.Duration(v[2]) * time.Microsecond
			d.Reset = time.Duration(v[3]) * time.Microsecond
			if !d.Allowed {
				r.refusals.put(st.Rule, st.Key, sent, d)
			}
		}
		out[i] = Outcome{Decided: true, Decision: d}
	}
}

// parseInts appends the integers of s, separated by single spaces, to dst.
func parseInts(dst []int64, s string) ([]int64, error) {
	for s != "" {
		field := s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			field, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("script answered %q", field)
		}
		dst = append(dst, n)
	}
	return dst, nil
}

// key is the Redis key of a step.
func (r *Redis) key(st Step) string {
	if st.Rule == nil {
		return r.prefix + st.Key
	}
	return r.prefix + "rl:" + st.Key + ":" + st.Rule.Name
}

func (r *Redis) now() time.Time { return r.refusals.now() }

func fail(out []Outcome, g []int, err error) {
	for _, i := range g {
		out[i] = Outcome{Err: err}
	}
}

// hashTag returns what Redis Cluster hashes of key: the part between the first '{'
// and the next '}' when that is not empty, otherwise the whole key. Keys with equal
// tags share a slot.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// wrap says where err came from and, when the call ran out of time, adds the
// context's error: go-redis reports a deadline as a socket timeout, and callers test
// for context.DeadlineExceeded. Keys stay out: they carry client ids and IPs.
func wrap(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("ratelimit: redis: %w: %w", cerr, err)
	}
	return fmt.Errorf("ratelimit: redis: %w", err)
}

// maxRefusals bounds the refusals remembered: a flood of addresses each over its
// limit must not grow memory without end. Past it, new refusals are simply asked of
// Redis again.
const maxRefusals = 10_000

// refusals remembers the buckets Redis refused, until when: Redis answers every
// request to such a bucket the same until then, so the answer needs no round trip.
type refusals struct {
	clock func() time.Time
	m     sync.Map // bucketKey → *refused
	n     atomic.Int64
	sweep sync.Mutex
}

type refused struct {
	rule         *Rule // a reload builds new rules: an old rule's refusal does not apply
	until, reset time.Time
}

func (f *refusals) init(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	f.clock = now
}

func (f *refusals) now() time.Time { return f.clock() }

// get returns the refusal of rule's bucket for key while it lasts.
func (f *refusals) get(rule *Rule, key string) (Decision, bool) {
	if f.n.Load() == 0 {
		return Decision{}, false // the usual case: no lookup at all
	}
	v, ok := f.m.Load(bucketKey{rule.Name, key})
	if !ok {
		return Decision{}, false
	}
	rf := v.(*refused)
	now := f.now()
	if rf.rule != rule || !now.Before(rf.until) {
		if f.m.CompareAndDelete(bucketKey{rule.Name, key}, rf) {
			f.n.Add(-1)
		}
		return Decision{}, false
	}
	return Decision{
		Limit:      rule.limit(),
		RetryAfter: rf.until.Sub(now),
		Reset:      max(rf.reset.Sub(now), 0),
	}, true
}

// put remembers Redis's refusal d, measured from sent: the time the question left,
// which is no later than Redis's own now, so the refusal never outlasts Redis's.
func (f *refusals) put(rule *Rule, key string, sent time.Time, d Decision) {
	if d.RetryAfter <= 0 {
		return
	}
	if f.n.Load() >= maxRefusals && !f.prune() {
		return
	}
	rf := &refused{rule: rule, until: sent.Add(d.RetryAfter), reset: sent.Add(d.Reset)}
	if _, loaded := f.m.Swap(bucketKey{rule.Name, key}, rf); !loaded {
		f.n.Add(1)
	}
}

// prune drops the refusals that ran out and reports whether there is room now.
func (f *refusals) prune() bool {
	if !f.sweep.TryLock() {
		return false
	}
	defer f.sweep.Unlock()
	now := f.now()
	f.m.Range(func(k, v any) bool {
		if !now.Before(v.(*refused).until) {
			if _, ok := f.m.LoadAndDelete(k); ok {
				f.n.Add(-1)
			}
		}
		return true
	})
	return f.n.Load() < maxRefusals
}

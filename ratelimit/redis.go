package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraLua decides one request by GCRA, the generic cell rate algorithm: a bucket is a
// single number, the theoretical arrival time (TAT) at which it would be full again,
// so a decision is one GET and at most one SET, run atomically by the server. The
// model is go-redis/redis_rate's allowN (after rwz/redis-gcra).
//
// Time is Redis's (TIME), never the caller's: instances whose clocks disagree still
// share one timeline. Times are whole microseconds since the Unix epoch, about 1.8e15
// today, which a Lua number (a double, exact to 2^53) holds exactly; that keeps every
// comparison exact, which is what makes "burst 10" admit exactly 10 from any number
// of instances. The TAT is written with %.0f, an exact integer whatever a Redis
// version's own number formatting (Lua's tostring would keep only 14 digits).
//
// KEYS[1] the bucket; ARGV[1] the emission interval in microseconds (1e6 / rate, at
// least 1); ARGV[2] the burst.
// Returns {allowed 0|1, remaining, retry_after µs, reset_after µs}.
const gcraLua = `
-- Before Redis 5 a script that reads TIME may write only in effects replication
-- mode; since 7 the call is a no-op, and it may one day be gone.
if redis.replicate_commands then redis.replicate_commands() end

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
	tat = now
end
-- The request fits if, after it, the bucket is no more than burst intervals behind.
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
	return {0, 0, allow_at - now, tat - now}
end
-- The key lives until the bucket is full again; after that its absence means the same.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
`

// RedisOptions configures a Redis limiter.
type RedisOptions struct {
	// KeyPrefix is put in front of every key, as the state store's key_prefix is; the
	// buckets are then KeyPrefix + "rl:" + rule name + ":" + key.
	KeyPrefix string
}

// Redis is a Limiter whose buckets live in Redis, so that every signgate instance
// sharing the server draws from the same bucket: with burst 10, a burst of requests
// spread over any number of instances admits exactly 10. Each decision is one round
// trip (EVALSHA, falling back to EVAL once after the server lost its script cache).
// Rates are kept to the microsecond: 3/s runs as one request per 333,333µs.
type Redis struct {
	client redis.Scripter
	prefix string
	script *redis.Script
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Redis limiter that runs its script through s, typically the state
// store's client (state.Redis.Scripter), so the limiter shares its connection pool and
// timeouts.
func NewRedis(s redis.Scripter, o RedisOptions) *Redis {
	return &Redis{client: s, prefix: o.KeyPrefix, script: redis.NewScript(gcraLua)}
}

// Allow takes one request from the bucket of rule and key in Redis. A Redis error is
// returned, wrapped, with no decision; NewFallback decides what it means.
func (r *Redis) Allow(ctx context.Context, rule *Rule, key string) (Decision, error) {
	if err := rule.check(); err != nil {
		return Decision{}, err
	}
	interval := max(int64(math.Round(1e6/rule.Limit)), 1)
	res, err := r.script.Run(ctx, r.client,
		[]string{r.prefix + "rl:" + rule.Name + ":" + key}, interval, rule.burst()).Int64Slice()
	if err != nil {
		return Decision{}, wrap(ctx, err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("ratelimit: redis: script answered %d values, want 4", len(res))
	}
	return Decision{
		Allowed:    res[0] == 1,
		Limit:      rule.limit(),
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Reset:      time.Duration(res[3]) * time.Microsecond,
	}, nil
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

package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisClient is what the Redis tier calls; a go-redis UniversalClient (one server,
// Sentinel or Cluster) has it.
type redisClient interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
	Incr(ctx context.Context, key string) *redis.IntCmd
	ZRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

var _ redisClient = redis.UniversalClient(nil)

// lookupLua reads a key's entry and, when it is absent or stale and the caller
// asks, takes the key's lock for the caller in the same step, so between "not
// there" and "mine to fill" no other instance can take it. It also returns the
// route's purge generation, which the fill must still find when it stores.
//
// KEYS: entry, fresh marker, lock, generation. ARGV: owner token, lock ms, "1" to
// take the lock. Reply: entry or nil, ms fresh left, ms kept left, 1 if locked, gen.
const lookupLua = `
local v = redis.call('GET', KEYS[1])
local fresh, left = -2, -2
if v then
	fresh = redis.call('PTTL', KEYS[2])
	left = redis.call('PTTL', KEYS[1])
	if fresh > 0 then return {v, fresh, left, 0, ''} end
end
if ARGV[3] ~= '1' then return {v, fresh, left, 0, ''} end
local got = 0
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then got = 1 end
return {v, fresh, left, got, redis.call('GET', KEYS[4]) or '0'}
`

// storeLua stores a filled entry unless the route was purged since the fill began
// (its generation moved), indexes it for purges, and releases the lock if the
// caller still owns it.
//
// KEYS: entry, fresh marker, lock, generation, index. ARGV: owner token, generation
// at lookup, value, fresh ms, kept ms, index member, now ms. Reply: 1 if stored.
const storeLua = `
local stored = 0
if (redis.call('GET', KEYS[4]) or '0') == ARGV[2] then
	local kept = tonumber(ARGV[5])
	local now = tonumber(ARGV[7])
	redis.call('SET', KEYS[1], ARGV[3], 'PX', kept)
	redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
	redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
	redis.call('ZADD', KEYS[5], now + kept, ARGV[6])
	if redis.call('PTTL', KEYS[5]) < kept then redis.call('PEXPIRE', KEYS[5], kept) end
	stored = 1
end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return stored
`

// releaseLua releases a lock only while the caller still owns it: a fill that ran
// past the lock's expiry must not free the lock of the instance that took it next.
const releaseLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

// purgeLua deletes indexed entries. KEYS: index, then entry and fresh marker of each
// member in ARGV. Reply: how many entries there were.
const purgeLua = `
local n = 0
for i, m in ipairs(ARGV) do
	n = n + redis.call('DEL', KEYS[2*i])
	redis.call('DEL', KEYS[2*i+1])
	redis.call('ZREM', KEYS[1], m)
end
return n
`

// purgeBatch bounds one purge script, so a route with many entries does not hold
// Redis for long.
const purgeBatch = 256

// redisTier is the fleet's shared tier.
type redisTier struct {
	client  redisClient
	prefix  string // the deployment's key prefix and "cache:"
	timeout time.Duration

	lookup, store, release, purge *redis.Script
}

func newRedisTier(client redisClient, keyPrefix string, timeout time.Duration) *redisTier {
	return &redisTier{
		client:  client,
		prefix:  keyPrefix + "cache:",
		timeout: timeout,
		lookup:  redis.NewScript(lookupLua),
		store:   redis.NewScript(storeLua),
		release: redis.NewScript(releaseLua),
		purge:   redis.NewScript(purgeLua),
	}
}

// routeKeys are the Redis keys of one route. They share the hash tag {route}, so a
// script touching several of them runs on one Cluster slot.
type routeKeys struct{ base string }

func (t *redisTier) route(route string) routeKeys {
	// A brace in the name would end the hash tag early; Cluster hashes what is
	// between the first { and the next }.
	tag := strings.NewReplacer("{", "%7B", "}", "%7D").Replace(route)
	return routeKeys{base: t.prefix + "{" + tag + "}:"}
}

func (rk routeKeys) entry(k string) string { return rk.base + "e:" + k }
func (rk routeKeys) fresh(k string) string { return rk.base + "f:" + k }
func (rk routeKeys) lock(k string) string  { return rk.base + "l:" + k }
func (rk routeKeys) gen() string           { return rk.base + "gen" }
func (rk routeKeys) index() string         { return rk.base + "idx" }

func (t *redisTier) epochKey() string        { return t.prefix + "epoch" }
func (t *redisTier) ackKey(id string) string { return t.prefix + "ack:" + id }
func (t *redisTier) channel() string         { return t.prefix + "purge" }

// found is what lookupLua saw.
type found struct {
	value            []byte // nil when there is no entry
	freshLeft, left  time.Duration
	locked           bool
	gen              string
	lockedBySomebody bool // no entry to serve fresh, and the lock is another's
}

func (t *redisTier) get(ctx context.Context, route string, k Key, token string, lockFor time.Duration, wantLock bool) (found, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	rk, hk := t.route(route), k.String()
	want := "0"
	if wantLock {
		want = "1"
	}
	v, err := t.lookup.Run(ctx, t.client, []string{rk.entry(hk), rk.fresh(hk), rk.lock(hk), rk.gen()},
		token, lockFor.Milliseconds(), want).Slice()
	if err != nil {
		return found{}, fmt.Errorf("cache: redis lookup: %w", err)
	}
	if len(v) != 5 {
		return found{}, fmt.Errorf("cache: redis lookup: %d values in the reply", len(v))
	}
	var f found
	if s, ok := v[0].(string); ok {
		f.value = []byte(s)
	}
	fresh, _ := v[1].(int64)
	left, _ := v[2].(int64)
	got, _ := v[3].(int64)
	f.freshLeft = time.Duration(fresh) * time.Millisecond
	f.left = time.Duration(left) * time.Millisecond
	f.locked = got == 1
	f.gen, _ = v[4].(string)
	f.lockedBySomebody = wantLock && !f.locked && f.freshLeft <= 0
	return f, nil
}

func (t *redisTier) put(ctx context.Context, route, path string, k Key, token, gen string, value []byte, fresh, kept time.Duration, now time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	rk, hk := t.route(route), k.String()
	n, err := t.store.Run(ctx, t.client, []string{rk.entry(hk), rk.fresh(hk), rk.lock(hk), rk.gen(), rk.index()},
		token, gen, value, fresh.Milliseconds(), kept.Milliseconds(), hk+path, now.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("cache: redis store: %w", err)
	}
	return n == 1, nil
}

func (t *redisTier) unlock(ctx context.Context, route string, k Key, token string) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	hk := k.String()
	if err := t.release.Run(ctx, t.client, []string{t.route(route).lock(hk)}, token).Err(); err != nil {
		return fmt.Errorf("cache: redis unlock: %w", err)
	}
	return nil
}

// purgeRoute deletes route's entries whose path starts with prefix and reports how
// many there were. The generation moves first: a fill that looked the key up
// before this point cannot store the answer it fetched after it.
func (t *redisTier) purgeRoute(ctx context.Context, route, prefix string) (int, error) {
	rk := t.route(route)
	if err := t.client.Incr(ctx, rk.gen()).Err(); err != nil {
		return 0, fmt.Errorf("cache: redis purge: %w", err)
	}
	members, err := t.client.ZRange(ctx, rk.index(), 0, -1).Result()
	if err != nil {
		return 0, fmt.Errorf("cache: redis purge: %w", err)
	}
	n := 0
	keys := []string{rk.index()}
	var args []any
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		c, err := t.purge.Run(ctx, t.client, keys, args...).Int()
		if err != nil {
			return fmt.Errorf("cache: redis purge: %w", err)
		}
		n += c
		keys, args = keys[:1], args[:0]
		return nil
	}
	for _, m := range members {
		if len(m) < 2*len(Key{}) {
			continue
		}
		hk, path := m[:2*len(Key{})], m[2*len(Key{}):]
		if !strings.HasPrefix(path, prefix) {
			continue
		}
		keys = append(keys, rk.entry(hk), rk.fresh(hk))
		args = append(args, m)
		if len(args) == purgeBatch {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	return n, nil
}

// purgeMessage is what a purge publishes to every instance.
type purgeMessage struct {
	ID     string   `json:"id"`
	Epoch  int64    `json:"epoch"`
	Routes []string `json:"routes"`
	Prefix string   `json:"prefix"`
}

// ack tells the purging instance that this one has emptied its tier.
func (t *redisTier) ack(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	_, err := t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, t.ackKey(id))
		p.Expire(ctx, t.ackKey(id), time.Minute)
		return nil
	})
	return err
}

// acks reads how many instances acknowledged purge id.
func (t *redisTier) acks(ctx context.Context, id string) (int64, error) {
	s, err := t.client.Get(ctx, t.ackKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// epoch reads the purge epoch: how many purges the fleet has made.
func (t *redisTier) epoch(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	s, err := t.client.Get(ctx, t.epochKey()).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

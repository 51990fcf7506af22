package wechat

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/secret"
)

// redisClient is what the Store calls; a go-redis UniversalClient (one server,
// Sentinel or Cluster) has it.
type redisClient interface {
	redis.Scripter
	HDel(ctx context.Context, key string, fields ...string) *redis.IntCmd
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
	Ping(ctx context.Context) *redis.StatusCmd
}

var _ redisClient = redis.UniversalClient(nil)

// A session as Redis holds it is one field of its owner's hash, named by the hex
// SHA-256 of its token, valued "<deadline ms>|<expires ms>|<JSON>". The expiry is in
// the value, not on the key, because the key holds all the owner's sessions (so that
// a login bounds them in one step on one key); the key itself expires with the last
// of them. Times are the gateway's clock, as the deadline always was.

// createLua stores a new session and bounds its owner's: sessions that have ended
// (or that this package did not write) are deleted, and while the owner would hold
// more than the bound, her oldest (earliest deadline, that is earliest login) is
// ended and its hash published on the logout channel, as a logout would. All in one
// key, in one step: a second login racing this one sees either all of it or none.
//
// KEYS[1]: the owner's sessions. ARGV: field, value, now ms, ms to keep the key at
// least, bound, logout channel, the owner in hex (the message is owner and field).
// Reply: nil when the field is taken, else the fields ended.
const createLua = `
local key, field, now = KEYS[1], ARGV[1], tonumber(ARGV[3])
if redis.call('HEXISTS', key, field) == 1 then return false end
local live = {}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
	local d, e = string.match(all[i+1], '^(%d+)|(%d+)|')
	if d and tonumber(e) > now then
		live[#live+1] = {tonumber(d), all[i]}
	else
		redis.call('HDEL', key, all[i])
	end
end
table.sort(live, function(a, b)
	if a[1] ~= b[1] then return a[1] < b[1] end
	return a[2] < b[2]
end)
local ended = {}
for i = 1, #live - tonumber(ARGV[5]) + 1 do
	local f = live[i][2]
	redis.call('HDEL', key, f)
	redis.call('PUBLISH', ARGV[6], ARGV[7] .. f)
	ended[#ended+1] = f
end
redis.call('HSET', key, field, ARGV[2])
if redis.call('PTTL', key) < tonumber(ARGV[4]) then redis.call('PEXPIRE', key, ARGV[4]) end
return ended
`

// lookupLua reads a session and, when more than an eighth of its TTL has passed
// since its expiry was last pushed out, pushes it out again, to TTL from now but
// never past its deadline, and the key's expiry with it. A session found ended is
// deleted. One key, one round trip; a lookup writes only when the expiry moves or
// the session has ended.
//
// KEYS[1]: the owner's sessions. ARGV: field, TTL ms, refresh once less than this
// many ms are left, now ms. Reply: nil, or the value (as stored, or unreadable: the
// caller tells).
const lookupLua = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local d, e, rest = string.match(v, '^(%d+)|(%d+)|(.*)$')
if not d then return v end
local now, exp = tonumber(ARGV[4]), tonumber(e)
if exp <= now then
	redis.call('HDEL', KEYS[1], ARGV[1])
	return false
end
if exp - now < tonumber(ARGV[3]) then
	local ext = math.min(now + tonumber(ARGV[2]), tonumber(d))
	if ext > exp then
		v = d .. '|' .. string.format('%d', ext) .. '|' .. rest
		redis.call('HSET', KEYS[1], ARGV[1], v)
		if redis.call('PTTL', KEYS[1]) < ext - now then redis.call('PEXPIRE', KEYS[1], ext - now) end
	end
end
return v
`

// readyWindow is how recent a call's outcome must be for Ready to go by it rather
// than ask Redis.
const readyWindow = time.Second

// redisSessions is the Redis half of a Store.
type redisSessions struct {
	client       redisClient
	prefix       string // {KeyPrefix}wx:user:
	channel      string // {KeyPrefix}wx:logout
	timeout      time.Duration
	createScript *redis.Script
	lookupScript *redis.Script
	now          func() time.Time
	log          *slog.Logger
	// last is the outcome of the most recent call that says something about
	// Redis: the Store clock's Unix ms when it came back, times two, plus one if
	// Redis answered. Zero before the first.
	last atomic.Int64
}

func newRedisSessions(c redisClient, keyPrefix string, timeout time.Duration, now func() time.Time, log *slog.Logger) *redisSessions {
	return &redisSessions{
		client:       c,
		prefix:       keyPrefix + "wx:user:",
		channel:      keyPrefix + "wx:logout",
		timeout:      timeout,
		createScript: redis.NewScript(createLua),
		lookupScript: redis.NewScript(lookupLua),
		now:          now,
		log:          log,
	}
}

// key is the hash of id's owner's sessions; field names id's session in it.
func (r *redisSessions) key(owner uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], owner)
	return r.prefix + hex.EncodeToString(b[:])
}

func field(id *tokenID) string { return hex.EncodeToString(id.hash[:]) }

// message is what a logout publishes: the owner (16 hex digits) and the session's
// field (64), all a follower needs to find its copy.
func message(id *tokenID) string {
	var b [8 + sha256.Size]byte
	binary.BigEndian.PutUint64(b[:8], id.owner)
	copy(b[8:], id.hash[:])
	return hex.EncodeToString(b[:])
}

// record is a session as Redis holds it, after "<deadline ms>|<expires ms>|".
// Plain strings: secret.Secret would marshal as "[redacted]".
type record struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid,omitempty"`
	SessionKey string `json:"session_key"`
}

// create stores s, to expire at expires (its TTL from now, or less near deadline),
// and ends the oldest sessions of its owner that would have more than perUser; it
// returns those.
func (r *redisSessions) create(ctx context.Context, id *tokenID, s Session, deadline, expires, now time.Time, perUser int) ([]tokenID, error) {
	body, err := json.Marshal(record{OpenID: s.OpenID, UnionID: s.UnionID, SessionKey: s.SessionKey.Reveal()})
	if err != nil {
		return nil, fmt.Errorf("wechat: encoding a session: %w", err)
	}
	value := strconv.FormatInt(deadline.UnixMilli(), 10) + "|" + strconv.FormatInt(expires.UnixMilli(), 10) + "|" + string(body)
	msg := message(id)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ended, err := r.createScript.Run(ctx, r.client, []string{r.key(id.owner)},
		field(id), value, now.UnixMilli(), max(expires.Sub(now), time.Millisecond).Milliseconds(),
		perUser, r.channel, msg[:16]).StringSlice()
	r.note(parent, err)
	switch {
	case errors.Is(err, redis.Nil):
		// A token has 192 random bits and never collides, but were it to, the
		// session of someone else must not be overwritten.
		return nil, errors.New("wechat: a new session token is already in use")
	case err != nil:
		return nil, unavailable("create", err)
	}
	gone := make([]tokenID, 0, len(ended))
	for _, f := range ended {
		g := tokenID{owner: id.owner}
		if len(f) == hex.EncodedLen(sha256.Size) {
			if _, err := hex.Decode(g.hash[:], []byte(f)); err == nil {
				gone = append(gone, g)
			}
		}
	}
	return gone, nil
}

// lookup reads the session under id, pushing its expiry out when due. ok is false
// when there is none, or its value is not one this package wrote.
func (r *redisSessions) lookup(ctx context.Context, id *tokenID, ttl time.Duration, now time.Time) (s Session, deadline time.Time, ok bool, err error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	refreshBelow := ttl - ttl/slideStep
	value, err := r.lookupScript.Run(ctx, r.client, []string{r.key(id.owner)},
		field(id), ttl.Milliseconds(), refreshBelow.Milliseconds(), now.UnixMilli()).Text()
	r.note(parent, err)
	switch {
	case errors.Is(err, redis.Nil):
		return Session{}, time.Time{}, false, nil
	case err != nil:
		return Session{}, time.Time{}, false, unavailable("lookup", err)
	}
	s, deadline, ok = decodeRecord(value)
	if !ok {
		// Not this package's writing (another deployment sharing the prefix?):
		// no session, and a word for the operator.
		r.log.LogAttrs(ctx, slog.LevelWarn, "wechat sessions: a session in Redis is unreadable; taken for none",
			slog.Int("bytes", len(value)))
		return Session{}, time.Time{}, false, nil
	}
	return s, deadline, true, nil
}

// decodeRecord reads "<deadline ms>|<expires ms>|<JSON>"; the session's Expires is
// the expiry, never past the deadline.
func decodeRecord(v string) (Session, time.Time, bool) {
	d, rest, found := strings.Cut(v, "|")
	if !found {
		return Session{}, time.Time{}, false
	}
	e, body, found := strings.Cut(rest, "|")
	if !found {
		return Session{}, time.Time{}, false
	}
	dms, err1 := strconv.ParseInt(d, 10, 64)
	ems, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil {
		return Session{}, time.Time{}, false
	}
	var rec record
	if err := json.Unmarshal([]byte(body), &rec); err != nil || rec.OpenID == "" {
		return Session{}, time.Time{}, false
	}
	deadline := time.UnixMilli(dms)
	return Session{OpenID: rec.OpenID, UnionID: rec.UnionID, SessionKey: secret.Secret(rec.SessionKey),
		Expires: time.UnixMilli(min(ems, dms))}, deadline, true
}

// remove deletes the session under id and tells every instance to drop its copy.
// A lost message is logged, not returned: the copies expire within LocalTrust.
func (r *redisSessions) remove(ctx context.Context, id *tokenID) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.client.HDel(ctx, r.key(id.owner), field(id)).Err()
	r.note(parent, err)
	if err != nil {
		return unavailable("HDEL", err)
	}
	err = r.client.Publish(ctx, r.channel, message(id)).Err()
	r.note(parent, err)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "wechat logout: could not tell the other instances; their copies expire within a second",
			slog.String("err", err.Error()))
	}
	return nil
}

// note keeps the outcome of a call for ready. A call that failed because the
// caller gave up (its ctx, not ours bounded by RedisTimeout, ended: a client that
// went away) says nothing about Redis and is not kept: were it, one impatient
// client would turn logins away for a second.
func (r *redisSessions) note(caller context.Context, err error) {
	answered := err == nil || errors.Is(err, redis.Nil)
	if !answered && caller.Err() != nil {
		return
	}
	v := r.now().UnixMilli() << 1
	if answered {
		v |= 1
	}
	r.last.Store(v)
}

// ready is nil when Redis answered the last call, made within readyWindow, or
// answers a PING now; ErrUnavailable otherwise.
func (r *redisSessions) ready(ctx context.Context) error {
	if v := r.last.Load(); v != 0 {
		if age := time.Duration(r.now().UnixMilli()-(v>>1)) * time.Millisecond; age >= 0 && age < readyWindow {
			if v&1 == 1 {
				return nil
			}
			return fmt.Errorf("%w: the last redis call, %v ago, failed", ErrUnavailable, age)
		}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.client.Ping(ctx).Err()
	r.note(parent, err)
	if err != nil {
		return unavailable("PING", err)
	}
	return nil
}

// follow keeps a subscription to logouts up until ctx ends, dropping the copy of
// every session logged out anywhere.
func (r *redisSessions) follow(ctx context.Context, t *table) {
	backoff := 100 * time.Millisecond
	for {
		up, err := r.subscribe(ctx, t)
		if ctx.Err() != nil {
			return
		}
		if up {
			r.log.LogAttrs(ctx, slog.LevelWarn, "wechat sessions: logout subscription lost; copies of sessions are still trusted for at most a second",
				slog.String("err", err.Error()))
			backoff = 100 * time.Millisecond
		} else {
			r.log.LogAttrs(ctx, slog.LevelDebug, "wechat sessions: subscribing to logouts failed", slog.String("err", err.Error()))
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 5*time.Second)
		case <-ctx.Done():
			return
		}
	}
}

// subscribe runs one subscription until it fails; up says it was confirmed. One
// that goes a second without a message is pinged, and one that then stays silent
// another second is taken for dead (a hung Redis accepts and answers nothing).
func (r *redisSessions) subscribe(ctx context.Context, t *table) (up bool, err error) {
	ps := r.client.Subscribe(ctx, r.channel)
	defer ps.Close()
	// Close interrupts a receive at once, so Store.Close need not wait it out.
	defer context.AfterFunc(ctx, func() { _ = ps.Close() })()
	if _, err := ps.ReceiveTimeout(ctx, r.timeout+time.Second); err != nil {
		return false, err
	}
	r.log.LogAttrs(ctx, slog.LevelDebug, "wechat sessions: following logouts")
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && ctx.Err() == nil {
				if err := ps.Ping(ctx); err != nil {
					return true, err
				}
				pinged = true
				continue
			}
			return true, err
		}
		pinged = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue // the Pong, or a (re)subscription confirmed
		}
		var b [8 + sha256.Size]byte
		if len(m.Payload) != hex.EncodedLen(len(b)) {
			continue
		}
		if _, err := hex.Decode(b[:], []byte(m.Payload)); err != nil {
			continue
		}
		id := tokenID{owner: binary.BigEndian.Uint64(b[:8])}
		copy(id.hash[:], b[8:])
		t.remove(&id)
	}
}

// unavailable is ErrUnavailable with what failed. go-redis errors carry neither
// keys nor the password.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

package wechat

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/signgate/signgate/secret"
)

// Session is one user's WeChat login.
type Session struct {
	OpenID  string
	UnionID string // "" unless the app is bound to an Open Platform account
	// SessionKey decrypts what the mini-program's wx APIs hand out signed and
	// encrypted; it never leaves the gateway.
	SessionKey secret.Secret
	// Expires is when the session ends unless it is used again, as the Store
	// saw it; zero from Code2Session.
	Expires time.Time
}

// StoreOptions configures a Store. Zero fields take the defaults named beside them.
type StoreOptions struct {
	// TTL is how long a session lives after its last use; DefaultTTL.
	TTL time.Duration
	// MaxAge is how long a session lives however much it is used; DefaultMaxAge,
	// and never less than TTL.
	MaxAge time.Duration
	// MaxSessions bounds what this process holds: without Redis the sessions
	// themselves, with it the copies of those used within the last LocalTrust;
	// DefaultMaxSessions.
	MaxSessions int
	// MaxPerUser bounds the sessions one user (openid) holds, with Redis or
	// without: her login past it ends her oldest session. wx.login hands out a
	// fresh code at every call, so without this bound one user logging in again
	// and again would fill MaxSessions alone and push everyone else out (or, with
	// Redis, grow its memory without end). A user on a phone, a tablet and a PC
	// needs three; DefaultMaxPerUser leaves room for mini-program reinstalls and
	// the like.
	MaxPerUser int
	// Redis holds the sessions for every instance; nil keeps them in this process.
	// A go-redis UniversalClient (state.Redis's Client) fits: one server,
	// Sentinel or Cluster.
	Redis redisClient
	// KeyPrefix is put in front of the Redis key and channel names.
	KeyPrefix string
	// RedisTimeout bounds each Redis call; DefaultRedisTimeout.
	RedisTimeout time.Duration
	// LocalTrust is how long a copy of a Redis session is used without asking
	// Redis again, and so how late a logout on another instance can reach this
	// one should the message announcing it be lost; DefaultLocalTrust, and never
	// more.
	LocalTrust time.Duration
	Now        func() time.Time // nil is time.Now
	Logger     *slog.Logger     // nil discards
}

// Defaults of StoreOptions.
const (
	DefaultTTL          = 24 * time.Hour
	DefaultMaxAge       = 30 * 24 * time.Hour
	DefaultMaxSessions  = 100_000
	DefaultMaxPerUser   = 10
	DefaultRedisTimeout = 500 * time.Millisecond
	DefaultLocalTrust   = time.Second
)

// slideStep is the fraction of TTL that must pass before a session's expiry is
// pushed out again: a session in use costs one write per TTL/slideStep, not one
// per request, and lives at least TTL-TTL/slideStep after its last use.
const slideStep = 8

// Store keeps sessions under opaque tokens, in Redis for every instance or in
// this process alone. It is safe for concurrent use.
//
// Sessions expire on a sliding TTL with a hard maximum age. A session lives TTL
// after its last use (give or take TTL/8: the expiry is pushed out only once that
// much of it has passed, so a busy session costs Redis one write per TTL/8
// instead of one per request), and never more than MaxAge after its login.
// Sliding, because a user in the mini-program every day should not be sent back
// through wx.login mid-use at a fixed hour, where a WeChat that is busy or rate
// limiting would look like our outage. Capped, because a token that leaked (a
// proxy's log, a shared phone) must stop working however often it is used, and a
// month-old session_key is stale anyway: WeChat replaces it at each wx.login.
//
// A user holds at most MaxPerUser sessions: her login past that ends her oldest.
// To bound them in the step that stores the new one, all of a user's sessions are
// kept together, and a token names whose it is: its first 8 bytes are the user's
// owner number (the SHA-256 of her openid, cut to 64 bits), the other 24 random.
//
// With Redis, a user's sessions are one hash, {prefix}wx:user:<owner, 16 hex
// digits>, with a field per session named by the hex SHA-256 of its token and
// holding its deadline, expiry and JSON; the key expires with the last of them.
// Every call touches that one key (a login is one script that reads the user's
// sessions, deletes the ended and the excess, and adds the new one), so the store
// works on Cluster unchanged and needs no hash tag. One key per session, as a
// Redis TTL per session would want, would put a user's sessions on as many slots,
// where no one script, and so no one round trip, could bound them. In front of
// Redis each instance keeps copies of the sessions it looked up, served for at
// most LocalTrust (1s) before Redis is asked again, so a hit costs no round trip,
// no allocation and well under a microsecond. A logout deletes the field and
// publishes the owner and hash on {prefix}wx:logout, as a login does for each
// session it ends; every instance following the channel (Start) drops its copy at
// once, and a lost message costs at most LocalTrust. A Redis that does not answer
// is ErrUnavailable, never "no session": copies are still served for the rest of
// their LocalTrust, and no longer.
type Store struct {
	ttl, maxAge time.Duration
	trust       time.Duration
	perUser     int
	local       *table
	redis       *redisSessions // nil without Redis
	now         func() time.Time

	mu      sync.Mutex
	stop    context.CancelFunc
	stopped chan struct{}
}

// NewStore returns a Store. With Redis, call Start to follow logouts made on
// other instances, and Close when done.
func NewStore(o StoreOptions) *Store {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	o.MaxAge = max(o.MaxAge, o.TTL)
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxPerUser <= 0 {
		o.MaxPerUser = DefaultMaxPerUser
	}
	if o.RedisTimeout <= 0 {
		o.RedisTimeout = DefaultRedisTimeout
	}
	if o.LocalTrust <= 0 || o.LocalTrust > DefaultLocalTrust {
		o.LocalTrust = DefaultLocalTrust
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		ttl:     o.TTL,
		maxAge:  o.MaxAge,
		trust:   o.LocalTrust,
		perUser: o.MaxPerUser,
		now:     o.Now,
	}
	if o.Redis != nil {
		s.redis = newRedisSessions(o.Redis, o.KeyPrefix, o.RedisTimeout, o.Now, o.Logger)
		s.local = newTable(o.MaxSessions, 0) // Redis keeps the bound per user
	} else {
		s.local = newTable(o.MaxSessions, o.MaxPerUser)
	}
	return s
}

// Create starts a session for the user sess names (its Expires is ignored) and
// returns its token and the session as stored. When the user already holds
// MaxPerUser sessions, her oldest ends, on every instance.
func (s *Store) Create(ctx context.Context, sess Session) (string, Session, error) {
	if sess.OpenID == "" {
		return "", Session{}, errors.New("wechat: a session needs an openid")
	}
	now := s.now()
	deadline := now.Add(s.maxAge)
	sess.Expires = now.Add(s.ttl)
	if sess.Expires.After(deadline) {
		sess.Expires = deadline
	}
	token := newSessionToken(ownerOf(sess.OpenID))
	id, _ := parseToken(token)
	e := &entry{hash: id.hash, owner: id.owner, sess: sess, expires: sess.Expires.UnixNano(), deadline: deadline.UnixNano()}
	if s.redis != nil {
		ended, err := s.redis.create(ctx, &id, sess, deadline, sess.Expires, now, s.perUser)
		if err != nil {
			return "", Session{}, err
		}
		for i := range ended { // the others drop theirs as the message reaches them
			s.local.remove(&ended[i])
		}
		e.expires = min(e.expires, now.Add(s.trust).UnixNano())
	}
	s.local.put(e, now.UnixNano())
	return token, sess, nil
}

// Lookup returns the session token names; ok is false when there is none
// (unknown, expired, logged out, or not a token at all). Without Redis, and with
// it for a session looked up on this instance within the last LocalTrust, it
// neither allocates nor blocks on anything but a shard's read lock.
func (s *Store) Lookup(ctx context.Context, token string) (sess Session, ok bool, err error) {
	id, ok := parseToken(token)
	if !ok {
		return Session{}, false, nil
	}
	now := s.now().UnixNano()
	if s.redis == nil {
		sess, ok = s.local.get(&id, now, s.ttl)
		return sess, ok, nil
	}
	if sess, ok = s.local.get(&id, now, 0); ok {
		return sess, true, nil
	}
	return s.fill(ctx, &id)
}

// fill reads a session from Redis and keeps a copy of it.
func (s *Store) fill(ctx context.Context, id *tokenID) (Session, bool, error) {
	gen := s.local.generation(id)
	now := s.now()
	sess, deadline, ok, err := s.redis.lookup(ctx, id, s.ttl, now)
	if err != nil || !ok {
		return Session{}, false, err
	}
	if !now.Before(deadline) { // by our clock; Redis's expiry is the key's own
		return Session{}, false, nil
	}
	if !sess.Expires.Before(deadline) {
		sess.Expires = deadline
	}
	e := &entry{hash: id.hash, owner: id.owner, sess: sess, deadline: deadline.UnixNano(),
		expires: min(sess.Expires.UnixNano(), now.Add(s.trust).UnixNano())}
	s.local.putIfGen(e, now.UnixNano(), gen)
	return sess, true, nil
}

// Logout ends the session token names, on every instance. A token that names no
// session is no error. With Redis unreachable it is ErrUnavailable, and the
// session lives on elsewhere: the caller should answer so that the user retries.
func (s *Store) Logout(ctx context.Context, token string) error {
	id, ok := parseToken(token)
	if !ok {
		return nil
	}
	if s.redis == nil {
		s.local.remove(&id)
		return nil
	}
	err := s.redis.remove(ctx, &id)
	// After the delete, not before: a lookup here that read Redis before it has
	// taken the generation that this removal moves, and so keeps no copy.
	s.local.remove(&id)
	return err
}

// Ready reports whether a session could be stored now: nil, or ErrUnavailable.
// A login calls it before it spends the user's wx.login code at jscode2session,
// because a code is good for one exchange: exchanged while Redis is down, it is
// used up (and counted against the app's jscode2session quota) for an answer of
// 503, where asking first answers the same 503 and leaves the code to a retry.
//
// Without Redis it is always nil. With Redis it is the outcome of the last Redis
// call this Store made, when that came back within the last second (a gateway in
// use makes such calls all the time, so Ready usually costs nothing, and during an
// outage it refuses at once instead of waiting out a timeout per login), else that
// of a PING bounded by RedisTimeout. A call the caller gave up on does not count.
// It is a forecast, not a promise: Create can still fail, and on Cluster the node
// last heard from may not be the one that holds the user's sessions.
func (s *Store) Ready(ctx context.Context) error {
	if s.redis == nil {
		return nil
	}
	return s.redis.ready(ctx)
}

// Start follows logouts made on other instances, until Close. Without Redis it
// does nothing.
func (s *Store) Start() {
	if s.redis == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.stopped = cancel, make(chan struct{})
	go func() {
		defer close(s.stopped)
		s.redis.follow(ctx, s.local)
	}()
}

// Close stops following logouts and waits until that has stopped. The Redis
// client is the caller's to close.
func (s *Store) Close() {
	s.mu.Lock()
	stop, stopped := s.stop, s.stopped
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
}

// Len is how many sessions (without Redis) or copies (with it) this process holds,
// expired ones not yet dropped included.
func (s *Store) Len() int { return s.local.len() }

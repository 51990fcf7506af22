package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Cache.
type Options struct {
	// MemoryBytes bounds the in-process tier; 0 turns it off.
	MemoryBytes int64
	// MaxEntryBytes is the largest body stored.
	MaxEntryBytes int64
	// Redis is the fleet's shared tier; nil keeps entries in process only. A
	// go-redis UniversalClient fits.
	Redis redisClient
	// KeyPrefix is put in front of every Redis key and channel.
	KeyPrefix string
	// Timeout bounds each Redis call of a request; 0 means 100ms. A Redis slower
	// than this is skipped, not waited for.
	Timeout time.Duration
	// LockTimeout is how long a fill may hold a key's lock, and so how long other
	// callers of that key wait for it; 0 means 10s.
	LockTimeout time.Duration
	// Logger receives Redis trouble; nil discards it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults for Options' zero values.
const (
	defaultTimeout     = 100 * time.Millisecond
	defaultLockTimeout = 10 * time.Second
	// redisPause is how long the cache skips Redis after a failed call: a Redis that
	// is down costs each request one timeout at most once a second.
	redisPause = time.Second
	// passFor bounds how long a "not stored" mark holds (hit-for-pass).
	passFor = 2 * time.Minute
)

// Cache is the two-tier response cache. It is safe for concurrent use.
type Cache struct {
	mem      *memory // nil when memory_bytes is 0
	rt       *redisTier
	maxEntry int64
	lockFor  time.Duration
	log      *slog.Logger
	now      func() time.Time

	// flights are the keys being looked up or filled in this process.
	mu      sync.Mutex
	flights map[Key]*flight

	// subscribed is whether the purge subscription is up: with Redis, the
	// in-process tier serves only then, since purges made meanwhile would not
	// reach it.
	subscribed atomic.Bool
	// purges counts purges applied here; a fill that saw it change does not put
	// its entry in the in-process tier (the purge may have missed it).
	purges atomic.Uint64
	// redisDownUntil (unix ns) skips Redis for a moment after a failed call.
	redisDownUntil atomic.Int64
	redisDown      atomic.Bool // for logging the transitions only

	stop      context.CancelFunc
	startOnce sync.Once
	stopped   chan struct{}
	bg        sync.WaitGroup
	bgCtx     context.Context
}

// New returns a Cache. With Redis, call Start to follow purges made elsewhere.
func New(o Options) *Cache {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = defaultLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		maxEntry: o.MaxEntryBytes,
		lockFor:  o.LockTimeout,
		log:      o.Logger,
		now:      o.Now,
		flights:  make(map[Key]*flight),
	}
	if o.MemoryBytes > 0 {
		c.mem = newMemory(o.MemoryBytes)
	}
	if o.Redis != nil {
		c.rt = newRedisTier(o.Redis, o.KeyPrefix, o.Timeout)
	}
	c.bgCtx, c.stop = context.WithCancel(context.Background())
	return c
}

// MaxEntryBytes is the largest body the cache stores.
func (c *Cache) MaxEntryBytes() int64 { return c.maxEntry }

// LockTimeout is how long callers wait for another's fill.
func (c *Cache) LockTimeout() time.Duration { return c.lockFor }

// Start follows the purges other instances publish, until Close. Without Redis it
// does nothing.
func (c *Cache) Start() {
	if c.rt == nil {
		return
	}
	c.startOnce.Do(func() {
		stopped := make(chan struct{})
		c.mu.Lock()
		c.stopped = stopped
		c.mu.Unlock()
		go func() {
			defer close(stopped)
			c.follow(c.bgCtx)
		}()
	})
}

// Close stops following purges and the refreshes running in the background, and
// waits for them.
func (c *Cache) Close() {
	c.mu.Lock()
	c.stop()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped != nil {
		<-stopped
	}
	c.bg.Wait()
}

// Background runs fn on its own goroutine with a context that Close cancels: a
// refresh that outlives the request that started it.
func (c *Cache) Background(timeout time.Duration, fn func(ctx context.Context)) {
	c.mu.Lock()
	closed := c.bgCtx.Err() != nil
	if !closed {
		// Under mu, as Close cancels: no Go after Close's Wait has begun.
		c.bg.Go(func() {
			ctx, cancel := context.WithTimeout(c.bgCtx, timeout)
			defer cancel()
			fn(ctx)
		})
	}
	c.mu.Unlock()
	if closed {
		// fn sees its context over at once, and gives up.
		fn(c.bgCtx)
	}
}

// memoryUsable reports whether the in-process tier may serve and take entries.
func (c *Cache) memoryUsable() bool {
	return c.mem != nil && (c.rt == nil || c.subscribed.Load())
}

// redisUsable reports whether Redis is configured and not in a pause after a failure.
func (c *Cache) redisUsable(now time.Time) bool {
	return c.rt != nil && now.UnixNano() >= c.redisDownUntil.Load()
}

// redisFailed pauses the use of Redis after err; a caller that gave up (its
// context ended) is not Redis's failure.
func (c *Cache) redisFailed(ctx context.Context, err error) {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return
	}
	c.redisDownUntil.Store(c.now().Add(redisPause).UnixNano())
	if c.redisDown.CompareAndSwap(false, true) {
		c.log.Warn("response cache: Redis failed; requests skip the cache while it does", "err", err)
	}
}

func (c *Cache) redisWorked() {
	if c.redisDown.CompareAndSwap(true, false) {
		c.log.Info("response cache: Redis answers again")
	}
}

// Meta says where an entry belongs, for purges.
type Meta struct {
	Route, Path string
}

// Outcome is what a lookup tells its caller to do.
type Outcome int

const (
	// Hit: serve Result.Entry, which is fresh.
	Hit Outcome = iota
	// Collapsed: serve Result.Entry, fresh from a fill the caller waited for.
	Collapsed
	// Stale: serve Result.Entry, stale (Result.Why says under which window);
	// with Result.Fill set, the caller refreshes it in the background.
	Stale
	// Miss: the caller holds the key; it forwards the request and hands the answer
	// to Result.Fill. Result.Entry, when set, is a stale entry to serve instead
	// should the upstream fail (stale_if_error).
	Miss
	// Bypass: forward the request and do not store the answer (Result.Why says
	// why). Result.Entry, when set, may be served if the upstream fails.
	Bypass
)

// Result is a lookup's answer.
type Result struct {
	Outcome Outcome
	Entry   *Entry
	Fill    *Fill
	Why     string
}

// flight is one key being looked up or filled in this process; the callers of the
// key that come meanwhile wait on it instead of asking Redis or the upstream too.
type flight struct {
	// done is closed when the flight has an outcome for its followers; the fields
	// below are set before.
	done  chan struct{}
	entry *Entry // a fresh entry
	stale *Entry // served stale while the leader refreshes (stale_while_revalidate)
	pass  bool   // the key's answers are not stored
	gone  bool   // the leader's caller left while the key was being looked up
}

// Get looks k up for a GET of the route and path in meta, under policy p. With
// canFill false the caller only reads: a miss never makes it the filler (its request
// carries conditions whose answer may not be the whole representation).
//
// A fresh hit in the in-process tier takes a mutex and a map lookup, and allocates
// nothing.
func (c *Cache) Get(ctx context.Context, k Key, meta Meta, p Policy, canFill bool) Result {
	return c.get(ctx, k, meta, p, canFill, 0)
}

// get is Get; tries counts the flights this caller joined whose leader went away.
func (c *Cache) get(ctx context.Context, k Key, meta Meta, p Policy, canFill bool, tries int) Result {
	now := c.now()
	var stale *Entry
	if c.memoryUsable() {
		if e := c.mem.get(k, now); e != nil {
			if e.Fresh.After(now) {
				if e.pass {
					return Result{Outcome: Bypass, Why: "uncacheable"}
				}
				return Result{Outcome: Hit, Entry: e}
			}
			stale = e
		}
	}
	if c.rt != nil && !c.redisUsable(now) {
		return Result{Outcome: Bypass, Why: "redis-unavailable"}
	}
	if !canFill {
		return c.read(ctx, k, meta, p, stale, now)
	}

	c.mu.Lock()
	if f := c.flights[k]; f != nil {
		c.mu.Unlock()
		res := c.await(ctx, f, stale)
		if res.Why == "leader-gone" && tries < 2 && ctx.Err() == nil {
			// The caller that looked the key up for this flight left before it had
			// an answer: look again, maybe as the next leader.
			return c.get(ctx, k, meta, p, canFill, tries+1)
		}
		return res
	}
	f := &flight{done: make(chan struct{})}
	c.flights[k] = f
	c.mu.Unlock()
	return c.lead(ctx, k, meta, p, stale, f)
}

// read is Get for a caller that only reads.
func (c *Cache) read(ctx context.Context, k Key, meta Meta, p Policy, stale *Entry, now time.Time) Result {
	if c.rt != nil {
		fd, err := c.rt.get(ctx, meta.Route, k, "", 0, false)
		if err != nil {
			c.redisFailed(ctx, err)
			return Result{Outcome: Bypass, Why: "redis-unavailable"}
		}
		c.redisWorked()
		if e := c.decode(fd, now); e != nil {
			if e.Fresh.After(now) {
				if e.pass {
					return Result{Outcome: Bypass, Why: "uncacheable"}
				}
				return Result{Outcome: Hit, Entry: e}
			}
			stale = e
		}
	}
	if stale != nil && !stale.pass && stale.StaleUntil.After(now) {
		return Result{Outcome: Stale, Entry: stale, Why: "stale-while-revalidate"}
	}
	return Result{Outcome: Bypass, Entry: usableOnError(stale, now), Why: "conditional"}
}

// await waits for another caller's flight of the same key.
func (c *Cache) await(ctx context.Context, f *flight, stale *Entry) Result {
	timer := time.NewTimer(c.lockFor)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
		now := c.now()
		return Result{Outcome: Bypass, Entry: usableOnError(stale, now), Why: "lock-timeout"}
	case <-ctx.Done():
		return Result{Outcome: Bypass, Why: "cancelled"}
	}
	now := c.now()
	switch {
	case f.entry != nil:
		return Result{Outcome: Collapsed, Entry: f.entry}
	case f.stale != nil:
		return Result{Outcome: Stale, Entry: f.stale, Why: "stale-while-revalidate"}
	case f.pass:
		return Result{Outcome: Bypass, Why: "uncacheable"}
	case f.gone:
		return Result{Outcome: Bypass, Why: "leader-gone"}
	}
	// The fill stored nothing (the upstream failed, or its answer is not stored):
	// each waiting caller asks the upstream itself, as nginx's proxy_cache_lock
	// lets them, or gets the stale entry the failure allows.
	if e := usableOnError(stale, now); e != nil {
		return Result{Outcome: Stale, Entry: e, Why: "stale-if-error"}
	}
	return Result{Outcome: Bypass, Why: "fill-failed"}
}

// usableOnError returns e when it may still be served because the upstream failed.
func usableOnError(e *Entry, now time.Time) *Entry {
	if e != nil && !e.pass && e.ErrorUntil.After(now) {
		return e
	}
	return nil
}

// finish ends f for its followers and forgets it.
func (c *Cache) finish(k Key, f *flight) {
	c.mu.Lock()
	if c.flights[k] == f {
		delete(c.flights, k)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
	default:
		close(f.done)
	}
}

// lead looks k up for the callers of this process and takes its lock.
func (c *Cache) lead(ctx context.Context, k Key, meta Meta, p Policy, stale *Entry, f *flight) Result {
	fill := &Fill{c: c, key: k, meta: meta, policy: p, flight: f, purges: c.purges.Load()}
	if c.rt == nil {
		// In process only: the flight is the lock.
		return c.decide(fill, stale, c.now())
	}
	fill.token = newToken()
	deadline := time.NewTimer(c.lockFor)
	defer deadline.Stop()
	backoff := 2 * time.Millisecond
	for {
		fd, err := c.rt.get(ctx, meta.Route, k, fill.token, c.lockFor, true)
		now := c.now()
		if err != nil {
			c.redisFailed(ctx, err)
			f.gone = ctx.Err() != nil
			c.finish(k, f)
			return Result{Outcome: Bypass, Entry: usableOnError(stale, now), Why: "redis-unavailable"}
		}
		c.redisWorked()
		if e := c.decode(fd, now); e != nil {
			if e.Fresh.After(now) {
				if e.pass {
					f.pass = true
					c.finish(k, f)
					return Result{Outcome: Bypass, Why: "uncacheable"}
				}
				c.keep(k, meta, e, fill.purges)
				f.entry = e
				c.finish(k, f)
				return Result{Outcome: Hit, Entry: e}
			}
			if !e.pass && (stale == nil || e.Stored.After(stale.Stored)) {
				stale = e
			}
		}
		if fd.locked {
			fill.gen = fd.gen
			return c.decide(fill, stale, now)
		}
		// Another instance is filling. Within stale_while_revalidate its stale
		// answer will do; otherwise wait for the entry, polling, since Redis has
		// nothing to wait on that works the same on one server and on Cluster.
		if stale != nil && stale.StaleUntil.After(now) {
			f.stale = stale
			c.finish(k, f)
			return Result{Outcome: Stale, Entry: stale, Why: "stale-while-revalidate"}
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 50*time.Millisecond)
		case <-deadline.C:
			c.finish(k, f)
			if e := usableOnError(stale, c.now()); e != nil {
				return Result{Outcome: Stale, Entry: e, Why: "stale-if-error"}
			}
			return Result{Outcome: Bypass, Why: "lock-timeout"}
		case <-ctx.Done():
			f.gone = true
			c.finish(k, f)
			return Result{Outcome: Bypass, Why: "cancelled"}
		}
	}
}

// decide is the outcome for a caller that holds k: refresh in the background
// behind a stale answer, or fill.
func (c *Cache) decide(fill *Fill, stale *Entry, now time.Time) Result {
	if stale != nil && !stale.pass && stale.StaleUntil.After(now) {
		// The followers get the stale answer now; the flight stays, so callers
		// that come during the refresh get it too without asking Redis.
		fill.flight.stale = stale
		fill.refreshing = true
		close(fill.flight.done)
		return Result{Outcome: Stale, Entry: stale, Fill: fill, Why: "stale-while-revalidate"}
	}
	return Result{Outcome: Miss, Entry: usableOnError(stale, now), Fill: fill}
}

// decode reads what Redis held into an entry, or nil.
func (c *Cache) decode(fd found, now time.Time) *Entry {
	if fd.value == nil {
		return nil
	}
	e, err := decode(fd.value, now, fd.freshLeft, fd.left)
	if err != nil {
		c.log.Warn("response cache: an entry in Redis does not decode; ignored", "err", err)
		return nil
	}
	return e
}

// keep puts e in the in-process tier, unless a purge came since the caller began
// (purges is the count it saw then): the entry may be what the purge removed.
func (c *Cache) keep(k Key, meta Meta, e *Entry, purges uint64) {
	if c.memoryUsable() && c.purges.Load() == purges {
		c.mem.put(k, meta.Route, meta.Path, e)
	}
}

// Fill is a caller's hold on a key whose answer it fetches. Exactly one of Store
// and Abandon must be called.
type Fill struct {
	c      *Cache
	key    Key
	meta   Meta
	policy Policy
	flight *flight
	token  string // the Redis lock's owner token
	gen    string // the route's purge generation when the lock was taken
	purges uint64
	once   sync.Once
	// refreshing is set when the fill runs behind a stale answer: its flight
	// already told its followers, and is only forgotten at the end.
	refreshing bool
}

// Store stores the answer under the fill's key, fresh for ttl (see Storable), and
// returns the entry, or nil when it was not stored (a purge came meanwhile, or
// Redis failed). noStale drops the stale windows (the upstream forbade them).
func (f *Fill) Store(ctx context.Context, status int, h http.Header, body []byte, ttl time.Duration, noStale bool) *Entry {
	var stored *Entry
	f.once.Do(func() {
		c := f.c
		defer c.finish(f.key, f.flight)
		p := f.policy
		if noStale {
			p.StaleWhileRevalidate, p.StaleIfError = 0, 0
		}
		now := c.now()
		e := newEntry(status, h, body, now, ttl, p)
		if c.rt != nil {
			ok, err := c.rt.put(context.WithoutCancel(ctx), f.meta.Route, f.meta.Path, f.key, f.token, f.gen, encode(e, ttl, p), ttl, p.lifetime(ttl), now)
			if err != nil {
				c.redisFailed(ctx, err)
				return
			}
			if !ok {
				return // purged since the lookup
			}
		} else if c.purges.Load() != f.purges {
			return
		}
		c.keep(f.key, f.meta, e, f.purges)
		if !f.refreshing {
			f.flight.entry = e
		}
		stored = e
	})
	return stored
}

// Abandon gives the key up without an entry. pass marks the request's answers as
// not stored for the route's ttl (at most two minutes), so callers go straight to
// the upstream rather than queue behind fills that store nothing.
func (f *Fill) Abandon(ctx context.Context, pass bool) {
	f.once.Do(func() {
		c := f.c
		defer c.finish(f.key, f.flight)
		ctx := context.WithoutCancel(ctx)
		if !pass {
			if c.rt != nil {
				if err := c.rt.unlock(ctx, f.meta.Route, f.key, f.token); err != nil {
					c.redisFailed(ctx, err)
				}
			}
			return
		}
		ttl := min(f.policy.TTL, passFor)
		now := c.now()
		e := &Entry{pass: true, Stored: now, Fresh: now.Add(ttl)}
		if c.rt != nil {
			if _, err := c.rt.put(ctx, f.meta.Route, f.meta.Path, f.key, f.token, f.gen, encode(e, ttl, Policy{}), ttl, ttl, now); err != nil {
				c.redisFailed(ctx, err)
				return
			}
		}
		c.keep(f.key, f.meta, e, f.purges)
		if !f.refreshing {
			f.flight.pass = true
		}
	})
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

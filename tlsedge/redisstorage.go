package tlsedge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// RedisClient is the part of go-redis a RedisStorage uses; redis.UniversalClient (a
// single server, Sentinel or Cluster) satisfies it.
type RedisClient interface {
	redis.Scripter
	HGet(ctx context.Context, key, field string) *redis.StringCmd
	SetNX(ctx context.Context, key string, value any, expiration time.Duration) *redis.BoolCmd
	ZRangeByLex(ctx context.Context, key string, opt *redis.ZRangeBy) *redis.StringSliceCmd
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	TxPipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// RedisStorageOptions configures a RedisStorage.
type RedisStorageOptions struct {
	// KeyPrefix is put in front of every key, as for the rest of the gateway's state,
	// so deployments sharing one Redis keep their certificates apart.
	KeyPrefix string
	// LockTTL is how long a lock outlives a holder that stopped refreshing it (a
	// crashed instance); 0 means 60s. A live holder refreshes it every LockTTL/3.
	LockTTL time.Duration
	// LockPollInterval is how often a blocked Lock tries again; 0 means 1s.
	LockPollInterval time.Duration
	// Logger receives lock-refresh trouble; nil means slog.Default().
	Logger *slog.Logger
}

const (
	defaultLockTTL          = 60 * time.Second
	defaultLockPollInterval = time.Second

	fieldValue    = "value"
	fieldModified = "modified" // Unix nanoseconds, as a decimal string
)

// refreshLockLua extends KEYS[1] by ARGV[2] milliseconds only while it holds ARGV[1]:
// a holder whose lock expired and was taken by another must not extend the new
// owner's lock.
const refreshLockLua = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`

// unlockLua deletes KEYS[1] only while it holds ARGV[1], in one step on the server, so
// a lock that expired and was taken by another owner is never freed by the previous one.
const unlockLua = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`

var (
	refreshLockScript = redis.NewScript(refreshLockLua)
	unlockScript      = redis.NewScript(unlockLua)
)

// RedisStorage is a certmagic.Storage in Redis, so every signgate instance behind a
// load balancer serves the same certificates and only one of them talks to the CA at a
// time. It is safe for concurrent use.
//
// Layout, under KeyPrefix + "{certmagic}:":
//
//	file:<key>    a hash: value, modified (Unix ns)
//	index         a sorted set of every stored key, all at score 0 so ZRANGEBYLEX
//	              lists a "directory" without SCAN over the whole keyspace (which
//	              also holds every nonce and rate-limit counter)
//	lock:<name>   a random owner token, with a TTL the holder keeps refreshing
//
// The "{certmagic}" hash tag (or one already in KeyPrefix, which Redis Cluster reads
// first) puts all of it in one slot, so a file and its index entry change in one
// MULTI/EXEC. The data is a few KB per domain.
type RedisStorage struct {
	c     RedisClient
	base  string // KeyPrefix + "{certmagic}:"
	index string
	ttl   time.Duration
	poll  time.Duration
	log   *slog.Logger

	mu   sync.Mutex
	held map[string]*heldLock // lock name → the lock this storage holds
}

// heldLock is a lock this process holds and the goroutine refreshing it.
type heldLock struct {
	key, token string
	stop       chan struct{}
	done       chan struct{}
}

var (
	_ certmagic.Storage   = (*RedisStorage)(nil)
	_ certmagic.Locker    = (*RedisStorage)(nil)
	_ certmagic.TryLocker = (*RedisStorage)(nil)
	_ fmt.Stringer        = (*RedisStorage)(nil)
	_ RedisClient         = (redis.UniversalClient)(nil)
)

// NewRedisStorage returns a RedisStorage on c.
func NewRedisStorage(c RedisClient, o RedisStorageOptions) *RedisStorage {
	if o.LockTTL <= 0 {
		o.LockTTL = defaultLockTTL
	}
	if o.LockPollInterval <= 0 {
		o.LockPollInterval = defaultLockPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	base := o.KeyPrefix + "{certmagic}:"
	return &RedisStorage{
		c:     c,
		base:  base,
		index: base + "index",
		ttl:   o.LockTTL,
		poll:  o.LockPollInterval,
		log:   o.Logger,
		held:  make(map[string]*heldLock),
	}
}

// String names the storage in certmagic's logs.
func (s *RedisStorage) String() string { return "RedisStorage:" + s.base }

func (s *RedisStorage) fileKey(key string) string  { return s.base + "file:" + key }
func (s *RedisStorage) lockKey(name string) string { return s.base + "lock:" + name }

// Store puts value at key, replacing what was there, and records the time.
func (s *RedisStorage) Store(ctx context.Context, key string, value []byte) error {
	key, err := cleanKey("store", key)
	if err != nil {
		return err
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.fileKey(key), fieldValue, value, fieldModified, strconv.FormatInt(time.Now().UnixNano(), 10))
		p.ZAdd(ctx, s.index, redis.Z{Member: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("tlsedge: redis storage: store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key; an error wrapping fs.ErrNotExist when there is none.
func (s *RedisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	key, err := cleanKey("load", key)
	if err != nil {
		return nil, err
	}
	b, err := s.c.HGet(ctx, s.fileKey(key), fieldValue).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, notExist("load", key)
	}
	if err != nil {
		return nil, fmt.Errorf("tlsedge: redis storage: load %s: %w", key, err)
	}
	return b, nil
}

// Delete removes key and, when key is a directory, every key under it. A missing key
// is not an error.
func (s *RedisStorage) Delete(ctx context.Context, key string) error {
	key, err := cleanKey("delete", key)
	if err != nil {
		return err
	}
	under, err := s.c.ZRangeByLex(ctx, s.index, under(key, 0)).Result()
	if err != nil {
		return fmt.Errorf("tlsedge: redis storage: delete %s: %w", key, err)
	}
	members := append([]string{key}, under...)
	files := make([]string, len(members))
	drop := make([]any, len(members))
	for i, m := range members {
		files[i], drop[i] = s.fileKey(m), m
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, files...)
		p.ZRem(ctx, s.index, drop...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tlsedge: redis storage: delete %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a file or a directory (a prefix of stored keys). An
// error reaching Redis counts as false, as the certmagic.Storage contract asks.
func (s *RedisStorage) Exists(ctx context.Context, key string) bool {
	key, err := cleanKey("exists", key)
	if err != nil {
		return false
	}
	var file *redis.IntCmd
	var dir *redis.StringSliceCmd
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		file = p.Exists(ctx, s.fileKey(key))
		dir = p.ZRangeByLex(ctx, s.index, under(key, 1))
		return nil
	}); err != nil {
		return false
	}
	return file.Val() > 0 || len(dir.Val()) > 0
}

// List returns the keys directly under dir, or with recursive every key and directory
// below it, as certmagic.FileStorage does: full keys, directories included. A dir with
// nothing under it that is not a file either is an error wrapping fs.ErrNotExist; ""
// lists from the top.
func (s *RedisStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = strings.Trim(dir, "/")
	rng := &redis.ZRangeBy{Min: "-", Max: "+"}
	if dir != "" {
		rng = under(dir, 0)
	}
	var members *redis.StringSliceCmd
	var file *redis.IntCmd
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		members = p.ZRangeByLex(ctx, s.index, rng)
		file = p.Exists(ctx, s.fileKey(dir))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("tlsedge: redis storage: list %s: %w", dir, err)
	}
	if len(members.Val()) == 0 {
		if dir != "" && file.Val() > 0 {
			return nil, nil // a file has no entries, as with FileStorage
		}
		return nil, notExist("list", dir)
	}

	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	seen := make(map[string]bool)
	var keys []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, m := range members.Val() {
		rest := strings.TrimPrefix(m, prefix)
		if !recursive {
			first, _, _ := strings.Cut(rest, "/")
			add(prefix + first)
			continue
		}
		// Every directory on the way down is an entry too, as a file walk yields it.
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' {
				add(prefix + rest[:i])
			}
		}
		add(m)
	}
	sort.Strings(keys)
	return keys, nil
}

// Stat describes key: a file with its size and modified time, or a directory.
func (s *RedisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key, err := cleanKey("stat", key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	var modified *redis.StringCmd
	var size *redis.IntCmd
	var dir *redis.StringSliceCmd
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		modified = p.HGet(ctx, s.fileKey(key), fieldModified)
		size = p.HStrLen(ctx, s.fileKey(key), fieldValue)
		dir = p.ZRangeByLex(ctx, s.index, under(key, 1))
		return nil
	})
	// Each command's own error: Pipelined reports only the first, and the HGET of a
	// directory's missing hash (redis.Nil) would hide a real one behind it.
	for _, err := range []error{modified.Err(), size.Err(), dir.Err()} {
		if err != nil && !errors.Is(err, redis.Nil) {
			return certmagic.KeyInfo{}, fmt.Errorf("tlsedge: redis storage: stat %s: %w", key, err)
		}
	}
	if ns, err := strconv.ParseInt(modified.Val(), 10, 64); err == nil {
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, ns), Size: size.Val(), IsTerminal: true}, nil
	}
	if len(dir.Val()) > 0 {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, notExist("stat", key)
}

// Lock takes the named lock, waiting while another holder has it, until ctx ends. The
// lock expires LockTTL after its holder stops refreshing it, so a crashed instance
// holds up renewals for at most that long.
func (s *RedisStorage) Lock(ctx context.Context, name string) error {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tlsedge: redis storage: lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLock takes the named lock if it is free and reports whether it did.
func (s *RedisStorage) TryLock(ctx context.Context, name string) (bool, error) {
	// The owner token is unguessable, so no other holder can refresh or free our lock.
	token, key := rand.Text(), s.lockKey(name)
	ok, err := s.c.SetNX(ctx, key, token, s.ttl).Result()
	if err != nil {
		return false, fmt.Errorf("tlsedge: redis storage: lock %s: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	h := &heldLock{key: key, token: token, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	prev := s.held[name]
	s.held[name] = h
	s.mu.Unlock()
	if prev != nil {
		// Ours once, but it expired (we could not refresh it) and we took it anew:
		// the old refresher has nothing left to do.
		prev.halt()
	}
	go s.keepFresh(name, h)
	return true, nil
}

// Unlock releases the named lock. It fails when this storage does not hold it, or when
// the lock had already expired, which means another instance may have run the same
// critical section meanwhile.
func (s *RedisStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("tlsedge: redis storage: unlock %s: not locked here", name)
	}
	h.halt()
	n, err := unlockScript.Run(ctx, s.c, []string{h.key}, h.token).Int()
	if err != nil {
		// The lock expires on its own within LockTTL.
		return fmt.Errorf("tlsedge: redis storage: unlock %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("tlsedge: redis storage: unlock %s: the lock had expired (not refreshed within %v)", name, s.ttl)
	}
	return nil
}

// keepFresh extends h every LockTTL/3 until halted or until the lock turns out to be
// someone else's. One failed refresh is not fatal: the lock lives LockTTL and two more
// tries come before then.
func (s *RedisStorage) keepFresh(name string, h *heldLock) {
	defer close(h.done)
	every := s.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		n, err := refreshLockScript.Run(ctx, s.c, []string{h.key}, h.token, s.ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err != nil:
			s.log.Warn("tls storage: refreshing a lock failed; trying again", "lock", name, "err", err)
		case n == 0:
			s.log.Error("tls storage: lost a lock before unlocking it; another instance may take it",
				"lock", name, "lock_ttl", s.ttl.String())
			return
		}
	}
}

// halt stops h's refresher and waits for it. Safe to call more than once.
func (h *heldLock) halt() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

// under is the ZRANGEBYLEX range of index members below dir ("dir/…"): '0' is the
// byte after '/', so "(dir0" is the first string past every "dir/…". limit > 0 asks
// for that many only.
func under(dir string, limit int64) *redis.ZRangeBy {
	return &redis.ZRangeBy{Min: "[" + dir + "/", Max: "(" + dir + "0", Count: limit}
}

// cleanKey drops the slashes certmagic keys never start or end with, and refuses the
// empty key, which would mean "everything" to Delete.
func cleanKey(op, key string) (string, error) {
	k := strings.Trim(key, "/")
	if k == "" {
		return "", fmt.Errorf("tlsedge: redis storage: %s: empty key", op)
	}
	return k, nil
}

func notExist(op, key string) error {
	return &fs.PathError{Op: op, Path: key, Err: fs.ErrNotExist}
}

package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/signgate/signgate/secret"
)

const defaultRedisTimeout = 500 * time.Millisecond

// compareAndDeleteLua deletes KEYS[1] only while it holds ARGV[1]. GET and DEL run as
// one step on the server, so a lock that expired and was taken by another owner
// between the two is never freed by its previous owner.
const compareAndDeleteLua = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// Addrs is one host:port for a single server, the Sentinels' addresses when
	// MasterName is set, or several cluster nodes.
	Addrs []string
	// MasterName selects Sentinel: the name of the master the Sentinels watch.
	MasterName string
	// Username is the ACL user; empty means the default user.
	Username string
	// Password authenticates to Redis (and to the Sentinels).
	Password secret.Secret
	// DB selects the database; cluster mode ignores it.
	DB int
	// TLS connects with TLS 1.2 or later, verifying the first address's host name.
	TLS bool
	// KeyPrefix is put in front of every key, so instances of different deployments
	// can share one Redis without seeing each other's state.
	KeyPrefix string
	// Timeout bounds every call, dial and retry included; 0 means 500ms.
	Timeout time.Duration
	// OnError, when set, is told the kind (ErrTimeout, ErrConnection, …) of every
	// command that failed, on whichever node: a Cluster's MOVED and TRYAGAIN, which
	// the client follows by itself, included.
	OnError func(kind string)
	// WatchEvery, when positive, is how often the store looks at which node is
	// master (see Redis.Topology); OnTopology, when set, is told each change.
	WatchEvery time.Duration
	OnTopology func(Topology)
}

// Redis is the state store shared by every signgate instance through Redis (one
// server, Sentinel or Cluster). It is safe for concurrent use.
type Redis struct {
	client   redis.UniversalClient
	pipeline *autoPipeline
	prefix   string
	timeout  time.Duration
	cad      *redis.Script
	desc     string
	topology *topology
}

// NewRedis returns a Redis store for o. It does not connect: a Redis that is down at
// start is reported by Ping and by each call, so the gateway can start and report not
// ready rather than refuse to run.
func NewRedis(o RedisOptions) (*Redis, error) {
	uo, err := universalOptions(o)
	if err != nil {
		return nil, err
	}
	client := redis.NewUniversalClient(uo)
	if o.OnError != nil {
		h := errorHook{o.OnError}
		if c, ok := client.(*redis.ClusterClient); ok {
			// On each node, not the cluster client: the redirects it follows
			// happen below it.
			c.OnNewNode(func(n *redis.Client) { n.AddHook(h) })
		} else {
			client.AddHook(h)
		}
	}
	r := &Redis{
		client:   client,
		pipeline: newAutoPipeline(client, uo.ReadTimeout),
		prefix:   o.KeyPrefix,
		timeout:  uo.ReadTimeout,
		cad:      redis.NewScript(compareAndDeleteLua),
		desc:     describe(o),
		topology: newTopology(o, uo, client),
	}
	if o.WatchEvery > 0 && r.topology.kind != "single" {
		r.topology.watch(o.WatchEvery, uo.ReadTimeout)
	}
	return r, nil
}

// universalOptions translates o for go-redis. The tuning is for failing fast: a
// gateway that waits seconds on a dead Redis holds every signed request that long, so
// each call gets Timeout in all and the caller decides what an error means.
func universalOptions(o RedisOptions) (*redis.UniversalOptions, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("state: redis: no addresses")
	}
	for _, a := range o.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("state: redis: address %q: %w", a, err)
		}
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("state: redis: negative timeout %v", o.Timeout)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = defaultRedisTimeout
	}
	uo := &redis.UniversalOptions{
		Addrs:      o.Addrs,
		MasterName: o.MasterName,
		Username:   o.Username,
		Password:   o.Password.Reveal(),
		DB:         o.DB,
		// Sentinels usually share the data nodes' password; go-redis would otherwise
		// talk to them unauthenticated.
		SentinelUsername: o.Username,
		SentinelPassword: o.Password.Reveal(),

		// RESP2: we use nothing RESP3 adds, and some proxies in front of managed
		// Redis still refuse HELLO.
		Protocol: 2,
		// Skip CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS on every new connection:
		// fewer round trips when reconnecting after an outage, nothing we read.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},

		// The per-call context deadline is the real bound; the socket timeouts
		// match it for work go-redis does outside a call's context.
		ContextTimeoutEnabled: true,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		// One retry covers a pooled connection that died with a restarted server.
		// A call that timed out is not retried (which could turn a slow SETNX into a
		// false "already set"): its socket deadline is the context's, and the retry
		// backoff (8ms or more) ends at ctx.Done first.
		MaxRetries:         1,
		DialerRetries:      2,
		DialerRetryTimeout: 50 * time.Millisecond,
		// PoolSize stays go-redis's 10 per CPU: a nonce check holds a connection for
		// one round trip, so even tens of thousands of requests a second need far fewer.
	}
	if o.TLS {
		host, _, _ := net.SplitHostPort(o.Addrs[0])
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	return uo, nil
}

// describe names the store for logs; it shows where Redis is, never how to log in.
func describe(o RedisOptions) string {
	addrs := strings.Join(o.Addrs, ",")
	switch {
	case o.MasterName != "":
		return "redis(sentinel " + o.MasterName + " via " + addrs + ")"
	case len(o.Addrs) > 1:
		return "redis(cluster " + addrs + ")"
	default:
		return "redis(" + addrs + ")"
	}
}

// String describes the store by its addresses, for logs.
func (r *Redis) String() string { return r.desc }

// SetNX stores value under key with the given ttl if key is absent, and reports whether
// it did.
func (r *Redis) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	// Nonce checks are the per-request call: batched with their neighbours.
	var cmd *redis.BoolCmd
	if t := redisTTL(ttl); t > 0 {
		cmd = redis.NewBoolCmd(ctx, "set", r.prefix+key, value, "px", t.Milliseconds(), "nx")
	} else {
		cmd = redis.NewBoolCmd(ctx, "setnx", r.prefix+key, value)
	}
	if err := r.pipeline.do(ctx, cmd); err != nil {
		return false, wrap(ctx, "SETNX", err)
	}
	ok, err := cmd.Result()
	if err != nil {
		return false, wrap(ctx, "SETNX", err)
	}
	return ok, nil
}

// Get returns the value stored under key; ok is false when the key is absent.
func (r *Redis) Get(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	v, err := r.client.Get(ctx, r.prefix+key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, wrap(ctx, "GET", err)
	}
	return v, true, nil
}

// Set stores value under key with the given ttl, replacing any value and ttl it had.
func (r *Redis) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Set(ctx, r.prefix+key, value, redisTTL(ttl)).Err(); err != nil {
		return wrap(ctx, "SET", err)
	}
	return nil
}

// Del removes key; removing an absent key is not an error.
func (r *Redis) Del(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return wrap(ctx, "DEL", err)
	}
	return nil
}

// CompareAndDelete removes key only while it still holds value, and reports whether it
// did: a lock's owner releases it without freeing a lock that expired and was taken by
// someone else meanwhile.
func (r *Redis) CompareAndDelete(ctx context.Context, key, value string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	// Run sends EVALSHA and falls back to EVAL once after a restart emptied the
	// script cache.
	n, err := r.cad.Run(ctx, r.client, []string{r.prefix + key}, value).Int()
	if err != nil {
		return false, wrap(ctx, "compare-and-delete", err)
	}
	return n == 1, nil
}

// TTL returns how long key has left to live; ok is false when the key is absent, and a
// key without expiry reports a negative duration.
func (r *Redis) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	d, err := r.client.PTTL(ctx, r.prefix+key).Result()
	if err != nil {
		return 0, false, wrap(ctx, "PTTL", err)
	}
	// go-redis passes PTTL's sentinels through as -2ns (absent) and -1ns (no expiry).
	switch d {
	case -2:
		return 0, false, nil
	case -1:
		return -1, true, nil
	}
	return d, true, nil
}

// Scripter returns the underlying client for callers that run their own Lua scripts
// on the same connection pool, such as the Redis rate limiter. Its calls get neither
// the store's KeyPrefix nor its per-call timeout wrapper: the caller puts the prefix
// on its keys. The client's socket timeouts (Timeout) still bound every call.
func (r *Redis) Scripter() redis.Scripter {
	return pipelinedScripter{r.pipeline, r.client, r.topology.kind == "cluster"}
}

// Topology says which node is master now and how many failovers the store saw, as
// of its last look (RedisOptions.WatchEvery; without it, Masters is the one server,
// or empty for Sentinel and Cluster).
func (r *Redis) Topology() Topology { return r.topology.get() }

// Client returns the underlying client, for callers that need more than Scripter, such
// as tlsedge.RedisStorage. As with Scripter, the caller prefixes its own keys.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Ping checks that Redis answers, for readiness.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return wrap(ctx, "PING", err)
	}
	return nil
}

// Close closes the connections to Redis.
func (r *Redis) Close() error {
	r.topology.close()
	if err := r.pipeline.close(r.client.Close); err != nil {
		return fmt.Errorf("state: redis close: %w", err)
	}
	return nil
}

// redisTTL maps our "ttl <= 0 never expires" onto go-redis, where -1 would mean
// KEEPTTL, and rounds a sub-millisecond ttl up to Redis's 1ms instead of letting
// go-redis log about it.
func redisTTL(ttl time.Duration) time.Duration {
	switch {
	case ttl <= 0:
		return 0
	case ttl < time.Millisecond:
		return time.Millisecond
	}
	return ttl
}

// wrap adds the operation to err and, when the call ran out of time, the context's
// error too: go-redis reports a deadline as a socket timeout, and callers test for
// context.DeadlineExceeded. Keys are left out (they carry client-chosen nonces) and
// go-redis errors never carry the password.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("state: redis %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("state: redis %s: %w", op, err)
}

// redisLog sends go-redis's own messages (dial failures, pool events) to slog
// instead of unstructured stderr.
type redisLog struct{ logger *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.logger.LogAttrs(ctx, slog.LevelWarn, "redis client", slog.String("detail", fmt.Sprintf(format, v...)))
}

// SetRedisLogger routes go-redis's internal log lines to logger. go-redis keeps one
// logger per process, so main calls this once.
func SetRedisLogger(logger *slog.Logger) { redis.SetLogger(redisLog{logger}) }

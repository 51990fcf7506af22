package state

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The kinds of Redis error RedisOptions.OnError reports, as the gateway's
// signgate_redis_errors_total{kind} counts them.
const (
	// ErrTimeout: no answer within the call's time (redis.timeout), or no
	// connection free in the pool within it.
	ErrTimeout = "timeout"
	// ErrConnection: refused, reset or closed connections, unreachable Sentinels: a
	// node that is down or restarting.
	ErrConnection = "connection"
	// ErrReadOnly: a write reached a replica, as an old master demoted by a
	// failover is until the client follows the new one.
	ErrReadOnly = "readonly"
	// ErrMoved: MOVED, ASK or TRYAGAIN from a Cluster node, while slots move to a
	// promoted replica (the client follows them by itself).
	ErrMoved = "moved"
	// ErrClusterDown: CLUSTERDOWN, a Cluster with slots no master serves.
	ErrClusterDown = "clusterdown"
	// ErrOther is every other error Redis or the client gave.
	ErrOther = "other"
)

// ErrorKinds lists the kinds, for metrics that start every series at zero.
var ErrorKinds = []string{ErrTimeout, ErrConnection, ErrReadOnly, ErrMoved, ErrClusterDown, ErrOther}

// ErrorKind says which kind of Redis error err is, or "" when it is none: no error,
// a key that is absent (redis.Nil), a caller that went away, or the NOSCRIPT that
// a failed-over or restarted server answers once before the script is sent again.
func ErrorKind(err error) string {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled),
		redis.HasErrorPrefix(err, "NOSCRIPT"):
		return ""
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err),
		strings.Contains(err.Error(), "connection pool timeout"):
		return ErrTimeout
	case redis.IsReadOnlyError(err):
		return ErrReadOnly
	case isMoved(err), redis.IsTryAgainError(err):
		return ErrMoved
	case redis.IsClusterDownError(err):
		return ErrClusterDown
	case isConnection(err):
		return ErrConnection
	}
	return ErrOther
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isMoved(err error) bool {
	if _, ok := redis.IsMovedError(err); ok {
		return true
	}
	_, ok := redis.IsAskError(err)
	return ok
}

func isConnection(err error) bool {
	var oe *net.OpError
	switch {
	case errors.As(err, &oe), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed), errors.Is(err, redis.ErrClosed):
		return true
	}
	// go-redis's own words for a Sentinel group it cannot reach, and for a Cluster
	// client with no node to send to.
	s := err.Error()
	return strings.Contains(s, "sentinels") || strings.Contains(s, "no nodes") ||
		strings.Contains(s, "MASTERDOWN")
}

// errorHook reports every failed command to onError, by kind. It sits on each
// node's client, so a Cluster's MOVED and TRYAGAIN, which the cluster client
// follows by itself, are counted too: an operator sees slots moving.
type errorHook struct{ onError func(kind string) }

func (h errorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.report(cmd.Err())
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			h.report(cmd.Err())
		}
		return err
	}
}

func (h errorHook) report(err error) {
	if kind := ErrorKind(err); kind != "" {
		h.onError(kind)
	}
}

// Topology is where the shared state lives, as the store last looked.
type Topology struct {
	// Kind is "single", "sentinel" or "cluster".
	Kind string
	// Masters are the masters serving now: the one server, the master the
	// Sentinels name, or every Cluster master. Empty until the first look
	// succeeds.
	Masters []string
	// Failovers counts the masters that changed since the store started: a
	// Sentinel promoting a replica is one, a Cluster replica taking over one
	// master's slots is one.
	Failovers int64
	// Err is why the last look failed; Masters are then the last ones seen.
	Err error
	// At is when the last look was made.
	At time.Time
}

// topology looks at where Redis serves from, every interval until stopped.
type topology struct {
	kind      string
	addr      string                  // single
	sentinels []*redis.SentinelClient // sentinel
	master    string                  // sentinel: the master's name
	cluster   *redis.ClusterClient    // cluster
	onChange  func(Topology)

	mu   sync.Mutex
	last Topology
	// seen is what the last look saw; a change is taken only once two looks in a
	// row agree, since during a failover nodes answer from views not yet agreed.
	seen []string

	stop chan struct{}
	done chan struct{}
}

func newTopology(o RedisOptions, uo *redis.UniversalOptions, client redis.UniversalClient) *topology {
	t := &topology{kind: "single", onChange: o.OnTopology}
	switch c := client.(type) {
	case *redis.ClusterClient:
		t.kind, t.cluster = "cluster", c
	default:
		if o.MasterName == "" {
			t.addr = o.Addrs[0]
			break
		}
		t.kind, t.master = "sentinel", o.MasterName
		for _, a := range o.Addrs {
			t.sentinels = append(t.sentinels, redis.NewSentinelClient(&redis.Options{
				Addr: a, Username: uo.SentinelUsername, Password: uo.SentinelPassword, TLSConfig: uo.TLSConfig,
				Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1,
				DialTimeout: uo.DialTimeout, ReadTimeout: uo.ReadTimeout, WriteTimeout: uo.WriteTimeout,
			}))
		}
	}
	t.last.Kind = t.kind
	if t.kind == "single" {
		t.last.Masters = []string{t.addr}
	}
	return t
}

// watch looks now and then every interval until close.
func (t *topology) watch(interval time.Duration, timeout time.Duration) {
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			t.look(ctx)
			cancel()
			select {
			case <-t.stop:
				return
			case <-tick.C:
			}
		}
	}()
}

// look asks where the masters are and records what changed.
func (t *topology) look(ctx context.Context) {
	masters, err := t.masters(ctx)
	t.mu.Lock()
	next := t.last
	next.At, next.Err = time.Now(), err
	stable := err == nil && (slices.Equal(masters, t.seen) || len(t.last.Masters) == 0)
	if err == nil {
		t.seen = masters
	}
	if stable {
		if len(t.last.Masters) > 0 {
			for _, m := range masters {
				if !slices.Contains(t.last.Masters, m) {
					next.Failovers++
				}
			}
		}
		next.Masters = masters
	}
	changed := !slices.Equal(next.Masters, t.last.Masters) || (next.Err == nil) != (t.last.Err == nil)
	t.last = next
	t.mu.Unlock()
	if changed && t.cluster != nil {
		t.cluster.ReloadState(ctx) // the client's slot map too
	}
	if changed && t.onChange != nil {
		t.onChange(next)
	}
}

func (t *topology) masters(ctx context.Context) ([]string, error) {
	switch t.kind {
	case "cluster":
		var lastErr error
		// A random node answers; after a master died it may be the dead one.
		for range 3 {
			slots, err := t.cluster.ClusterSlots(ctx).Result()
			if err != nil {
				lastErr = err
				continue
			}
			var ms []string
			for _, s := range slots {
				if len(s.Nodes) > 0 {
					ms = append(ms, s.Nodes[0].Addr)
				}
			}
			slices.Sort(ms)
			return slices.Compact(ms), nil
		}
		return nil, lastErr
	case "sentinel":
		var lastErr error
		for _, s := range t.sentinels {
			hp, err := s.GetMasterAddrByName(ctx, t.master).Result()
			if err == nil && len(hp) == 2 {
				return []string{net.JoinHostPort(hp[0], hp[1])}, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
	return []string{t.addr}, nil
}

func (t *topology) get() Topology {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := t.last
	tp.Masters = slices.Clone(tp.Masters)
	return tp
}

func (t *topology) close() {
	if t.stop != nil {
		close(t.stop)
		<-t.done
	}
	for _, s := range t.sentinels {
		_ = s.Close()
	}
}

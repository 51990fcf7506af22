package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/state"
)

// NonceStore is the part of the shared state the verifier needs: set a key only if it
// is absent, with a time to live. state.Memory and state.Redis satisfy it, so a nonce
// seen by one gateway instance is a replay on every other one.
type NonceStore interface {
	// SetNX stores key with value for ttl if key is absent and reports whether it did.
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
}

// DefaultSkew is the clock skew allowed when Verifier.Skew is zero, DESIGN.md's
// default for auth.timestamp_skew.
const DefaultSkew = 10 * time.Minute

// Verifier checks inbound signed requests (hmac-sha256 and daojia-md5): timestamp
// skew, signature, and replay. One Verifier serves every request; it holds no
// per-request state. Nonces must be set; a zero Skew, NonceTTL or Now takes its
// default (DefaultSkew, 2×Skew, time.Now).
type Verifier struct {
	Nonces   NonceStore       // where nonces and daojia signs are remembered; shared across instances
	Skew     time.Duration    // auth.timestamp_skew (default 10m)
	NonceTTL time.Duration    // auth.nonce_ttl (default 2×Skew)
	Now      func() time.Time // injected clock
	// Log, when set, receives the store error behind a 503 state_unavailable, at
	// most once a second: the caller's answer says only that replay protection is
	// unavailable, and an operator needs to know why.
	Log *slog.Logger
}

// lastStoreErr is when a store error was last logged (unix nanoseconds), for
// every Verifier of the process: a reload builds a new one, Redis stays as down.
var lastStoreErr atomic.Int64

// Errors whose text never varies are built once; the hot path of a refused request
// then allocates nothing for its answer.
var (
	errInvalidSignature = apierror.New(http.StatusUnauthorized, "invalid_signature", "signature does not match")
	errStateUnavailable = apierror.New(http.StatusServiceUnavailable, "state_unavailable", "replay protection is unavailable")
	// A zero secret would make the signature something anyone can compute. Config
	// validation refuses it, so reaching this is a wiring bug: fail closed.
	errNoSecret = apierror.ErrInternal
)

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) skew() time.Duration {
	if v.Skew > 0 {
		return v.Skew
	}
	return DefaultSkew
}

// nonceTTL is how long a nonce or sign is remembered. It is never less than 2×Skew
// plus one second: a request stamped Skew in the future passes the skew check until
// 2×Skew after it was first seen (timestamps have whole-second resolution, hence the
// second), and forgetting its nonce earlier would let it be replayed. A shorter
// auth.nonce_ttl is therefore raised rather than obeyed.
func (v *Verifier) nonceTTL() time.Duration {
	floor := 2*v.skew() + time.Second
	if v.NonceTTL > floor {
		return v.NonceTTL
	}
	return floor
}

// checkSkew refuses a timestamp more than Skew from the gateway's clock, either way.
func (v *Verifier) checkSkew(ts time.Time) error {
	skew := v.skew()
	// Sub saturates instead of overflowing, so a timestamp centuries away is safe.
	if d := v.now().Sub(ts); d > skew || d < -skew {
		return apierror.New(http.StatusUnauthorized, "timestamp_skew",
			fmt.Sprintf("timestamp is more than %s from the gateway's clock", skew))
	}
	return nil
}

// logStoreError logs err, unless another store error was logged less than a
// second ago: while Redis is down every signed request fails the same way.
func (v *Verifier) logStoreError(ctx context.Context, err error) {
	if v.Log == nil {
		return
	}
	now, last := time.Now().UnixNano(), lastStoreErr.Load()
	if now-last < int64(time.Second) || !lastStoreErr.CompareAndSwap(last, now) {
		return
	}
	v.Log.LogAttrs(ctx, slog.LevelWarn, "replay protection unavailable: the nonce store failed; signed requests answer 503 state_unavailable",
		slog.Any("error", err))
}

// Replay is what a request whose signature matched leaves against being replayed: a
// key in the nonce store, remembered for TTL. The request may pass only once Replay
// is recorded, fresh: by Remember, or together with the request's rate limits (see
// Recorded).
type Replay struct {
	// Key is the nonce store's key: "nonce:{<client>}:<nonce>" or
	// "daojia-sign:{<client, or daojia>}:<SIGN>". The client is a hash tag
	// (state.HashTag), so on a Redis Cluster a client's nonces share a slot with
	// its rate-limit buckets, and one script can check both.
	Key string
	// TTL is how long the key is kept: auth.nonce_ttl, never less than 2×Skew + 1s.
	TTL time.Duration
	// what names the replayed thing in the answer: "nonce" or "sign".
	what string
}

func (v *Verifier) replay(kind, scope, value, what string) Replay {
	return Replay{Key: kind + ":" + state.HashTag(scope) + ":" + value, TTL: v.nonceTTL(), what: what}
}

// Remember records rp in the nonce store; a key already there is a replay. Call it
// only once the signature has been checked (VerifyHMAC and VerifyDaojia do), so a
// forged request cannot use up a nonce a genuine one will carry. A store error fails
// closed: accepting the request would silently switch replay protection off.
func (v *Verifier) Remember(ctx context.Context, rp Replay) error {
	fresh, err := v.Nonces.SetNX(ctx, rp.Key, "1", rp.TTL)
	return v.Recorded(ctx, rp, fresh, err)
}

// Recorded is Remember's answer for rp when rp was recorded elsewhere, fresh or not
// or failing with err: nil, 401 replayed, or 503 state_unavailable (logged, at most
// once a second). The gateway records it in one script with the request's rate
// limits, one round trip to Redis for both.
func (v *Verifier) Recorded(ctx context.Context, rp Replay, fresh bool, err error) error {
	if err != nil {
		v.logStoreError(ctx, err)
		return errStateUnavailable
	}
	if !fresh {
		return apierror.New(http.StatusUnauthorized, "replayed", "this "+rp.what+" was already used")
	}
	return nil
}

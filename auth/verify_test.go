package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/state"
)

// testClock is an injected clock that tests move by hand, shared by the Verifier and
// the nonce store so that skew and expiry agree, as they do in production.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestVerifier returns a Verifier with DESIGN.md's defaults (10m skew, 20m nonce
// TTL) on the real in-memory state store, its clock starting at start.
func newTestVerifier(start time.Time) (*Verifier, *testClock) {
	clock := &testClock{t: start}
	return &Verifier{
		Nonces:   state.NewMemory(state.MemoryOptions{Now: clock.Now}),
		Skew:     10 * time.Minute,
		NonceTTL: 20 * time.Minute,
		Now:      clock.Now,
	}, clock
}

// failingStore is a nonce store that cannot be reached, as Redis when it is down.
type failingStore struct{}

func (failingStore) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
}

var _ NonceStore = failingStore{}
var _ NonceStore = (*state.Memory)(nil)

// wantAPIError fails t unless err is an *apierror.Error with status and code and a
// message containing msg.
func wantAPIError(t *testing.T, err error, status int, code, msg string) {
	t.Helper()
	var e *apierror.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *apierror.Error %d %s", err, err, status, code)
	}
	if e.Status != status || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("err = %d %s %q, want %d %s with a message containing %q", e.Status, e.Code, e.Message, status, code, msg)
	}
}

// wantNoLeak fails t if the error's text holds any of the secrets.
func wantNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q reveals %q", err, s)
		}
	}
}

func TestVerifierDefaults(t *testing.T) {
	tests := []struct {
		name         string
		v            Verifier
		skew, ttlMin time.Duration
	}{
		{"zero fields take DESIGN.md's defaults", Verifier{}, 10 * time.Minute, 20 * time.Minute},
		{"configured values are kept", Verifier{Skew: 5 * time.Minute, NonceTTL: time.Hour}, 5 * time.Minute, time.Hour},
		{"a nonce TTL shorter than twice the skew is raised", Verifier{Skew: 10 * time.Minute, NonceTTL: time.Minute}, 10 * time.Minute, 20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.skew(); got != tt.skew {
				t.Errorf("skew = %s, want %s", got, tt.skew)
			}
			if got := tt.v.nonceTTL(); got < tt.ttlMin || got > tt.ttlMin+time.Second {
				t.Errorf("nonce TTL = %s, want %s (+1s at most)", got, tt.ttlMin)
			}
			if tt.v.now().IsZero() {
				t.Error("nil Now must mean time.Now")
			}
		})
	}
}

// A request stamped a full Skew in the future stays acceptable for 2×Skew after it is
// first seen. Its nonce must be remembered that long even when auth.nonce_ttl says
// less, or it could be sent again.
func TestShortNonceTTLDoesNotReopenReplay(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	v, clock := newTestVerifier(start)
	v.NonceTTL = time.Minute
	secret := []byte("partner-secret")
	req := signedRequest(t, "GET", "/api/orders", nil, secret, start.Add(10*time.Minute), "future-nonce-1")
	if err := v.VerifyHMAC(context.Background(), req, nil, "partner", "partner-secret"); err != nil {
		t.Fatalf("first use: %v", err)
	}
	clock.Advance(20 * time.Minute) // now the timestamp is exactly Skew in the past
	err := v.VerifyHMAC(context.Background(), req, nil, "partner", "partner-secret")
	wantAPIError(t, err, http.StatusUnauthorized, "replayed", "nonce")
}

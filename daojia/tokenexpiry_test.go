package daojia

import (
	"context"
	"sync"
	"testing"
	"time"
)

// expiryLog records what a Client tells OnTokenExpiry.
type expiryLog struct {
	mu  sync.Mutex
	got []time.Time
}

func (l *expiryLog) record(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, t)
}

func (l *expiryLog) all() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.got...)
}

// The expiry gauge follows the token the instance holds: set when one is fetched,
// zero when 58到家 refuses it, set again when the next one comes, and the same for a
// second instance that takes the token the first one shared.
func TestTokenExpiryReported(t *testing.T) {
	env := newSandboxEnv(t, nil)
	var a, b expiryLog
	ca := env.client(t, func(o *Options) { o.OnTokenExpiry = a.record })
	cb := env.client(t, func(o *Options) { o.OnTokenExpiry = b.record })
	ctx := context.Background()
	call := func(c *Client) {
		t.Helper()
		if _, err := c.Call(ctx, "serviceUser/getAllServiceUser", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}

	first := env.clock.Now().Add(DefaultTokenTTL)
	call(ca)
	if got := a.all(); len(got) != 1 || !got[0].Equal(first) {
		t.Fatalf("after the first fetch OnTokenExpiry got %v, want [%v]", got, first)
	}

	t.Run("a token shared by another instance is reported there too", func(t *testing.T) {
		call(cb)
		// The shared copy keeps milliseconds.
		if got := b.all(); len(got) != 1 || got[0].Sub(first).Abs() >= time.Millisecond {
			t.Fatalf("OnTokenExpiry got %v, want [%v]", got, first)
		}
		if n := env.sandbox.TokenFetches(); n != 1 {
			t.Fatalf("token fetched %d times, want 1", n)
		}
	})

	t.Run("a token used from the cache is not reported again", func(t *testing.T) {
		call(ca)
		if got := a.all(); len(got) != 1 {
			t.Fatalf("OnTokenExpiry got %v, want one report", got)
		}
	})

	t.Run("a refused token is reported gone, then its successor", func(t *testing.T) {
		env.clock.Advance(10 * time.Minute)
		env.sandbox.ExpireTokens()
		call(ca)
		got := a.all()
		second := env.clock.Now().Add(DefaultTokenTTL)
		if len(got) != 3 || !got[1].IsZero() || !got[2].Equal(second) {
			t.Fatalf("OnTokenExpiry got %v, want [%v, zero, %v]", got, first, second)
		}
	})
}

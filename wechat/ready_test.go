package wechat

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pings is how many PINGs the server behind client has answered.
func pings(t *testing.T, client redis.UniversalClient) int {
	t.Helper()
	stats, err := client.Info(bg, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, found := strings.Cut(stats, "cmdstat_ping:calls=")
	if !found {
		return 0
	}
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	return n
}

// Without Redis there is nothing to wait for.
func TestReadyInMemory(t *testing.T) {
	if err := NewStore(StoreOptions{}).Ready(bg); err != nil {
		t.Errorf("Ready = %v", err)
	}
}

// Ready goes by the last call within a second and asks Redis (one PING) only when
// there was none: a busy gateway's logins cost Redis nothing more.
func TestReadyGoesByTheLastCall(t *testing.T) {
	_, client := startRedis(t)
	clock := newTestClock()
	// Not Started: the logout subscription pings Redis on its own.
	s := NewStore(StoreOptions{Redis: client, KeyPrefix: "sgtest:", Now: clock.Now})
	before := pings(t, client)
	if err := s.Ready(bg); err != nil { // nothing heard yet: a PING
		t.Fatalf("Ready = %v", err)
	}
	if n := pings(t, client) - before; n != 1 {
		t.Errorf("%d PINGs for the first Ready, want 1", n)
	}
	for range 100 {
		if err := s.Ready(bg); err != nil {
			t.Fatalf("Ready = %v", err)
		}
	}
	if n := pings(t, client) - before; n != 1 {
		t.Errorf("%d PINGs for 100 Readys within a second of one, want 1", n)
	}
	clock.Advance(2 * time.Second)
	if _, _, err := s.Create(bg, alice); err != nil { // a call that came back
		t.Fatal(err)
	}
	if err := s.Ready(bg); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	if n := pings(t, client) - before; n != 1 {
		t.Errorf("a Ready just after a login pinged Redis (%d PINGs in all)", n)
	}
	clock.Advance(2 * time.Second)
	if err := s.Ready(bg); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	if n := pings(t, client) - before; n != 2 {
		t.Errorf("%d PINGs after two seconds of silence, want 2", n)
	}
}

// With Redis down Ready is ErrUnavailable, within RedisTimeout; right after a call
// that failed, at once. Once Redis is back, Ready is nil again within a second.
func TestReadyWhenRedisIsDown(t *testing.T) {
	rs, client := startRedis(t)
	clock := newTestClock()
	s := newRedisStore(t, client, StoreOptions{Now: clock.Now, RedisTimeout: 200 * time.Millisecond})
	token, _, err := s.Create(bg, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(bg); err != nil {
		t.Fatalf("Ready with Redis up: %v", err)
	}
	for _, tc := range []struct {
		name     string
		down, up func()
	}{
		{"stopped", rs.Stop, rs.Restart},
		{"hung", rs.Pause, rs.Resume},
	} {
		tc.down()
		clock.Advance(2 * time.Second) // past the last call's word, and the copy's
		start := time.Now()
		err := s.Ready(bg)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Ready = %v, want ErrUnavailable", tc.name, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: Ready took %v with a 200ms Redis timeout", tc.name, took)
		}
		// A lookup fails too, and a Ready right after it need not ask again.
		clock.Advance(2 * time.Second)
		if _, _, err := s.Lookup(bg, token); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Lookup = %v, want ErrUnavailable", tc.name, err)
		}
		start = time.Now()
		if err := s.Ready(bg); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Ready after a failed call = %v, want ErrUnavailable", tc.name, err)
		}
		if took := time.Since(start); took > 50*time.Millisecond {
			t.Errorf("%s: Ready after a failed call took %v; it should not ask Redis again", tc.name, took)
		}
		tc.up()
		clock.Advance(2 * time.Second)
		if err := s.Ready(bg); err != nil {
			t.Errorf("%s: Ready once Redis is back: %v", tc.name, err)
		}
	}
}

// A call its caller gave up on (a client that went away) says nothing about Redis:
// it must not turn logins away.
func TestReadyIgnoresCallersThatGaveUp(t *testing.T) {
	_, client := startRedis(t)
	clock := newTestClock()
	s := newRedisStore(t, client, StoreOptions{Now: clock.Now})
	if _, _, err := s.Create(bg, alice); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, _, err := s.Lookup(ctx, NewToken()); err == nil {
		t.Fatal("a lookup with its context cancelled succeeded")
	}
	if err := s.Ready(bg); err != nil {
		t.Errorf("Ready after a lookup its caller gave up on: %v", err)
	}
}

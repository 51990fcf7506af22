package wechat

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eachStore runs test against a Store without Redis and one with it, both on
// clock and made with o.
func eachStore(t *testing.T, o StoreOptions, test func(t *testing.T, s *Store, clock *testClock)) {
	t.Run("memory", func(t *testing.T) {
		clock := newTestClock()
		o := o
		o.Now = clock.Now
		test(t, NewStore(o), clock)
	})
	t.Run("redis", func(t *testing.T) {
		clock := newTestClock()
		_, client := startRedis(t)
		o := o
		o.Now = clock.Now
		test(t, newRedisStore(t, client, o), clock)
	})
}

var alice = Session{OpenID: "o-alice", UnionID: "u-alice", SessionKey: "sgtest-session-key-Ab12"}

func TestSessionRoundTrip(t *testing.T) {
	eachStore(t, StoreOptions{TTL: time.Hour}, func(t *testing.T, s *Store, clock *testClock) {
		token, created, err := s.Create(bg, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(token) != 43 || strings.ContainsAny(token, "+/=") {
			t.Errorf("token %q is not 32 bytes of base64url", token)
		}
		if want := clock.Now().Add(time.Hour); !created.Expires.Equal(want) {
			t.Errorf("created expires %v, want %v", created.Expires, want)
		}
		for _, after := range []time.Duration{0, 2 * time.Second} { // a copy, then Redis again
			clock.Advance(after)
			got, ok, err := s.Lookup(bg, token)
			if err != nil || !ok {
				t.Fatalf("lookup after %v: %v, %v", after, ok, err)
			}
			if got.OpenID != alice.OpenID || got.UnionID != alice.UnionID || got.SessionKey.Reveal() != alice.SessionKey.Reveal() {
				t.Errorf("lookup after %v: %+v", after, got)
			}
			if d := got.Expires.Sub(clock.Now()); d < 59*time.Minute || d > time.Hour {
				t.Errorf("lookup after %v: expires in %v", after, d)
			}
		}

		other, _, err := s.Create(bg, Session{OpenID: "o-bob", SessionKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		if other == token {
			t.Fatal("two sessions, one token")
		}
		for name, tok := range map[string]string{
			"a token never issued": NewToken(),
			"empty":                "",
			"the token and more":   token + "A",
			"the token cut short":  token[:42],
			"not base64url":        strings.Repeat("*", 43),
			"the hash of a token":  hashHex(token),
		} {
			if _, ok, err := s.Lookup(bg, tok); ok || err != nil {
				t.Errorf("%s: found %v, %v", name, ok, err)
			}
		}

		if err := s.Logout(bg, token); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Lookup(bg, token); ok || err != nil {
			t.Errorf("after logout: found %v, %v", ok, err)
		}
		if _, ok, _ := s.Lookup(bg, other); !ok {
			t.Error("logging out one session ended another")
		}
		for _, tok := range []string{token, "", "not a token"} {
			if err := s.Logout(bg, tok); err != nil {
				t.Errorf("logout of %q: %v", tok, err)
			}
		}
		if _, _, err := s.Create(bg, Session{}); err == nil {
			t.Error("created a session without an openid")
		}
	})
}

func hashHex(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// userKey is the Redis hash (after the prefix) that holds the sessions of the
// owner token names.
func userKey(token string) string {
	id, _ := parseToken(token)
	return fmt.Sprintf("wx:user:%016x", id.owner)
}

// Expiry, on the injected clock: TTL 1h sliding, MaxAge 3h. With Redis, the key's
// own expiry runs on the real clock; the deadline and the copies follow ours.
func TestSessionExpiry(t *testing.T) {
	const ttl = time.Hour
	o := StoreOptions{TTL: ttl, MaxAge: 3 * ttl}
	t.Run("idle for the TTL", func(t *testing.T) {
		clock := newTestClock()
		o := o
		o.Now = clock.Now
		s := NewStore(o)
		token, _, _ := s.Create(bg, alice)
		clock.Advance(ttl - time.Second)
		if _, ok, _ := s.Lookup(bg, token); !ok {
			t.Fatal("gone before its TTL")
		}
		clock.Advance(ttl)
		if _, ok, _ := s.Lookup(bg, token); ok {
			t.Error("alive a TTL after its last use")
		}
	})
	t.Run("use slides the expiry, a little at a time", func(t *testing.T) {
		clock := newTestClock()
		o := o
		o.Now = clock.Now
		s := NewStore(o)
		token, created, _ := s.Create(bg, alice)
		clock.Advance(ttl / 16) // less than TTL/8: no write
		if got, _, _ := s.Lookup(bg, token); !got.Expires.Equal(created.Expires) {
			t.Errorf("expiry moved after TTL/16: %v → %v", created.Expires, got.Expires)
		}
		clock.Advance(ttl / 8)
		got, _, _ := s.Lookup(bg, token)
		if want := clock.Now().Add(ttl); !got.Expires.Equal(want) {
			t.Errorf("expires %v, want %v", got.Expires, want)
		}
	})
	eachStore(t, o, func(t *testing.T, s *Store, clock *testClock) {
		token, _, _ := s.Create(bg, alice)
		// In use every half TTL: alive past its first TTL, and to MaxAge only.
		for elapsed := time.Duration(0); elapsed < 3*ttl; elapsed += ttl / 2 {
			if _, ok, err := s.Lookup(bg, token); !ok || err != nil {
				t.Fatalf("in use, gone at %v: %v", elapsed, err)
			}
			clock.Advance(ttl / 2)
		}
		if _, ok, err := s.Lookup(bg, token); ok || err != nil {
			t.Errorf("alive at MaxAge: %v", err)
		}
	})
}

// The Redis key expires by itself, and use pushes that out, on the real clock.
func TestSessionExpiresInRedis(t *testing.T) {
	_, client := startRedis(t)
	const ttl = time.Second
	s := newRedisStore(t, client, StoreOptions{TTL: ttl, LocalTrust: 20 * time.Millisecond})
	token, _, err := s.Create(bg, alice)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * ttl / 2); time.Now().Before(end); time.Sleep(ttl / 10) {
		if _, ok, err := s.Lookup(bg, token); !ok || err != nil {
			t.Fatalf("in use, gone: %v", err)
		}
	}
	if left := client.PTTL(bg, "sgtest:"+userKey(token)).Val(); left <= ttl/2 || left > ttl {
		t.Errorf("key has %v left after steady use, want about %v", left, ttl)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if _, ok, err := s.Lookup(bg, token); ok || err != nil {
		t.Errorf("idle for its TTL, still found: %v", err)
	}
}

// A Redis dump holds hashes, never a token: one key per user, named by the owner
// number her tokens start with, a field per session named by the SHA-256 of its
// token; the key expires with the last of them.
func TestSessionKeyLayout(t *testing.T) {
	_, client := startRedis(t)
	s := newRedisStore(t, client, StoreOptions{KeyPrefix: "gw1:", TTL: time.Hour})
	token, _, err := s.Create(bg, alice)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := s.Create(bg, alice)
	if err != nil {
		t.Fatal(err)
	}
	owner := sha256.Sum256([]byte(alice.OpenID))
	want := "gw1:wx:user:" + hex.EncodeToString(owner[:8])
	if userKey(token) != userKey(second) || "gw1:"+userKey(token) != want {
		t.Fatalf("tokens name the owners %q and %q, want %q", userKey(token), userKey(second), want)
	}
	keys := client.Keys(bg, "*").Val()
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%q]", keys, want)
	}
	if ttl := client.PTTL(bg, want).Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("key expires in %v", ttl)
	}
	fields := client.HGetAll(bg, want).Val()
	if len(fields) != 2 || fields[hashHex(token)] == "" || fields[hashHex(second)] == "" {
		t.Fatalf("fields %q, want the hashes of the two tokens", fields)
	}
	for f, v := range fields {
		if strings.Contains(f+v, token) || strings.Contains(f+v, second) || !strings.Contains(v, alice.OpenID) {
			t.Errorf("field %q: value %q", f, v)
		}
	}
}

// Two gateway processes on one Redis: a session made on one works on the other,
// and a logout on either ends it on both within a second. The second instance
// keeps a copy (it has just looked the session up), so this tests the copy's
// invalidation, not only Redis.
func TestSessionAcrossInstances(t *testing.T) {
	rs, _ := startRedis(t)
	for _, follow := range []bool{true, false} {
		name := "following logouts"
		if !follow {
			name = "the logout message lost"
		}
		t.Run(name, func(t *testing.T) {
			a := newRedisStore(t, newRedisClient(t, rs.Addr), StoreOptions{})
			b := NewStore(StoreOptions{Redis: newRedisClient(t, rs.Addr), KeyPrefix: "sgtest:"})
			if follow {
				b.Start()
				waitFollowing(t, a, b)
			}
			t.Cleanup(b.Close)

			token, _, err := a.Create(bg, alice)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := b.Lookup(bg, token)
			if err != nil || !ok || got.OpenID != alice.OpenID || got.SessionKey.Reveal() != alice.SessionKey.Reveal() {
				t.Fatalf("on the other instance: %+v, %v, %v", got, ok, err)
			}
			if err := a.Logout(bg, token); err != nil {
				t.Fatal(err)
			}
			took, gone := eventually(t, 2*time.Second, func() bool {
				_, ok, err := b.Lookup(bg, token)
				return !ok && err == nil
			})
			if !gone || took > time.Second+50*time.Millisecond {
				t.Errorf("the other instance still had the session %v after the logout", took)
			}
			if follow && took > 200*time.Millisecond {
				t.Errorf("following logouts, the other instance took %v", took)
			}
			t.Logf("logout reached the other instance in %v", took)
		})
	}
}

// waitFollowing waits until b's logout subscription is up: a logout on a of a
// session b holds a copy of reaches b at once.
func waitFollowing(t *testing.T, a, b *Store) {
	t.Helper()
	_, ok := eventually(t, 5*time.Second, func() bool {
		token, _, err := a.Create(bg, alice)
		if err != nil {
			return false
		}
		b.Lookup(bg, token)
		a.Logout(bg, token)
		time.Sleep(20 * time.Millisecond)
		id, _ := parseToken(token)
		_, held := b.local.get(&id, time.Now().UnixNano(), 0)
		return !held
	})
	if !ok {
		t.Fatal("the second instance never followed logouts")
	}
}

// Sessions fail closed: a Redis that is gone is ErrUnavailable, never "no
// session"; a copy is served for its second and no longer.
func TestSessionWhenRedisIsDown(t *testing.T) {
	rs, client := startRedis(t)
	clock := newTestClock()
	s := newRedisStore(t, client, StoreOptions{Now: clock.Now, RedisTimeout: 200 * time.Millisecond})
	token, _, err := s.Create(bg, alice)
	if err != nil {
		t.Fatal(err)
	}
	rs.Stop()

	clock.Advance(900 * time.Millisecond)
	if got, ok, err := s.Lookup(bg, token); !ok || err != nil || got.OpenID != alice.OpenID {
		t.Errorf("within its second, the copy: %v, %v", ok, err)
	}
	clock.Advance(200 * time.Millisecond)
	for name, call := range map[string]func() error{
		"lookup past the copy's second": func() error { _, ok, err := s.Lookup(bg, token); return okErr(ok, err) },
		"lookup of a token never seen":  func() error { _, ok, err := s.Lookup(bg, NewToken()); return okErr(ok, err) },
		"create":                        func() error { _, _, err := s.Create(bg, alice); return err },
		"logout":                        func() error { return s.Logout(bg, token) },
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call()
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v with a 200ms Redis timeout", took)
			}
		})
	}

	rs.Restart() // empty: redis-server runs without persistence here
	if _, ok, err := s.Lookup(bg, token); ok || err != nil {
		t.Errorf("after a restart that lost the data: %v, %v", ok, err)
	}
	if _, _, err := s.Create(bg, alice); err != nil {
		t.Errorf("create after the restart: %v", err)
	}
}

func okErr(ok bool, err error) error {
	if ok {
		return errors.New("found")
	}
	return err
}

func TestSessionWhenRedisHangs(t *testing.T) {
	rs, client := startRedis(t)
	s := newRedisStore(t, client, StoreOptions{RedisTimeout: 200 * time.Millisecond})
	rs.Pause()
	defer rs.Resume()
	start := time.Now()
	_, _, err := s.Lookup(bg, NewToken())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v with a 200ms Redis timeout", took)
	}
}

// What this process holds stays within MaxSessions however many logins come:
// without Redis the sessions (the soonest to expire go), with it the copies (all
// sessions stay in Redis).
func TestSessionMemoryBound(t *testing.T) {
	for _, max := range []int{10, 1000, 5000} {
		clock := newTestClock()
		s := NewStore(StoreOptions{MaxSessions: max, Now: clock.Now})
		tokens := make([]string, 2*max)
		for i := range tokens {
			tokens[i], _, _ = s.Create(bg, user(i))
			clock.Advance(time.Second)
		}
		if n := s.Len(); n > max || n < max*9/10 {
			t.Errorf("MaxSessions %d: holds %d after %d logins", max, n, len(tokens))
		}
		if _, ok, _ := s.Lookup(bg, tokens[len(tokens)-1]); !ok {
			t.Errorf("MaxSessions %d: the newest session was evicted", max)
		}
		if _, ok, _ := s.Lookup(bg, tokens[0]); ok {
			t.Errorf("MaxSessions %d: the oldest session was kept", max)
		}
	}

	t.Run("the least recently used goes", func(t *testing.T) {
		clock := newTestClock()
		s := NewStore(StoreOptions{MaxSessions: 10, TTL: time.Hour, Now: clock.Now})
		tokens := make([]string, 10)
		for i := range tokens {
			tokens[i], _, _ = s.Create(bg, user(i))
		}
		clock.Advance(time.Hour / 4)
		s.Lookup(bg, tokens[0]) // slides: now the last to expire
		s.Create(bg, user(10))
		if _, ok, _ := s.Lookup(bg, tokens[0]); !ok {
			t.Error("the session just used was evicted")
		}
	})

	t.Run("copies of Redis sessions", func(t *testing.T) {
		_, client := startRedis(t)
		s := newRedisStore(t, client, StoreOptions{MaxSessions: 100})
		tokens := make([]string, 200)
		for i := range tokens {
			var err error
			if tokens[i], _, err = s.Create(bg, user(i)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tok := range tokens {
			if _, ok, err := s.Lookup(bg, tok); !ok || err != nil {
				t.Fatalf("a session evicted from Redis: %v", err)
			}
		}
		if n := s.Len(); n > 100 {
			t.Errorf("holds %d copies, bound 100", n)
		}
	})
}

// A lookup that read Redis before a logout must not keep a copy after it.
func TestCopyNotKeptPastALogout(t *testing.T) {
	tb := newTable(10, 0)
	id, _ := parseToken(NewToken())
	gen := tb.generation(&id)
	tb.remove(&id) // the logout, while the lookup waited on Redis
	if tb.putIfGen(&entry{hash: id.hash, owner: id.owner, expires: 1 << 62, deadline: 1 << 62}, 0, gen) {
		t.Error("a copy fetched before the logout was kept")
	}
	if _, ok := tb.get(&id, 0, 0); ok {
		t.Error("found")
	}
}

// user is the session of the i'th of many users.
func user(i int) Session {
	return Session{OpenID: "o-" + strconv.Itoa(i), SessionKey: "k"}
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := NewToken()
		if _, ok := parseToken(tok); !ok || seen[tok] {
			t.Fatalf("token %q: well-formed %v, seen before %v", tok, ok, seen[tok])
		}
		seen[tok] = true
	}
}

// A value this package did not write (another deployment on the same prefix, a
// hand edit) is no session, and the operator hears of it.
func TestSessionUnreadableInRedis(t *testing.T) {
	_, client := startRedis(t)
	logger, logs := newTestLogger()
	s := newRedisStore(t, client, StoreOptions{Logger: logger})
	for _, v := range []string{"garbage", "123|not json", "x|{}", `123|{"session_key":"k"}`} {
		token := NewToken()
		client.HSet(bg, "sgtest:"+userKey(token), hashHex(token), v)
		if _, ok, err := s.Lookup(bg, token); ok || err != nil {
			t.Errorf("value %q: found %v, %v", v, ok, err)
		}
	}
	if n := strings.Count(logs.String(), "unreadable"); n != 4 {
		t.Errorf("%d warnings for 4 unreadable sessions", n)
	}
}

package wechat

import (
	"math/rand/v2"
	"testing"
	"time"
)

var mallory = Session{OpenID: "o-mallory", SessionKey: "sgtest-session-key-Mm34"}

// A user holds at most MaxPerUser sessions: her login past it ends her oldest, on
// this instance at once (with Redis, its copy too), and no one else's.
func TestSessionBoundPerUser(t *testing.T) {
	eachStore(t, StoreOptions{MaxPerUser: 3, TTL: time.Hour}, func(t *testing.T, s *Store, clock *testClock) {
		aliceTok, _, err := s.Create(bg, alice)
		if err != nil {
			t.Fatal(err)
		}
		var hers []string
		for range 5 {
			clock.Advance(time.Millisecond) // Redis tells the oldest by the millisecond
			tok, _, err := s.Create(bg, mallory)
			if err != nil {
				t.Fatal(err)
			}
			hers = append(hers, tok)
		}
		for i, tok := range hers {
			_, ok, err := s.Lookup(bg, tok)
			if err != nil {
				t.Fatal(err)
			}
			if want := i >= 2; ok != want {
				t.Errorf("mallory's login %d of 5 (bound 3): found %v, want %v", i+1, ok, want)
			}
		}
		if got, ok, err := s.Lookup(bg, aliceTok); !ok || err != nil || got.OpenID != alice.OpenID {
			t.Errorf("alice's session after mallory's 5 logins: %v, %v", ok, err)
		}

		// What has ended does not count: after a logout and an expiry, a login
		// ends nothing that still lives.
		if err := s.Logout(bg, hers[2]); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
		next, _, err := s.Create(bg, mallory)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{hers[3], hers[4], next} {
			if _, ok, _ := s.Lookup(bg, tok); !ok {
				t.Error("a login within the bound (one of three logged out) ended a live session")
			}
		}
		clock.Advance(2 * time.Hour) // all of them idle past their TTL
		fresh := make([]string, 3)
		for i := range fresh {
			clock.Advance(time.Millisecond)
			if fresh[i], _, err = s.Create(bg, mallory); err != nil {
				t.Fatal(err)
			}
		}
		for _, tok := range fresh {
			if _, ok, _ := s.Lookup(bg, tok); !ok {
				t.Error("sessions that had expired counted against the bound")
			}
		}
	})
}

// The default bound: a user who logs in a hundred times holds her last ten
// sessions.
func TestSessionDefaultBoundPerUser(t *testing.T) {
	eachStore(t, StoreOptions{}, func(t *testing.T, s *Store, clock *testClock) {
		var tokens []string
		for range 100 {
			clock.Advance(time.Millisecond)
			tok, _, err := s.Create(bg, mallory)
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, tok)
		}
		live := 0
		for i, tok := range tokens {
			_, ok, err := s.Lookup(bg, tok)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				live++
				if i < len(tokens)-DefaultMaxPerUser {
					t.Errorf("login %d of 100 still lives", i+1)
				}
			}
		}
		if live != DefaultMaxPerUser {
			t.Errorf("%d sessions live after 100 logins, want %d", live, DefaultMaxPerUser)
		}
	})
}

// With Redis the bound holds Redis's memory too: the user's hash keeps ten fields
// however often she logs in, and fields of sessions that ended are gone at her
// next login.
func TestSessionBoundPerUserInRedis(t *testing.T) {
	_, client := startRedis(t)
	clock := newTestClock()
	s := newRedisStore(t, client, StoreOptions{Now: clock.Now, TTL: time.Hour})
	var first string
	for i := range 50 {
		clock.Advance(time.Millisecond)
		tok, _, err := s.Create(bg, mallory)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = tok
		}
	}
	key := "sgtest:" + userKey(first)
	if n := client.HLen(bg, key).Val(); n != DefaultMaxPerUser {
		t.Errorf("the user's hash holds %d fields after 50 logins, want %d", n, DefaultMaxPerUser)
	}
	clock.Advance(2 * time.Hour)
	if _, _, err := s.Create(bg, mallory); err != nil {
		t.Fatal(err)
	}
	if n := client.HLen(bg, key).Val(); n != 1 {
		t.Errorf("the user's hash holds %d fields after a login past the others' expiry, want 1", n)
	}
}

// A login that finds the memory store full ends its user's own oldest session
// before anyone else's: however often mallory logs in, alice stays (the table
// bound of 4 is below MaxPerUser, as in a small deployment or a test).
func TestSessionFullStoreEndsTheUsersOwnFirst(t *testing.T) {
	clock := newTestClock()
	s := NewStore(StoreOptions{MaxSessions: 4, TTL: time.Hour, Now: clock.Now})
	aliceTok, _, _ := s.Create(bg, alice)
	var hers []string
	for range 20 {
		clock.Advance(time.Second)
		tok, _, err := s.Create(bg, mallory)
		if err != nil {
			t.Fatal(err)
		}
		hers = append(hers, tok)
	}
	if _, ok, _ := s.Lookup(bg, aliceTok); !ok {
		t.Fatal("mallory's logins pushed alice's session out")
	}
	for i, tok := range hers {
		if _, ok, _ := s.Lookup(bg, tok); ok != (i >= len(hers)-3) {
			t.Errorf("mallory's login %d of %d: found %v", i+1, len(hers), ok)
		}
	}
	// A user with no session in a full store still gets in, at the cost of the
	// session that expires soonest.
	bobTok, _, _ := s.Create(bg, Session{OpenID: "o-bob", SessionKey: "k"})
	if _, ok, _ := s.Lookup(bg, bobTok); !ok {
		t.Error("bob could not log in to a full store")
	}
	if n := s.Len(); n != 4 {
		t.Errorf("holds %d, bound 4", n)
	}
}

// Many users logging in at once, some of them over and over: the table stays
// consistent (its per-user lists match its entries) and within both bounds.
func TestSessionBoundsUnderConcurrency(t *testing.T) {
	s := NewStore(StoreOptions{MaxSessions: 50, MaxPerUser: 4, TTL: time.Hour})
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 500 {
				u := user(r.IntN(30))
				tok, _, err := s.Create(bg, u)
				if err != nil {
					t.Error(err)
					return
				}
				switch r.IntN(3) {
				case 0:
					s.Logout(bg, tok)
				case 1:
					s.Lookup(bg, tok)
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if n := s.Len(); n > 50 {
		t.Errorf("holds %d, bound 50", n)
	}
	for i := range s.local.shards {
		sh := &s.local.shards[i]
		listed := 0
		for owner, mine := range sh.owners {
			if len(mine) == 0 || len(mine) > 4 {
				t.Errorf("owner %x: %d sessions listed", owner, len(mine))
			}
			for _, e := range mine {
				if sh.entries[e.hash] != e || e.owner != owner {
					t.Errorf("owner %x lists a session the shard does not hold", owner)
				}
			}
			listed += len(mine)
		}
		if listed != len(sh.entries) || listed != len(sh.order) {
			t.Errorf("shard %d: %d listed by owner, %d held, %d in the heap", i, listed, len(sh.entries), len(sh.order))
		}
	}
}

// A token the Store mints names its owner in its first 8 bytes; the rest is random.
func TestSessionTokenNamesItsOwner(t *testing.T) {
	seen := map[string]bool{}
	for i := range 1000 {
		u := user(i % 10)
		owner := ownerOf(u.OpenID)
		tok := newSessionToken(owner)
		id, ok := parseToken(tok)
		if !ok || id.owner != owner || seen[tok] {
			t.Fatalf("token %q: well-formed %v, owner %x want %x, seen before %v", tok, ok, id.owner, owner, seen[tok])
		}
		seen[tok] = true
	}
	if _, ok := parseToken(NewToken()); !ok {
		t.Error("NewToken's token is not well-formed")
	}
}

// The bound ends sessions on other instances too: their copies go as the login's
// message reaches them, not a LocalTrust later.
func TestSessionBoundPerUserAcrossInstances(t *testing.T) {
	rs, _ := startRedis(t)
	a := newRedisStore(t, newRedisClient(t, rs.Addr), StoreOptions{MaxPerUser: 2})
	b := newRedisStore(t, newRedisClient(t, rs.Addr), StoreOptions{MaxPerUser: 2})
	waitFollowing(t, a, b)
	oldest, _, err := a.Create(bg, mallory)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Lookup(bg, oldest); !ok || err != nil { // b keeps a copy
		t.Fatalf("on b: %v, %v", ok, err)
	}
	time.Sleep(5 * time.Millisecond) // the next logins' deadlines are later by the millisecond
	for range 2 {
		if _, _, err := a.Create(bg, mallory); err != nil {
			t.Fatal(err)
		}
	}
	took, gone := eventually(t, 2*time.Second, func() bool {
		_, ok, err := b.Lookup(bg, oldest)
		return !ok && err == nil
	})
	if !gone || took > 200*time.Millisecond {
		t.Errorf("b still had the session the bound ended %v later", took)
	}
}

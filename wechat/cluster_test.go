package wechat

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
)

// The store on a Redis Cluster: every call is one key, so logins (with the bound
// per user, which reads and writes the user's sessions in one script), lookups and
// logouts run on whichever master holds the user, across masters, with no
// CROSSSLOT; and the messages that end copies reach an instance subscribed through
// another node.
func TestSessionOnCluster(t *testing.T) {
	cluster := testredis.StartCluster(t)
	newClient := func() redis.UniversalClient {
		c := redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: cluster.Addrs(), Protocol: 2, DisableIdentity: true, ContextTimeoutEnabled: true,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 2,
		})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	o := StoreOptions{MaxPerUser: 3, RedisTimeout: 2 * time.Second}
	a, b := newRedisStore(t, newClient(), o), newRedisStore(t, newClient(), o)
	waitFollowing(t, a, b)
	waitFollowing(t, b, a)

	masters := map[string]bool{}
	for i := range 12 {
		u := user(i)
		var tokens []string
		for range 5 {
			tok, _, err := a.Create(bg, u)
			if err != nil {
				t.Fatalf("login of user %d: %v", i, err)
			}
			tokens = append(tokens, tok)
			if _, ok, err := b.Lookup(bg, tok); !ok || err != nil { // b keeps a copy of each
				t.Fatalf("user %d on b: %v, %v", i, ok, err)
			}
			time.Sleep(2 * time.Millisecond) // the next login's deadline is later by the millisecond
		}
		m, err := cluster.MasterOf("sgtest:" + userKey(tokens[0]))
		if err != nil {
			t.Fatal(err)
		}
		masters[m] = true
		_, gone := eventually(t, time.Second, func() bool {
			_, ok0, err0 := b.Lookup(bg, tokens[0])
			_, ok1, err1 := b.Lookup(bg, tokens[1])
			return !ok0 && !ok1 && err0 == nil && err1 == nil
		})
		if !gone {
			t.Errorf("user %d: b still has the sessions her logins past the bound ended", i)
		}
		for _, tok := range tokens[2:] {
			if _, ok, err := b.Lookup(bg, tok); !ok || err != nil {
				t.Errorf("user %d: a session within the bound: %v, %v", i, ok, err)
			}
		}
		if err := b.Logout(bg, tokens[4]); err != nil {
			t.Fatalf("logout of user %d: %v", i, err)
		}
		if took, gone := eventually(t, time.Second, func() bool {
			_, ok, err := a.Lookup(bg, tokens[4])
			return !ok && err == nil
		}); !gone || took > 200*time.Millisecond {
			t.Errorf("user %d: a had the session %v after the logout on b", i, took)
		}
	}
	if len(masters) < 2 {
		t.Errorf("12 users' sessions all on %d master(s); the test meant to span them", len(masters))
	}
	if err := a.Ready(bg); err != nil {
		t.Errorf("Ready = %v", err)
	}
}

package wechat

import (
	"net/http/httptest"
	"testing"
	"time"
)

// A request's session lookup when the session is at hand: without Redis, and with
// it for a session this instance looked up within the last second (the clock is
// held still so every lookup is such a hit). Neither may allocate.
func BenchmarkSessionLookupHit(b *testing.B) {
	still := time.Now()
	clock := func() time.Time { return still }
	stores := map[string]func(b *testing.B) *Store{
		"memory": func(*testing.B) *Store { return NewStore(StoreOptions{Now: clock}) },
		"redis-copy": func(b *testing.B) *Store {
			_, client := startRedis(b)
			return newRedisStore(b, client, StoreOptions{Now: clock})
		},
	}
	for _, name := range []string{"memory", "redis-copy"} {
		b.Run(name, func(b *testing.B) {
			s := stores[name](b)
			// A store with many sessions of many users, as a gateway has (one user's
			// would be bounded by MaxPerUser).
			for i := range 10_000 {
				if _, _, err := s.Create(bg, user(i)); err != nil {
					b.Fatal(err)
				}
			}
			token, _, _ := s.Create(bg, alice)
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, ok, err := s.Lookup(bg, token); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, ok, err := s.Lookup(bg, token); !ok || err != nil {
							b.Error(ok, err)
							return
						}
					}
				})
			})
		})
	}
}

// A login end to end, minus the gateway: the code exchanged at the sandbox over
// loopback HTTP, the session stored in memory.
func BenchmarkLogin(b *testing.B) {
	sb := NewSandbox(SandboxOptions{AppID: testAppID, Secret: testSecret, MaxCodes: 1 << 30})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	c, err := NewClient(ClientOptions{AppID: testAppID, Secret: testSecret, APIBase: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	s := NewStore(StoreOptions{})
	b.ReportAllocs()
	for b.Loop() {
		code, _, err := sb.Mint(SandboxCode{})
		if err != nil {
			b.Fatal(err)
		}
		sess, err := c.Code2Session(bg, code)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Create(bg, sess); err != nil {
			b.Fatal(err)
		}
	}
}

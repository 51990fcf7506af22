package tlsedge

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/internal/testredis"
)

// storagePair opens two handles on one store, as two instances of the gateway would.
type storagePair func(t *testing.T) (a, b certmagic.Storage)

// storageBackends are the stores the conformance suite runs against: Redis in db 0
// and db 1, and certmagic's own FileStorage, the reference the Redis one must match.
func storageBackends(t *testing.T) map[string]storagePair {
	srv := testredis.Start(t)
	onRedis := func(db int) storagePair {
		return func(t *testing.T) (certmagic.Storage, certmagic.Storage) {
			prefix := "signgate:" + t.Name() + ":" // tests share the server, not keys
			return newRedisStorage(t, srv, db, prefix), newRedisStorage(t, srv, db, prefix)
		}
	}
	return map[string]storagePair{
		"redis db 0": onRedis(0),
		"redis db 1": onRedis(1),
		"file": func(t *testing.T) (certmagic.Storage, certmagic.Storage) {
			dir := t.TempDir()
			return &certmagic.FileStorage{Path: dir}, &certmagic.FileStorage{Path: dir}
		},
	}
}

func redisClient(t *testing.T, srv *testredis.Server, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: db, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newRedisStorage is a RedisStorage on its own connection, polling quickly so lock
// tests do not wait a second per try.
func newRedisStorage(t *testing.T, srv *testredis.Server, db int, prefix string) *RedisStorage {
	t.Helper()
	logger, _ := testLogger()
	return NewRedisStorage(redisClient(t, srv, db), RedisStorageOptions{
		KeyPrefix: prefix, LockPollInterval: 20 * time.Millisecond, Logger: logger,
	})
}

func TestStorageConformance(t *testing.T) {
	ctx := context.Background()
	// The tree every case starts from, in certmagic's own layout.
	tree := map[string]string{
		"acme/ca.test-dir/users/ops@example.com/ops.json": "account",
		"acme/ca.test-dir/users/ops@example.com/ops.key":  "account key",
		"certificates/ca.test-dir/a.test/a.test.crt":      "cert a",
		"certificates/ca.test-dir/a.test/a.test.key":      "key a",
		"certificates/ca.test-dir/ab.test/ab.test.crt":    "cert ab",
		"certificates/ca.test-dir/wildcard_.a.test/w.crt": "cert w",
		"ocsp/a.test-1234": "staple",
		"last_clean.json":  "{}",
		"certificates/ca.test-dir/a.test/sub/deeper/nested.txt": "deep",
	}
	seed := func(t *testing.T, s certmagic.Storage) {
		for k, v := range tree {
			if err := s.Store(ctx, k, []byte(v)); err != nil {
				t.Fatalf("Store(%s): %v", k, err)
			}
		}
	}

	for name, open := range storageBackends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("load returns what was stored, for the other instance too", func(t *testing.T) {
				a, b := open(t)
				seed(t, a)
				for k, v := range tree {
					got, err := b.Load(ctx, k)
					if err != nil || string(got) != v {
						t.Errorf("Load(%s) = %q, %v; want %q", k, got, err, v)
					}
				}
			})

			t.Run("store replaces the value", func(t *testing.T) {
				a, b := open(t)
				seed(t, a)
				k := "certificates/ca.test-dir/a.test/a.test.crt"
				if err := b.Store(ctx, k, []byte("renewed")); err != nil {
					t.Fatal(err)
				}
				if got, err := a.Load(ctx, k); err != nil || string(got) != "renewed" {
					t.Errorf("Load after replace = %q, %v", got, err)
				}
			})

			t.Run("binary values survive", func(t *testing.T) {
				a, _ := open(t)
				v := []byte{0, 1, 2, 0xff, '\n', 0, 'x'}
				if err := a.Store(ctx, "bin", v); err != nil {
					t.Fatal(err)
				}
				if got, err := a.Load(ctx, "bin"); err != nil || !bytes.Equal(got, v) {
					t.Errorf("Load = %v, %v; want %v", got, err, v)
				}
			})

			t.Run("load of a missing key is fs.ErrNotExist", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				for _, k := range []string{"nope", "certificates/ca.test-dir/a.test/a.test.csr", "ocsp/a"} {
					if _, err := a.Load(ctx, k); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("Load(%s) error = %v, want fs.ErrNotExist", k, err)
					}
				}
			})

			t.Run("exists for files and directories, not for partial components", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				tests := []struct {
					key  string
					want bool
				}{
					{"certificates/ca.test-dir/a.test/a.test.crt", true},
					{"certificates/ca.test-dir/a.test", true},
					{"certificates", true},
					{"last_clean.json", true},
					{"certificates/ca.test-dir/a.tes", false}, // a prefix, not a component
					{"certificates/ca.test-dir/a.test/a.test", false},
					{"nope", false},
				}
				for _, tt := range tests {
					if got := a.Exists(ctx, tt.key); got != tt.want {
						t.Errorf("Exists(%s) = %v, want %v", tt.key, got, tt.want)
					}
				}
			})

			t.Run("list", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				tests := []struct {
					name      string
					prefix    string
					recursive bool
					want      []string
				}{
					{"direct children only", "certificates/ca.test-dir", false, []string{
						"certificates/ca.test-dir/a.test",
						"certificates/ca.test-dir/ab.test",
						"certificates/ca.test-dir/wildcard_.a.test",
					}},
					{"files and a subdirectory", "certificates/ca.test-dir/a.test", false, []string{
						"certificates/ca.test-dir/a.test/a.test.crt",
						"certificates/ca.test-dir/a.test/a.test.key",
						"certificates/ca.test-dir/a.test/sub",
					}},
					{"recursive walks directories and lists them too", "certificates/ca.test-dir/a.test", true, []string{
						"certificates/ca.test-dir/a.test/a.test.crt",
						"certificates/ca.test-dir/a.test/a.test.key",
						"certificates/ca.test-dir/a.test/sub",
						"certificates/ca.test-dir/a.test/sub/deeper",
						"certificates/ca.test-dir/a.test/sub/deeper/nested.txt",
					}},
					{"recursive from a top-level directory", "acme", true, []string{
						"acme/ca.test-dir",
						"acme/ca.test-dir/users",
						"acme/ca.test-dir/users/ops@example.com",
						"acme/ca.test-dir/users/ops@example.com/ops.json",
						"acme/ca.test-dir/users/ops@example.com/ops.key",
					}},
					{"a deep directory", "certificates/ca.test-dir/a.test/sub/deeper", false, []string{
						"certificates/ca.test-dir/a.test/sub/deeper/nested.txt",
					}},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						got, err := a.List(ctx, tt.prefix, tt.recursive)
						if err != nil {
							t.Fatal(err)
						}
						slices.Sort(got) // FileStorage walks in name order; order is not promised
						if !slices.Equal(got, tt.want) {
							t.Errorf("List(%s, %v) =\n\t%s\nwant\n\t%s", tt.prefix, tt.recursive,
								strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
						}
					})
				}
			})

			t.Run("list of a missing directory is fs.ErrNotExist", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				for _, recursive := range []bool{false, true} {
					// "a.tes" is a prefix of a stored name, but not a component of one.
					for _, dir := range []string{"certificates/other-ca", "certificates/ca.test-dir/a.tes"} {
						if keys, err := a.List(ctx, dir, recursive); !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("List(%s, %v) = %v, %v; want fs.ErrNotExist", dir, recursive, keys, err)
						}
					}
				}
			})

			t.Run("list of a file is empty", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				if keys, err := a.List(ctx, "last_clean.json", false); err != nil || len(keys) != 0 {
					t.Errorf("List(file) = %v, %v; want nothing", keys, err)
				}
			})

			t.Run("stat of a file has its size and modified time", func(t *testing.T) {
				a, b := open(t)
				before := time.Now()
				if err := a.Store(ctx, "certificates/x/x.crt", []byte("12345")); err != nil {
					t.Fatal(err)
				}
				after := time.Now()
				info, err := b.Stat(ctx, "certificates/x/x.crt")
				if err != nil {
					t.Fatal(err)
				}
				// A file system stamps mtime from a coarse clock, a few ms behind Now.
				if info.Key != "certificates/x/x.crt" || !info.IsTerminal || info.Size != 5 ||
					info.Modified.Before(before.Add(-time.Second)) || info.Modified.After(after.Add(time.Second)) {
					t.Errorf("Stat = %+v; want the key, terminal, size 5, modified in [%v, %v]", info, before, after)
				}
			})

			t.Run("stat of a directory is not terminal", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				info, err := a.Stat(ctx, "certificates/ca.test-dir")
				if err != nil || info.IsTerminal || info.Key != "certificates/ca.test-dir" {
					t.Errorf("Stat(dir) = %+v, %v; want a non-terminal key", info, err)
				}
			})

			t.Run("stat of a missing key is fs.ErrNotExist", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				if info, err := a.Stat(ctx, "certificates/ca.test-dir/a.tes"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Stat(missing) = %+v, %v; want fs.ErrNotExist", info, err)
				}
			})

			t.Run("delete of a file leaves its neighbours", func(t *testing.T) {
				a, b := open(t)
				seed(t, a)
				if err := b.Delete(ctx, "certificates/ca.test-dir/a.test/a.test.key"); err != nil {
					t.Fatal(err)
				}
				if a.Exists(ctx, "certificates/ca.test-dir/a.test/a.test.key") {
					t.Error("deleted key still exists")
				}
				if !a.Exists(ctx, "certificates/ca.test-dir/a.test/a.test.crt") {
					t.Error("neighbour was deleted too")
				}
			})

			t.Run("delete of a directory removes everything under it, and only that", func(t *testing.T) {
				a, _ := open(t)
				seed(t, a)
				if err := a.Delete(ctx, "certificates/ca.test-dir/a.test"); err != nil {
					t.Fatal(err)
				}
				got, err := a.List(ctx, "certificates", true)
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(got)
				want := []string{
					"certificates/ca.test-dir",
					"certificates/ca.test-dir/ab.test",
					"certificates/ca.test-dir/ab.test/ab.test.crt",
					"certificates/ca.test-dir/wildcard_.a.test",
					"certificates/ca.test-dir/wildcard_.a.test/w.crt",
				}
				if !slices.Equal(got, want) {
					t.Errorf("left after delete:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
				}
				if _, err := a.Load(ctx, "certificates/ca.test-dir/a.test/sub/deeper/nested.txt"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Load of a key under the deleted directory: %v", err)
				}
			})

			t.Run("delete of a missing key is not an error", func(t *testing.T) {
				a, _ := open(t)
				if err := a.Delete(ctx, "never/stored"); err != nil {
					t.Errorf("Delete(missing) = %v", err)
				}
			})

			t.Run("second Lock waits until the first Unlock", func(t *testing.T) {
				a, b := open(t)
				const name = "issue_cert_a.test"
				if err := a.Lock(ctx, name); err != nil {
					t.Fatal(err)
				}
				got := make(chan error, 1)
				go func() { got <- b.Lock(ctx, name) }()
				select {
				case err := <-got:
					t.Fatalf("second Lock returned %v while the first holder had not unlocked", err)
				case <-time.After(300 * time.Millisecond):
				}
				if err := a.Unlock(ctx, name); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-got:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("second Lock still waiting 5s after Unlock")
				}
				if err := b.Unlock(ctx, name); err != nil {
					t.Error(err)
				}
			})

			t.Run("locks of different names do not block each other", func(t *testing.T) {
				a, b := open(t)
				if err := a.Lock(ctx, "issue_cert_a.test"); err != nil {
					t.Fatal(err)
				}
				defer a.Unlock(ctx, "issue_cert_a.test")
				lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if err := b.Lock(lctx, "issue_cert_b.test"); err != nil {
					t.Fatalf("Lock of another name: %v", err)
				}
				_ = b.Unlock(ctx, "issue_cert_b.test")
			})

			t.Run("a waiting Lock gives up when its context ends", func(t *testing.T) {
				a, b := open(t)
				if err := a.Lock(ctx, "l"); err != nil {
					t.Fatal(err)
				}
				defer a.Unlock(ctx, "l")
				lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				err := b.Lock(lctx, "l")
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Lock with an expiring context = %v, want context.DeadlineExceeded", err)
				}
				// FileStorage polls once a second.
				if d := time.Since(start); d > 1500*time.Millisecond {
					t.Errorf("Lock returned %v after its context ended", d-200*time.Millisecond)
				}
			})
		})
	}
}

func TestRedisStorageLockExpiry(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	raw := redisClient(t, srv, 0)
	logger, logs := testLogger()
	open := func(ttl time.Duration) *RedisStorage {
		return NewRedisStorage(redisClient(t, srv, 0), RedisStorageOptions{
			KeyPrefix: "signgate:", LockTTL: ttl, LockPollInterval: 20 * time.Millisecond, Logger: logger,
		})
	}

	t.Run("a crashed holder's lock expires after its TTL", func(t *testing.T) {
		// What a crashed instance leaves behind: its token, no one refreshing it.
		if err := raw.Set(ctx, "signgate:{certmagic}:lock:renew_a.test", "dead-instance", 400*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		s := open(time.Minute)
		start := time.Now()
		if err := s.Lock(ctx, "renew_a.test"); err != nil {
			t.Fatal(err)
		}
		defer s.Unlock(ctx, "renew_a.test")
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("Lock took %v, want about the 400ms left on the crashed holder's lock", d)
		}
	})

	t.Run("a live holder keeps its lock past the TTL by refreshing it", func(t *testing.T) {
		a, b := open(300*time.Millisecond), open(300*time.Millisecond)
		if err := a.Lock(ctx, "issue_cert_b.test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // more than three TTLs
		if ok, err := b.TryLock(ctx, "issue_cert_b.test"); ok || err != nil {
			t.Fatalf("TryLock by another instance = %v, %v while the holder is alive", ok, err)
		}
		if err := a.Unlock(ctx, "issue_cert_b.test"); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.TryLock(ctx, "issue_cert_b.test"); !ok || err != nil {
			t.Fatalf("TryLock after Unlock = %v, %v", ok, err)
		}
		_ = b.Unlock(ctx, "issue_cert_b.test")
	})

	t.Run("unlocking a lock that expired and was taken fails and leaves the new owner's", func(t *testing.T) {
		a, b := open(time.Minute), open(time.Minute)
		if err := a.Lock(ctx, "l"); err != nil {
			t.Fatal(err)
		}
		// Simulate a's lock running out (a long GC pause, a partition) and b
		// taking it.
		if err := raw.Del(ctx, "signgate:{certmagic}:lock:l").Err(); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.TryLock(ctx, "l"); !ok || err != nil {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := a.Unlock(ctx, "l"); err == nil || !strings.Contains(err.Error(), "the lock had expired") {
			t.Errorf("Unlock of a lost lock = %v, want an error saying it expired", err)
		}
		if n, _ := raw.Exists(ctx, "signgate:{certmagic}:lock:l").Result(); n != 1 {
			t.Error("the previous holder's Unlock deleted the new owner's lock")
		}
		if err := b.Unlock(ctx, "l"); err != nil {
			t.Error(err)
		}
	})

	t.Run("a holder that loses its lock stops refreshing and says so", func(t *testing.T) {
		a := open(150 * time.Millisecond)
		if err := a.Lock(ctx, "lost"); err != nil {
			t.Fatal(err)
		}
		if err := raw.Set(ctx, "signgate:{certmagic}:lock:lost", "someone-else", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the lost-lock error in the log", func() bool {
			return strings.Contains(logs.String(), "lost a lock before unlocking it")
		})
		if ttl := raw.PTTL(ctx, "signgate:{certmagic}:lock:lost").Val(); ttl < 50*time.Second {
			t.Errorf("the new owner's lock TTL = %v: the old holder extended it", ttl)
		}
		_ = a.Unlock(ctx, "lost")
	})

	t.Run("unlock of a lock never taken fails", func(t *testing.T) {
		if err := open(time.Minute).Unlock(ctx, "never"); err == nil {
			t.Error("Unlock(never locked) = nil")
		}
	})
}

func TestRedisStorageIsolation(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	tests := []struct {
		name               string
		dbA, dbB           int
		prefixA, prefixB   string
		wantSharedKeyspace bool
	}{
		{"same prefix, same db: one store", 0, 0, "signgate:", "signgate:", true},
		{"other key prefix, same db", 0, 0, "signgate:", "staging:", false},
		{"empty prefix against a prefix", 0, 0, "", "signgate:", false},
		{"same prefix, db 1", 0, 1, "signgate:", "signgate:", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh pair of databases per case: FLUSHDB is cheaper than a server.
			for _, db := range []int{tt.dbA, tt.dbB} {
				if err := redisClient(t, srv, db).FlushDB(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			a := newRedisStorage(t, srv, tt.dbA, tt.prefixA)
			b := newRedisStorage(t, srv, tt.dbB, tt.prefixB)
			key := "certificates/ca/a.test/a.test.crt"
			if err := a.Store(ctx, key, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			_, loadErr := b.Load(ctx, key)
			_, listErr := b.List(ctx, "certificates", true)
			seen := []bool{loadErr == nil, b.Exists(ctx, key), b.Exists(ctx, "certificates"), listErr == nil}
			for i, s := range seen {
				if s != tt.wantSharedKeyspace {
					t.Errorf("check %d (load, exists file, exists dir, list): b sees a's key = %v, want %v", i, s, tt.wantSharedKeyspace)
				}
			}

			if err := a.Lock(ctx, "issue_cert_a.test"); err != nil {
				t.Fatal(err)
			}
			defer a.Unlock(ctx, "issue_cert_a.test")
			ok, err := b.TryLock(ctx, "issue_cert_a.test")
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				defer b.Unlock(ctx, "issue_cert_a.test")
			}
			if ok == tt.wantSharedKeyspace {
				t.Errorf("b took the lock a holds: %v, want %v", ok, !tt.wantSharedKeyspace)
			}
		})
	}
}

func TestRedisStorageKeyLayout(t *testing.T) {
	// Operators look at these keys with redis-cli; the layout is documented on
	// RedisStorage and must stay in one Cluster slot.
	ctx := context.Background()
	srv := testredis.Start(t)
	raw := redisClient(t, srv, 0)
	s := newRedisStorage(t, srv, 0, "signgate:")
	if err := s.Store(ctx, "certificates/ca/a.test/a.test.crt", []byte("pem")); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "issue_cert_a.test"); err != nil {
		t.Fatal(err)
	}
	defer s.Unlock(ctx, "issue_cert_a.test")

	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{
		"signgate:{certmagic}:file:certificates/ca/a.test/a.test.crt",
		"signgate:{certmagic}:index",
		"signgate:{certmagic}:lock:issue_cert_a.test",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
	if v := raw.HGet(ctx, want[0], "value").Val(); v != "pem" {
		t.Errorf("value field = %q", v)
	}
	if ttl := raw.PTTL(ctx, want[2]).Val(); ttl <= 0 || ttl > defaultLockTTL {
		t.Errorf("lock TTL = %v, want (0, %v]", ttl, defaultLockTTL)
	}
}

func TestRedisStorageRedisDown(t *testing.T) {
	// A Redis that cannot be reached must not look like an empty storage: certmagic
	// would take "not there" as a reason to ask the CA for a new certificate on every
	// instance, and run into the CA's rate limits.
	ctx := context.Background()
	srv := testredis.Start(t)
	// No retries: go-redis's defaults (three per call, five per dial, with back-off)
	// only make this test slow.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2, MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	s := NewRedisStorage(c, RedisStorageOptions{KeyPrefix: "signgate:"})
	if err := s.Store(ctx, "certificates/ca/a.test/a.test.crt", []byte("pem")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	tests := []struct {
		name string
		call func() error
	}{
		{"load", func() error { _, err := s.Load(ctx, "certificates/ca/a.test/a.test.crt"); return err }},
		{"stat", func() error { _, err := s.Stat(ctx, "certificates/ca/a.test/a.test.crt"); return err }},
		{"list", func() error { _, err := s.List(ctx, "certificates", true); return err }},
		{"store", func() error { return s.Store(ctx, "x", []byte("y")) }},
		{"delete", func() error { return s.Delete(ctx, "certificates") }},
		{"lock", func() error { return s.Lock(ctx, "issue_cert_a.test") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s with Redis down = %v, want an error that is not fs.ErrNotExist", tt.name, err)
			}
		})
	}
	if s.Exists(ctx, "certificates") {
		t.Error("Exists with Redis down = true")
	}
}

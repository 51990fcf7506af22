package tlsedge

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// TestTopologies runs the certmagic storage's contract on one server, a Sentinel
// group and a Cluster, as two instances of the gateway share it: a file and its
// index entry change in one MULTI/EXEC, a directory is deleted in one, and the locks
// are scripts; on a Cluster each of those keeps its keys in the {certmagic} slot,
// or Redis would refuse it (CROSSSLOT).
func TestTopologies(t *testing.T) {
	ctx := context.Background()
	for _, tp := range testredis.StartTopologies(t) {
		t.Run(tp.Name, func(t *testing.T) {
			open := func(t *testing.T, prefix string) *RedisStorage {
				s, err := state.NewRedis(state.RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName, Timeout: 2 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				logger, _ := testLogger()
				return NewRedisStorage(s.Client(), RedisStorageOptions{
					KeyPrefix: prefix, LockTTL: 150 * time.Millisecond, LockPollInterval: 20 * time.Millisecond, Logger: logger,
				})
			}
			// A prefix without a tag, and one with its own (which Redis reads
			// first: everything lands in that slot instead).
			for _, prefix := range []string{"signgate:", "{fleet}:signgate:"} {
				t.Run(prefix, func(t *testing.T) {
					t.Parallel()
					a, b := open(t, prefix), open(t, prefix)
					files := map[string]string{
						"certificates/ca/a.test/a.test.crt": "cert a",
						"certificates/ca/a.test/a.test.key": "key a",
						"certificates/ca/b.test/b.test.crt": "cert b",
						"acme/ca/users/ops/ops.json":        "account",
					}
					for k, v := range files {
						if err := a.Store(ctx, k, []byte(v)); err != nil {
							t.Fatalf("Store(%s): %v", k, err)
						}
					}
					for k, v := range files {
						if got, err := b.Load(ctx, k); err != nil || string(got) != v {
							t.Errorf("Load(%s) on the other instance = %q, %v", k, got, err)
						}
					}
					keys, err := b.List(ctx, "certificates", true)
					if err != nil {
						t.Fatal(err)
					}
					want := []string{"certificates/ca", "certificates/ca/a.test", "certificates/ca/a.test/a.test.crt",
						"certificates/ca/a.test/a.test.key", "certificates/ca/b.test", "certificates/ca/b.test/b.test.crt"}
					if !slices.Equal(keys, want) {
						t.Errorf("List = %v, want %v", keys, want)
					}
					if info, err := b.Stat(ctx, "certificates/ca/a.test/a.test.crt"); err != nil || !info.IsTerminal || info.Size != 6 {
						t.Errorf("Stat = %+v, %v", info, err)
					}
					if err := a.Delete(ctx, "certificates/ca/a.test"); err != nil {
						t.Fatal(err)
					}
					if _, err := b.Load(ctx, "certificates/ca/a.test/a.test.key"); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("Load after deleting its directory: %v, want fs.ErrNotExist", err)
					}
					if !b.Exists(ctx, "certificates/ca/b.test/b.test.crt") || b.Exists(ctx, "certificates/ca/a.test") {
						t.Error("Exists disagrees with what was deleted")
					}

					// Ten holders on two instances: never two in the critical section.
					var inside, most atomic.Int32
					var wg sync.WaitGroup
					for i := range 10 {
						s := []*RedisStorage{a, b}[i%2]
						wg.Go(func() {
							if err := s.Lock(ctx, "issue_cert_a.test"); err != nil {
								t.Error(err)
								return
							}
							n := inside.Add(1)
							for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
							}
							time.Sleep(5 * time.Millisecond)
							inside.Add(-1)
							if err := s.Unlock(ctx, "issue_cert_a.test"); err != nil {
								t.Error(err)
							}
						})
					}
					wg.Wait()
					if most.Load() != 1 {
						t.Errorf("%d holders of one lock at once, want 1", most.Load())
					}
					// A held lock, refreshed past its TTL, keeps the other out.
					if ok, err := a.TryLock(ctx, "renew_b.test"); !ok || err != nil {
						t.Fatalf("TryLock = %v, %v", ok, err)
					}
					time.Sleep(500 * time.Millisecond) // more than three TTLs
					if ok, err := b.TryLock(ctx, "renew_b.test"); ok || err != nil {
						t.Fatalf("TryLock by the other instance = %v, %v while the holder refreshes it", ok, err)
					}
					if err := a.Unlock(ctx, "renew_b.test"); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

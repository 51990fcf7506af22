package daojia

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
	"github.com/signgate/signgate/state"
)

// TestTopologies runs the shared accessToken's contract on one server, a Sentinel
// group and a Cluster: two gateway instances relaying 25 calls each at once fetch
// one token between them, through the lock in Redis, and leave no lock behind. The
// token and its lock are single-key commands (GET, SET, SET NX, and a one-key
// compare-and-delete script), so no hash tag is needed for them.
func TestTopologies(t *testing.T) {
	for _, tp := range testredis.StartTopologies(t) {
		t.Run(tp.Name, func(t *testing.T) {
			env := newSandboxEnv(t, slowTokens(100*time.Millisecond))
			shared, err := state.NewRedis(state.RedisOptions{Addrs: tp.Addrs, MasterName: tp.MasterName,
				KeyPrefix: "topology:" + tp.Name + ":", Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shared.Close() })
			instance := func() *Client { return env.client(t, func(o *Options) { o.Store = shared }) }
			relays := []http.Handler{instance().Relay("/daojia/"), instance().Relay("/daojia/")}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for _, relay := range relays {
				for range 25 {
					wg.Go(func() {
						<-start
						rec := relayPost(t, relay, "/daojia/serviceUser/getAllServiceUser", `{}`)
						if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), `{"code":0,`) {
							t.Errorf("relay answered %d %s", rec.Code, rec.Body)
						}
					})
				}
			}
			close(start)
			wg.Wait()
			if n := env.sandbox.TokenFetches(); n != 1 {
				t.Fatalf("%d token fetches across two instances, want 1", n)
			}
			if _, held, err := shared.Get(context.Background(), lockKey(testKey)); held || err != nil {
				t.Fatalf("the lock outlived the fetch (%v)", err)
			}
			if _, ok, err := shared.Get(context.Background(), tokenKey(testKey)); !ok || err != nil {
				t.Fatalf("no shared token in Redis: %v", err)
			}
		})
	}
}

package daojia

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/state"
)

// slowTokens makes the token endpoint take a while, so concurrent callers really do
// overlap with the fetch instead of arriving after it.
func slowTokens(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/token/") {
				time.Sleep(d)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// concurrentTokens calls Token n times at once on each client and returns the tokens.
func concurrentTokens(t *testing.T, n int, clients ...*Client) []string {
	t.Helper()
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		mu     sync.Mutex
		tokens []string
	)
	for _, c := range clients {
		for range n {
			wg.Go(func() {
				<-start
				tok, err := c.Token(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				tokens = append(tokens, tok)
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	return tokens
}

func sameToken(t *testing.T, tokens []string, want int) {
	t.Helper()
	if len(tokens) != want {
		t.Fatalf("%d tokens, want %d", len(tokens), want)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
}

func TestConcurrentCallsOnOneInstanceFetchOnce(t *testing.T) {
	env := newSandboxEnv(t, slowTokens(50*time.Millisecond))
	c := env.client(t, nil)
	sameToken(t, concurrentTokens(t, 50, c), 50)
	if n := env.sandbox.TokenFetches(); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
}

// The shared stores the server passes in satisfy the consumer-side interface.
var (
	_ TokenStore = (*state.Memory)(nil)
	_ TokenStore = (*state.Redis)(nil)
)

// Two Clients sharing one store are two gateway instances sharing one Redis, each
// relaying 25 calls at once. It runs
// on state.Memory and on this package's memStore double; state.Redis passes the same
// contract as state.Memory in the state package's tests, on a real redis-server.
func TestConcurrentCallsOnTwoInstancesFetchOnce(t *testing.T) {
	stores := []struct {
		name  string
		store func(now func() time.Time) TokenStore
	}{
		{"state.Memory", func(now func() time.Time) TokenStore { return state.NewMemory(state.MemoryOptions{Now: now}) }},
		{"memStore test double", func(now func() time.Time) TokenStore { return newMemStore(now) }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			env := newSandboxEnv(t, slowTokens(100*time.Millisecond))
			shared := st.store(env.clock.Now)
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
				t.Fatalf("%d token fetches, want 1", n)
			}
			// The token request and the 50 calls, each checked without this package's Sign.
			if ok, bad := env.signsOK.Load(), env.signsBad.Load(); ok != 51 || bad != 0 {
				t.Fatalf("%d requests verified independently and %d did not; want 51 and 0", ok, bad)
			}
			if _, held, _ := shared.Get(context.Background(), lockKey(testKey)); held {
				t.Fatal("the lock outlived the fetch")
			}
		})
	}
}

func TestStoreDownFetchesDirectly(t *testing.T) {
	env := newSandboxEnv(t, nil)
	var logs syncBuffer
	c := env.client(t, func(o *Options) { o.Logger = jsonLogger(&logs) })
	env.store.fail.Store(true)
	resp, err := c.Call(context.Background(), "serviceUser/getAllServiceUser", []byte(`{}`))
	if err != nil || resp.Code != "0" {
		t.Fatalf("Call with the store down = %v, %v", resp, err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"shared state unavailable`) {
		t.Fatalf("no warning logged:\n%s", logs.String())
	}
}

func TestLockHolderThatDiedIsTakenOver(t *testing.T) {
	env := newSandboxEnv(t, nil)
	c := env.client(t, nil)
	ctx := context.Background()
	// An instance took the lock and died before sharing a token.
	if ok, _ := env.store.SetNX(ctx, lockKey(testKey), "dead-instance", c.lockTTL()); !ok {
		t.Fatal("could not plant the lock")
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		env.clock.Advance(c.lockTTL()) // the store lets the lock expire
	}()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := env.sandbox.TokenFetches(); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
}

func TestWaitingForTheLockEndsWithTheCallersContext(t *testing.T) {
	env := newSandboxEnv(t, nil)
	c := env.client(t, nil)
	if ok, _ := env.store.SetNX(context.Background(), lockKey(testKey), "slow-instance", time.Hour); !ok {
		t.Fatal("could not plant the lock")
	}
	// Let the flight, which outlives this caller, finish before the sandbox closes.
	t.Cleanup(func() { _ = env.store.Del(context.Background(), lockKey(testKey)) })
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := c.Token(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if got := relayError(err); got.Status != http.StatusGatewayTimeout {
		t.Fatalf("relay would answer %d, want 504", got.Status)
	}
}

func BenchmarkTokenCacheHit(b *testing.B) {
	env := newSandboxEnv(b, nil)
	c := env.client(b, func(o *Options) { o.Now = time.Now })
	ctx := context.Background()
	if _, err := c.Token(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Token(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

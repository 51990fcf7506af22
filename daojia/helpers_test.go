package daojia

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/secret"
)

// The demo partner of DESIGN.md's test vectors.
const (
	testKey    = "2801209652"
	testSecret = "testSecret123"
)

// testClock is an injected clock tests move by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// memStore is a test double of the shared store (state.Memory's methods, a map under
// a mutex, expiry by an injected clock) that can be switched to fail like a Redis
// that went away.
type memStore struct {
	now   func() time.Time
	fail  atomic.Bool
	calls atomic.Int64 // every method call, to prove a cached token needs none

	mu   sync.Mutex
	data map[string]memEntry
}

type memEntry struct {
	value   string
	expires time.Time // zero: never
}

var _ TokenStore = (*memStore)(nil)

var errStoreDown = errors.New("store: connection refused")

func newMemStore(now func() time.Time) *memStore {
	if now == nil {
		now = time.Now
	}
	return &memStore{now: now, data: make(map[string]memEntry)}
}

// get returns key's live entry; s.mu is held.
func (s *memStore) get(key string) (memEntry, bool) {
	e, ok := s.data[key]
	if ok && !e.expires.IsZero() && !s.now().Before(e.expires) {
		delete(s.data, key)
		return memEntry{}, false
	}
	return e, ok
}

func (s *memStore) entry(value string, ttl time.Duration) memEntry {
	e := memEntry{value: value}
	if ttl > 0 {
		e.expires = s.now().Add(ttl)
	}
	return e
}

func (s *memStore) Get(_ context.Context, key string) (string, bool, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return "", false, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key)
	return e.value, ok, nil
}

func (s *memStore) Set(_ context.Context, key, value string, ttl time.Duration) error {
	s.calls.Add(1)
	if s.fail.Load() {
		return errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = s.entry(value, ttl)
	return nil
}

func (s *memStore) Del(_ context.Context, key string) error {
	s.calls.Add(1)
	if s.fail.Load() {
		return errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, key)
	return nil
}

func (s *memStore) SetNX(_ context.Context, key, value string, ttl time.Duration) (bool, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return false, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.get(key); ok {
		return false, nil
	}
	s.data[key] = s.entry(value, ttl)
	return true, nil
}

func (s *memStore) CompareAndDelete(_ context.Context, key, value string) (bool, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return false, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.get(key); ok && e.value == value {
		delete(s.data, key)
		return true, nil
	}
	return false, nil
}

// sandboxEnv is a Sandbox behind a real HTTP server, and what a client needs to call it.
type sandboxEnv struct {
	sandbox *Sandbox
	server  *httptest.Server
	clock   *testClock
	store   *memStore
	// Every request's sign is also checked by independentSign, not by this package's
	// Sign: the counts of those that verified and of those that did not.
	signsOK, signsBad atomic.Int64
}

// independentSign recomputes a JSON body's 58到家 sign from DESIGN.md alone: every
// top-level parameter but sign, sorted by name, a string as its content and anything
// else (daojiaJson) as its bytes, between two copies of the secret.
func independentSign(body []byte, secret string) (sign, want string, err error) {
	var params map[string]json.RawMessage
	if err := json.Unmarshal(body, &params); err != nil {
		return "", "", err
	}
	names := make([]string, 0, len(params))
	for name := range params {
		if name != "sign" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	text := secret
	for _, name := range names {
		value := string(params[name])
		var s string
		if json.Unmarshal(params[name], &s) == nil {
			value = s
		}
		text += name + value
	}
	text += secret
	sum := md5.Sum([]byte(text))
	_ = json.Unmarshal(params["sign"], &sign)
	return sign, strings.ToUpper(hex.EncodeToString(sum[:])), nil
}

// newSandboxEnv starts a Sandbox for the demo partner on the wall clock's present
// (the sandbox checks timestamps against the same injected clock the clients use).
// wrap, if not nil, stands between the server and the sandbox.
func newSandboxEnv(t testing.TB, wrap func(http.Handler) http.Handler) *sandboxEnv {
	t.Helper()
	clock := newTestClock(time.Now())
	sb := NewSandbox(SandboxOptions{ServiceKey: testKey, ServiceSecret: testSecret, Now: clock.Now})
	env := &sandboxEnv{sandbox: sb, clock: clock, store: newMemStore(clock.Now)}
	var h http.Handler = sb
	if wrap != nil {
		h = wrap(sb)
	}
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if sign, want, err := independentSign(body, testSecret); err == nil && sign == want {
			env.signsOK.Add(1)
		} else {
			env.signsBad.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	})
	env.server = httptest.NewServer(h)
	t.Cleanup(env.server.Close)
	return env
}

// options are a client's options for env; change fields before NewClient.
func (env *sandboxEnv) options() Options {
	return Options{
		BaseURL:       env.server.URL,
		ServiceKey:    testKey,
		ServiceSecret: secret.Secret(testSecret),
		Timeout:       5 * time.Second,
		Store:         env.store,
		Now:           env.clock.Now,
	}
}

func (env *sandboxEnv) client(t testing.TB, edit func(*Options)) *Client {
	t.Helper()
	o := env.options()
	if edit != nil {
		edit(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// relayPost sends body to h as a caller of the relay would.
func relayPost(t testing.TB, h http.Handler, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// syncBuffer is a log sink safe for the concurrent writes of a handler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

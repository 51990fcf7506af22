package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// keySet is the issuer's JWKS, held by jwkset and read through keyfunc.
//
// keyfunc.NewDefaultOverrideCtx would build the same chain, but it gives no way to
// pass the per-URL Storage or keyfunc's use whitelist, so the three parts are built
// here with the same options: jwkset.NewStorageFromHTTP (first fetch, periodic
// refresh, HTTP timeout), jwkset.NewHTTPClient (refresh on unknown kid behind a rate
// limiter) and keyfunc.New (kid lookup, JWK alg and use checks).
type keySet struct {
	keyfunc keyfunc.Keyfunc
	ctx     context.Context // ends the refresh goroutine; canceled by stop
	stop    context.CancelFunc
	url     string // redacted, for messages
	log     *slog.Logger

	mu      sync.Mutex
	loaded  bool  // a JWKS has been fetched since the start
	failing bool  // the last fetch failed
	lastErr error // why the last fetch failed
}

// noKID is the kid asked for to make jwkset fetch a JWKS it does not hold yet: it
// fetches only on a kid it cannot find, and an empty set finds none.
const noKID = ""

func newKeySet(o Options) (*keySet, error) {
	u, err := url.Parse(o.JWKSURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is left out: it may carry credentials.
		return nil, errors.New("jwtauth: JWKSURL: want an http or https URL")
	}
	timeout := orDefault(o.Timeout, DefaultTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	s := &keySet{ctx: ctx, stop: cancel, url: u.Redacted(), log: o.Logger}

	remote, err := jwkset.NewStorageFromHTTP(o.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    jwksClient(o.HTTPClient, timeout),
		Ctx:                       ctx,
		HTTPTimeout:               timeout,
		NoErrorReturnFirstHTTPReq: true, // down at start: Verify says ErrUnavailable and asks again
		RefreshErrorHandler:       s.fetchFailed,
		RefreshInterval:           orDefault(o.RefreshInterval, DefaultRefreshInterval),
		Storage:                   &boundedStore{MemoryJWKSet: jwkset.NewMemoryStorage(), replaced: s.fetched},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwtauth: JWKS storage for %s: %w", s.url, jwkset.ErrNewClient)
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{o.JWKSURL: remote},
		// A token with an unknown kid fetches the JWKS if the limiter has a token
		// now, or will have one within the wait; otherwise it is refused at once.
		// The same deadline bounds that fetch, so it is the fetch timeout.
		RateLimitWaitMax:  timeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(orDefault(o.UnknownKIDInterval, DefaultUnknownKIDInterval)), 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwtauth: JWKS client for %s: %w", s.url, jwkset.ErrNewClient)
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:          ctx,
		Storage:      storage,
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}, // never a key published for encryption
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwtauth: keyfunc for %s: %w", s.url, err)
	}
	s.keyfunc = kf
	return s, nil
}

// jwksClient returns base (or a new client) with its responses capped at
// MaxJWKSBytes and its requests at timeout. base itself is not changed.
func jwksClient(base *http.Client, timeout time.Duration) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = limitBody{base: rt, max: MaxJWKSBytes}
	if c.Timeout <= 0 || c.Timeout > timeout {
		c.Timeout = timeout
	}
	return c
}

// key returns the key or keys t is verified with.
func (s *keySet) key(ctx context.Context, t *jwt.Token) (any, error) {
	if s.ctx.Err() != nil {
		// Closed: the held keys still serve (a found kid never looks at ctx), but an
		// unknown kid must not fetch any more; the canceled ctx stops it at the limiter.
		ctx = s.ctx
	}
	if _, ok := t.Header["kid"]; !ok {
		return s.keysWithoutKID(ctx, t)
	}
	key, err := s.keyfunc.KeyfuncCtx(ctx)(t)
	if err != nil {
		// Not found (after the fetch the limiter allowed, if any), a JWK whose alg
		// or use does not fit, or a kid that is not a string.
		if !s.isLoaded() {
			return nil, s.unavailable()
		}
		return nil, errUnknownKey
	}
	if !keyFits(t.Method.Alg(), key) {
		return nil, errUnknownKey
	}
	return key, nil
}

// keysWithoutKID returns the keys that fit t's alg, when there are few enough to try.
func (s *keySet) keysWithoutKID(ctx context.Context, t *jwt.Token) (any, error) {
	if !s.isLoaded() {
		_, _ = s.keyfunc.Storage().KeyRead(ctx, noKID) // fetches, if the limiter allows
		if !s.isLoaded() {
			return nil, s.unavailable()
		}
	}
	got, err := s.keyfunc.KeyfuncCtx(ctx)(t)
	if err != nil {
		return nil, errUnknownKey
	}
	set, ok := got.(jwt.VerificationKeySet)
	if !ok {
		return nil, errUnknownKey
	}
	alg := t.Method.Alg()
	fit := set.Keys[:0]
	for _, k := range set.Keys {
		if keyFits(alg, k) {
			fit = append(fit, k)
		}
	}
	switch {
	case len(fit) == 0:
		return nil, errUnknownKey
	case len(fit) > maxKeysWithoutKID:
		return nil, errKIDRequired
	}
	return jwt.VerificationKeySet{Keys: fit}, nil
}

// fetched records a JWKS of n usable keys taken into the store.
func (s *keySet) fetched(n int) {
	s.mu.Lock()
	first, recovered := !s.loaded, s.failing
	s.loaded, s.failing, s.lastErr = true, false, nil
	s.mu.Unlock()
	if first || recovered {
		s.log.Info("jwt JWKS fetched", "url", s.url, "keys", n)
	}
}

// fetchFailed is jwkset's RefreshErrorHandler: the keys held stay in use.
func (s *keySet) fetchFailed(_ context.Context, err error) {
	s.mu.Lock()
	s.failing, s.lastErr = true, err
	loaded := s.loaded
	s.mu.Unlock()
	if errors.Is(err, context.Canceled) && s.ctx.Err() != nil {
		return // closed
	}
	s.log.Warn("jwt JWKS fetch failed", "url", s.url, "error", err, "keys_held", loaded)
}

func (s *keySet) isLoaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded
}

// unavailable is the ErrUnavailable for a Verifier that holds no JWKS yet.
func (s *keySet) unavailable() error {
	s.mu.Lock()
	err := s.lastErr
	s.mu.Unlock()
	if err == nil {
		return fmt.Errorf("%w: no JWKS fetched yet from %s", ErrUnavailable, s.url)
	}
	return fmt.Errorf("%w: no JWKS fetched yet from %s: %v", ErrUnavailable, s.url, err)
}

// boundedStore is the store jwkset replaces the JWKS in after each fetch. It refuses
// a JWKS with no usable key or more than MaxJWKSKeys, so such a fetch fails and the
// keys held stay, and it tells the keySet about each JWKS it takes.
type boundedStore struct {
	*jwkset.MemoryJWKSet
	replaced func(n int)
}

var _ jwkset.Storage = (*boundedStore)(nil)

// KeyReplaceAll takes given as the whole JWKS, if its size is within bounds.
func (b *boundedStore) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	switch {
	case len(given) == 0:
		return errors.New("jwtauth: JWKS holds no usable key")
	case len(given) > MaxJWKSKeys:
		return fmt.Errorf("jwtauth: JWKS holds %d usable keys, more than %d", len(given), MaxJWKSKeys)
	}
	if err := b.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	b.replaced(len(given))
	return nil
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

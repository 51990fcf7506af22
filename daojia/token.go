package daojia

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TokenStore is the shared state the token cache needs: state.Memory and state.Redis
// satisfy it. Keys are given without the store's own prefix.
type TokenStore interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	Del(ctx context.Context, key string) error
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	CompareAndDelete(ctx context.Context, key, value string) (bool, error)
}

// tokenKey holds the shared token of one 58到家 account (serviceKey) as
// "token|expiresAtMs|refreshAtMs", so an instance that reads it knows how long to
// keep it without asking the store for a TTL. Per account, so two gateways relaying
// for different accounts through one Redis never hand each other's token out.
func tokenKey(serviceKey string) string { return "daojia:token:" + serviceKey }

// lockKey is held by the one instance fetching an account's token; its value is
// that instance's random owner id, so only the holder can release it.
func lockKey(serviceKey string) string { return "daojia:token:" + serviceKey + ":lock" }

const (
	// pollEvery paces instances waiting for the lock holder to publish a token.
	pollEvery = 50 * time.Millisecond
	// retryRefreshAfter spaces refresh attempts while 58到家 refuses them and the
	// current token is still good.
	retryRefreshAfter = 30 * time.Second
)

// The range a token's lifetime is kept in, whatever 58到家's expiresIn says (zero,
// negative, a second, a year, more than time.Duration holds) and whatever
// Options.DefaultTTL is.
const (
	// MinTokenLifetime is the shortest a token is kept: a lifetime stated shorter
	// would have the token fetched again on every call. A token 58到家 stops
	// accepting sooner is refused, dropped and fetched again on its first refusal.
	MinTokenLifetime = time.Minute
	// MaxTokenLifetime is the longest a token is kept, however long 58到家 says it
	// lives: a nonsense value must not keep a token for ever.
	MaxTokenLifetime = 24 * time.Hour
)

// cachedToken is one accessToken and when to stop using it.
type cachedToken struct {
	token     string
	stored    string    // the value held under tokenKey, for compare-and-delete
	expiresAt time.Time // when 58到家 stops accepting it
	refreshAt time.Time // when a new one is fetched: RefreshBefore earlier
}

// TokenError is 58到家's token endpoint answering without a token. Message is
// 58到家's own message, shortened; it never holds the secret.
type TokenError struct {
	Status  int    // HTTP status of the answer
	Code    string // the answer's code, "" if absent
	Message string
}

func (e *TokenError) Error() string {
	s := "58到家 did not issue an accessToken: HTTP " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += ", code " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Token returns the accessToken to call 58到家 with. A token this instance holds is
// returned without touching the shared store; otherwise one caller per instance, and
// one instance at a time through the store's lock, fetches it.
func (c *Client) Token(ctx context.Context) (string, error) {
	t, err := c.token(ctx)
	if err != nil {
		return "", err
	}
	return t.token, nil
}

func (c *Client) token(ctx context.Context) (*cachedToken, error) {
	if t := c.local.Load(); t != nil && c.now().Before(t.refreshAt) {
		return t, nil
	}
	ch := c.flight.DoChan("token", func() (any, error) {
		// The flight serves every caller waiting on it, so the first caller leaving
		// must not cancel it; it has its own bound instead (see flightBudget).
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.flightBudget())
		defer cancel()
		return c.loadToken(fctx)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the 58到家 accessToken: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*cachedToken), nil
	}
}

// lockTTL bounds how long a holder that died keeps the others waiting: one fetch, and
// slack for the store round trips around it.
func (c *Client) lockTTL() time.Duration { return c.timeout + 5*time.Second }

// flightBudget is how long one load may take: waiting out a lock whose holder died,
// then fetching ourselves.
func (c *Client) flightBudget() time.Duration { return c.lockTTL() + c.timeout }

// loadToken finds or fetches a token when the local copy is missing or due for
// refresh. It runs inside the singleflight, so at most once at a time per instance.
func (c *Client) loadToken(ctx context.Context) (*cachedToken, error) {
	// A flight that ended just before this one began may have left a fresh token.
	if t := c.local.Load(); t != nil && c.now().Before(t.refreshAt) {
		return t, nil
	}
	t, err := c.findOrFetch(ctx)
	if err == nil {
		c.local.Store(t)
		c.held()
		return t, nil
	}
	// Refreshing starts RefreshBefore ahead of expiry precisely so that a failed
	// refresh can fall back on the token still in hand. The next attempt waits a
	// little, so that calls during an outage do not each wait for a failing fetch.
	now := c.now()
	if old := c.local.Load(); old != nil && now.Before(old.expiresAt) {
		c.log.LogAttrs(ctx, slog.LevelWarn, "could not refresh the 58到家 accessToken; using the current one until it expires",
			slog.Any("error", err), slog.Duration("expires_in", old.expiresAt.Sub(now)))
		kept := *old
		kept.refreshAt = now.Add(retryRefreshAfter)
		if kept.refreshAt.After(old.expiresAt) {
			kept.refreshAt = old.expiresAt
		}
		c.local.Store(&kept)
		return &kept, nil
	}
	return nil, err
}

// findOrFetch takes the token another instance shared, or fetches one under the
// store's lock, or, when the store is down, fetches one for this instance alone:
// tokens can always be fetched again, so unlike nonces they need not fail closed.
func (c *Client) findOrFetch(ctx context.Context) (*cachedToken, error) {
	if c.store == nil {
		return c.fetch(ctx)
	}
	t, err := c.fromStore(ctx)
	if err != nil {
		return c.fetchWithoutStore(ctx, err)
	}
	if t != nil {
		return t, nil
	}
	owner := rand.Text()
	for {
		locked, err := c.store.SetNX(ctx, lockKey(c.serviceKey), owner, c.lockTTL())
		if err != nil {
			return c.fetchWithoutStore(ctx, err)
		}
		if locked {
			return c.fetchLocked(ctx, owner)
		}
		// Another instance is fetching: wait for it to share its token. Trying the
		// lock again on every round lets us take over if that instance died.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another instance to fetch the 58到家 accessToken: %w", ctx.Err())
		case <-time.After(pollEvery): // since Go 1.23 an unfired timer is collected
		}
		if t, err = c.fromStore(ctx); err != nil {
			return c.fetchWithoutStore(ctx, err)
		}
		if t != nil {
			return t, nil
		}
	}
}

// fetchLocked fetches and shares a token while holding the lock.
func (c *Client) fetchLocked(ctx context.Context, owner string) (*cachedToken, error) {
	defer func() {
		// Released even when ctx is spent, so the others need not wait out the TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		if _, err := c.store.CompareAndDelete(rctx, lockKey(c.serviceKey), owner); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "could not release the 58到家 token lock; it expires by itself", slog.Any("error", err))
		}
	}()
	// The holder before us may have shared its token between our read and our lock.
	if t, err := c.fromStore(ctx); err != nil || t != nil {
		if err != nil {
			return c.fetchWithoutStore(ctx, err)
		}
		return t, nil
	}
	t, err := c.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if ttl := t.refreshAt.Sub(c.now()); ttl >= time.Second {
		if err := c.store.Set(ctx, tokenKey(c.serviceKey), t.stored, ttl); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "could not share the 58到家 accessToken; other instances will fetch their own", slog.Any("error", err))
		}
	}
	return t, nil
}

func (c *Client) fetchWithoutStore(ctx context.Context, storeErr error) (*cachedToken, error) {
	c.log.LogAttrs(ctx, slog.LevelWarn, "shared state unavailable; fetching the 58到家 accessToken for this instance only", slog.Any("error", storeErr))
	return c.fetch(ctx)
}

// fromStore returns the shared token, or nil when there is none worth using.
func (c *Client) fromStore(ctx context.Context) (*cachedToken, error) {
	v, ok, err := c.store.Get(ctx, tokenKey(c.serviceKey))
	if err != nil || !ok {
		return nil, err
	}
	t, ok := decodeStored(v)
	if !ok {
		// Not ours to read (an older format, or damaged): fetch over it.
		c.log.LogAttrs(ctx, slog.LevelWarn, "the shared 58到家 accessToken is unreadable; fetching a new one")
		return nil, nil
	}
	if !c.now().Before(t.refreshAt) {
		return nil, nil // due for refresh by our clock, whatever the store's TTL says
	}
	return t, nil
}

// dropToken forgets t after 58到家 refused it, here and in the store. Both are
// compare-and-swap so that a newer token, fetched meanwhile by another caller or
// instance, is kept.
func (c *Client) dropToken(ctx context.Context, t *cachedToken) {
	if c.local.CompareAndSwap(t, nil) {
		c.held()
	}
	if c.store == nil {
		return
	}
	if _, err := c.store.CompareAndDelete(ctx, tokenKey(c.serviceKey), t.stored); err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "could not drop the refused 58到家 accessToken from shared state", slog.Any("error", err))
	}
}

// fetch asks 58到家's token endpoint for a new token.
func (c *Client) fetch(ctx context.Context) (*cachedToken, error) {
	start := c.now() // before the request: the lifetime counts from 58到家's issue time
	resp, err := c.post(ctx, c.tokenURL, c.tokenBody())
	if err != nil {
		c.fetched(false)
		return nil, fmt.Errorf("requesting a 58到家 accessToken: %w", err)
	}
	token, life, err := c.readTokenAnswer(resp)
	if err != nil {
		c.fetched(false)
		return nil, err
	}
	c.fetched(true)
	// A token that lives less than 2×RefreshBefore is still used for half its life.
	margin := min(c.refresh, life/2)
	t := &cachedToken{token: token, expiresAt: start.Add(life), refreshAt: start.Add(life - margin)}
	t.stored = encodeStored(t)
	c.log.LogAttrs(ctx, slog.LevelInfo, "fetched a 58到家 accessToken", slog.Duration("expires_in", life))
	return t, nil
}

// held tells Options.OnTokenExpiry when the token held now expires (zero: none).
// It reads the token under heldMu rather than taking it as an argument, so that a
// drop and a fetch racing each other cannot leave the older news reported last.
func (c *Client) held() {
	if c.onExpiry == nil {
		return
	}
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	var expiresAt time.Time
	if t := c.local.Load(); t != nil {
		expiresAt = t.expiresAt
	}
	c.onExpiry(expiresAt)
}

func (c *Client) fetched(ok bool) {
	if c.onFetch != nil {
		c.onFetch(ok)
	}
}

// readTokenAnswer reads {"code":0,"message":"…","data":{"accessToken":"…","expiresIn":7200}}.
func (c *Client) readTokenAnswer(resp *Response) (string, time.Duration, error) {
	var a struct {
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Data    struct {
			AccessToken string          `json:"accessToken"`
			ExpiresIn   json.RawMessage `json:"expiresIn"`
		} `json:"data"`
	}
	jsonErr := json.Unmarshal(resp.Body, &a)
	refused := func(msg string) error {
		if msg == "" {
			msg = c.cleanMessage(scalarText(a.Message))
		}
		return &TokenError{Status: resp.Status, Code: resp.Code, Message: msg}
	}
	switch {
	case resp.Status < 200 || resp.Status > 299:
		return "", 0, refused("")
	case jsonErr != nil:
		return "", 0, refused("the answer is not the expected JSON")
	case resp.Code != "" && resp.Code != "0":
		return "", 0, refused("")
	case len(a.Code) > 0 && resp.Code == "": // a code that is neither number nor string
		return "", 0, refused("the answer's code is not a number")
	case a.Data.AccessToken == "":
		return "", 0, refused("the answer has no accessToken")
	case len(a.Data.AccessToken) > 1024:
		return "", 0, refused("the answer's accessToken is implausibly long")
	}
	return a.Data.AccessToken, c.tokenLifetime(a.Data.ExpiresIn), nil
}

// tokenLifetime reads expiresIn, seconds as a JSON number or a string holding one,
// into [MinTokenLifetime, MaxTokenLifetime]. A number too large for a float64 is as
// good as the most; anything that is no number (absent, null, "soon", NaN, an object)
// takes the default TTL. The bounds are checked on the float, before it becomes a
// Duration: a conversion out of range would wrap to a lifetime in the past and have
// the token fetched again on every call.
func (c *Client) tokenLifetime(raw json.RawMessage) time.Duration {
	s := strings.TrimSpace(scalarText(raw))
	if s == "" {
		return c.defaultTTL
	}
	secs, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange), math.IsNaN(secs):
		return c.defaultTTL
	case secs >= MaxTokenLifetime.Seconds():
		return MaxTokenLifetime
	case secs <= MinTokenLifetime.Seconds():
		return MinTokenLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

// cleanMessage shortens 58到家's message for errors and logs and makes sure it cannot
// carry the secret, should the platform ever echo what it was sent.
func (c *Client) cleanMessage(m string) string {
	const limit = 200
	if len(m) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(m[cut]) {
			cut--
		}
		m = m[:cut] + "…"
	}
	if s := c.secret.Reveal(); s != "" && strings.Contains(m, s) {
		m = strings.ReplaceAll(m, s, "[redacted]")
	}
	return m
}

func encodeStored(t *cachedToken) string {
	return t.token + "|" + strconv.FormatInt(t.expiresAt.UnixMilli(), 10) + "|" + strconv.FormatInt(t.refreshAt.UnixMilli(), 10)
}

// decodeStored reads encodeStored's value. It splits from the right, so a token that
// contains "|" still reads back whole.
func decodeStored(v string) (*cachedToken, bool) {
	rest, refresh, ok1 := cutLast(v, "|")
	token, expires, ok2 := cutLast(rest, "|")
	if !ok1 || !ok2 || token == "" {
		return nil, false
	}
	exp, err1 := strconv.ParseInt(expires, 10, 64)
	ref, err2 := strconv.ParseInt(refresh, 10, 64)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	return &cachedToken{token: token, stored: v, expiresAt: time.UnixMilli(exp), refreshAt: time.UnixMilli(ref)}, true
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

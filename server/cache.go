package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/cache"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/state"
)

// The response cache (DESIGN.md "Response cache") as the routes use it.
//
// Placement. A cached route's chain is
//
//	keepConditions, limitBefore, authenticate, authorize, limitAfter, maskResponses, cacheResponses, pool
//
// so a cached answer reaches only a caller who passed every check the upstream's
// answer would have needed, and the cache sits inside the masking layer:
//   - on a miss by a masked caller, the pool's mask hook (maskProxied) has masked the
//     answer before the cache sees a byte of it, so what is stored for the masked
//     view is exactly what a masked caller receives, and the full answer never
//     enters a masked entry;
//   - on a hit by an unmask client, byRole still writes its audit line after the
//     cache answers, so an unmasked answer served from the cache is audited as one
//     served from the upstream is.
//
// The view (masked or full) is part of the key, so the two kinds of callers never
// share an entry.
//
// keepConditions, first in the chain, notes a request's conditional headers before
// maskProxied takes them out of a masked caller's request (it decides them itself,
// on the masked bytes); the cache needs them to answer a masked caller's
// If-None-Match from a stored entry. It only reads: a request goes on unchanged.

// cacheName is the cache's name in Cache-Status (RFC 9211).
const cacheName = "signgate"

// Results counted in signgate_cache_requests_total and written in the access line.
const (
	cacheHit    = "hit"
	cacheMiss   = "miss"
	cacheStale  = "stale"
	cacheBypass = "bypass"
)

// cacheTimeout bounds each Redis call a request makes for the cache: a Redis that
// takes longer is skipped for the upstream, not waited for.
const cacheTimeout = 100 * time.Millisecond

// newResponseCache builds the cache every gateway of this process shares, with
// Redis as its shared tier when the state store is Redis. It outlives reloads (as
// the rate limiter's buckets do); its settings are read once, at start.
func newResponseCache(cfg *config.Config, store sharedState, logger *slog.Logger) *cache.Cache {
	o := cache.Options{
		MemoryBytes:   cfg.Cache.MemoryBytes,
		MaxEntryBytes: cfg.Cache.MaxEntryBytes,
		LockTimeout:   cfg.Cache.LockTimeout,
		Logger:        logger,
		Now:           time.Now,
	}
	if r, ok := store.(*state.Redis); ok {
		o.Redis = r.Client()
		o.KeyPrefix = cfg.Redis.KeyPrefix
		o.Timeout = min(cfg.Redis.Timeout, cacheTimeout)
	}
	return cache.New(o)
}

// cachedRoute is one route's cache: its part of every key, its policy, and its
// counters.
type cachedRoute struct {
	cache    *cache.Cache
	name     string
	spec     cache.KeySpec
	policy   cache.Policy
	scopeAll bool
	now      func() time.Time
	logger   *slog.Logger
	counts   cacheCounters
}

// newCachedRoute prepares rt's cache under the masking rules mc.
func newCachedRoute(c *cache.Cache, rt config.Route, mc config.Masking, m *metrics, now func() time.Time, logger *slog.Logger) *cachedRoute {
	rcfg := rt.Cache
	return &cachedRoute{
		cache: c,
		name:  rt.Name,
		spec: cache.KeySpec{
			Route: rt.Name,
			Salt:  routeSalt(rt, mc),
			// Accept is always in the key: frameworks that pick the format from it
			// (Django REST Framework, older Rails) often send no Vary: Accept, and
			// a CSV answer one caller asked for would be served to JSON callers.
			Vary: cache.CanonicalVary(append([]string{"Accept"}, rcfg.Vary...)),
		},
		policy: cache.Policy{
			TTL:                  rcfg.TTL,
			StaleWhileRevalidate: rcfg.StaleWhileRevalidate,
			StaleIfError:         rcfg.StaleIfError,
		},
		scopeAll: rcfg.Scope == "all",
		now:      now,
		logger:   logger,
		counts:   m.cacheCounters(rt.Name),
	}
}

// routeSalt fingerprints what shapes a route's answers: entries stored under other
// settings (before a reload, or by a fleet member not yet rolled out) are not read.
func routeSalt(rt config.Route, mc config.Masking) string {
	rc := rt.Cache
	sum := sha256.Sum256(fmt.Appendf(nil, "%q %q %t %t|%v %v %v %q %q|%q %q %q %d",
		rt.Match, rt.Upstream, rt.Public, rt.MaskRequest,
		rc.TTL, rc.StaleWhileRevalidate, rc.StaleIfError, rc.Scope, rc.Vary,
		mc.Fields, mc.Detect, mc.Names, mc.MaxBodyBytes))
	return hex.EncodeToString(sum[:8])
}

// condKey carries the conditional headers keepConditions noted.
type condKey struct{}

// keepConditions notes r's conditional headers on its context (see the placement
// note above). A request without any costs a few map lookups.
func keepConditions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasConditions(r.Header) {
			r = r.WithContext(context.WithValue(r.Context(), condKey{}, conditionHeader(r.Header)))
		}
		next.ServeHTTP(w, r)
	})
}

// conditionHeader copies the conditional headers of h.
func conditionHeader(h http.Header) http.Header {
	c := make(http.Header, 2)
	for _, k := range conditionalHeaders {
		if v, ok := h[k]; ok {
			c[k] = v
		}
	}
	return c
}

// conditionsOf returns the conditional headers the caller sent: noted by
// keepConditions for a masked caller (maskProxied has taken them out of r by now),
// read from r for the others. nil when there are none.
func conditionsOf(r *http.Request, masked bool) http.Header {
	if masked {
		h, _ := r.Context().Value(condKey{}).(http.Header)
		return h
	}
	if hasConditions(r.Header) {
		return conditionHeader(r.Header)
	}
	return nil
}

// maskedView reports whether r's caller sees masked answers, as byRole decides it.
func maskedView(r *http.Request) bool {
	c := clientFrom(r.Context())
	return c != nil && c.UnmaskRole == "" && c.Mask
}

// principal is who a client-scoped answer is for: the client, and the owner when
// the request names one (a session or JWT). The upstream receives the owner
// (X-WX-OpenID) and may answer each owner differently, so two owners using one
// mini-program never share an entry, on user: required routes and any other; only
// scope: all shares one answer between them.
func principal(r *http.Request) string {
	c := clientFrom(r.Context())
	if c == nil {
		return ""
	}
	if user := reqinfo.Of(r).User; user != "" {
		// "\x00" cannot appear in a client id or an openid.
		return c.ID + "\x00" + user
	}
	return c.ID
}

// cacheResponses serves the route's GETs (and HEADs) from the cache, and stores the
// answers of its misses.
func cacheResponses(rc *cachedRoute) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc.serve(next, w, r)
		})
	}
}

func (rc *cachedRoute) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	method, path := decided(r)
	if method != http.MethodGet {
		rc.forward(next, w, r, cacheBypass, cacheName+"; fwd=method", nil)
		return
	}
	if r.Header["Authorization"] != nil && reqinfo.Of(r).User == "" {
		// Credentials the gateway did not turn into an owner reach the upstream,
		// which may answer by them: such an answer is no one else's (RFC 9111
		// 3.5), and the key has no owner to keep it apart.
		rc.forward(next, w, r, cacheBypass, cacheName+"; fwd=bypass; detail=authorization", nil)
		return
	}
	masked := maskedView(r)
	cond := conditionsOf(r, masked)
	view, encoding := "full", ""
	if masked {
		view = "masked"
	}
	// maskProxied has made a masked caller's Accept-Encoding "gzip" or "identity";
	// a fill asks the upstream for exactly the coding the key names.
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		encoding = "gzip"
	}
	req := cache.Request{
		Method:   method,
		Path:     path,
		Slash:    len(r.URL.Path) > 1 && strings.HasSuffix(r.URL.Path, "/"),
		Host:     lowerASCII(r.Host),
		RawQuery: r.URL.RawQuery,
		Header:   r.Header,
		Encoding: encoding,
		View:     view,
	}
	if !rc.scopeAll {
		req.Principal = principal(r)
	}
	key, err := rc.spec.Key(&req)
	if err != nil {
		rc.forward(next, w, r, cacheBypass, cacheName+"; fwd=bypass; detail=query", nil)
		return
	}
	// A masked caller's conditions are decided on the answer by the mask hook, so
	// its miss may come back a 304 or a 206, which cannot be stored: it only reads.
	canFill := !masked || cond == nil
	res := rc.cache.Get(r.Context(), key, cache.Meta{Route: rc.name, Path: path}, rc.policy, canFill)
	now := rc.now()
	switch res.Outcome {
	case cache.Hit:
		age, status := res.Entry.HitHeaders(now, cacheName)
		rc.answer(w, r, res.Entry, age, status, cond, masked, cacheHit)
	case cache.Collapsed:
		rc.answer(w, r, res.Entry, ageOf(res.Entry, now), []string{cacheName + "; fwd=miss; collapsed; ttl=" + ttlOf(res.Entry, now)}, cond, masked, cacheHit)
	case cache.Stale:
		rc.answer(w, r, res.Entry, ageOf(res.Entry, now), []string{cacheName + "; fwd=stale; ttl=" + ttlOf(res.Entry, now) + "; detail=" + res.Why}, cond, masked, cacheStale)
		if res.Fill != nil {
			rc.refresh(next, r, masked, res.Fill)
		}
	case cache.Miss:
		rc.fill(next, w, r, masked, res.Fill, res.Entry)
	default:
		result, status := cacheMiss, cacheName+"; fwd=miss; detail="+res.Why
		if res.Why == "redis-unavailable" {
			result, status = cacheBypass, cacheName+"; fwd=bypass; detail="+res.Why
		}
		rc.forward(next, w, r, result, status, res.Entry)
	}
}

func ageOf(e *cache.Entry, now time.Time) []string {
	return []string{strconv.FormatInt(e.Age(now), 10)}
}

// ttlOf is an entry's remaining freshness in seconds, negative once stale, as
// Cache-Status's ttl parameter has it.
func ttlOf(e *cache.Entry, now time.Time) string {
	d := e.Fresh.Sub(now)
	if d < 0 {
		// Rounded down, so an entry a moment past its freshness says -1, not 0.
		d -= time.Second - 1
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

// answer writes entry e to the caller. Conditional headers (cond) are decided on the
// entry's bytes, with the code that decides them on a masked caller's miss
// (answerConditional), so a 304 from the cache and one from the upstream agree.
func (rc *cachedRoute) answer(w http.ResponseWriter, r *http.Request, e *cache.Entry, age, status []string, cond http.Header, masked bool, result string) {
	rc.counts.count(result)
	noteCache(w, result)
	h := w.Header()
	if cond != nil && e.Status == http.StatusOK {
		resp := &http.Response{StatusCode: e.Status, Header: e.Header.Clone(), Request: r}
		if masked && resp.Header.Get("ETag") == "" {
			// As maskResponse does for a conditional masked request: the validator
			// of the masked bytes.
			resp.Header.Set("ETag", maskedETag(e.Body))
		}
		body := answerConditional(resp, &conditions{header: cond}, e.Body)
		for k, vs := range resp.Header {
			addShared(h, k, vs)
		}
		h["Age"] = age
		addShared(h, "Cache-Status", status)
		w.WriteHeader(resp.StatusCode)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
		return
	}
	for k, vs := range e.Header {
		addShared(h, k, vs)
	}
	h["Age"] = age
	addShared(h, "Cache-Status", status)
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead && len(e.Body) > 0 {
		_, _ = w.Write(e.Body)
	}
}

// addShared adds the values vs of an entry to h[k]. vs is shared by every answer
// the entry serves and is clipped (see cache.Entry), so appending to it copies; a
// field h does not have yet takes vs itself, which allocates nothing.
func addShared(h http.Header, k string, vs []string) {
	if old, ok := h[k]; ok {
		h[k] = append(old[:len(old):len(old)], vs...)
		return
	}
	h[k] = vs
}

// forward sends r on to the upstream without storing the answer. stale, when set,
// is served instead should the upstream fail (stale_if_error).
func (rc *cachedRoute) forward(next http.Handler, w http.ResponseWriter, r *http.Request, result, status string, stale *cache.Entry) {
	if stale == nil {
		rc.counts.count(result)
		noteCache(w, result)
		w.Header().Add("Cache-Status", status)
		next.ServeHTTP(w, r)
		return
	}
	fw := &fillWriter{w: w, stale: stale, status: status}
	next.ServeHTTP(fw, r)
	if fw.failed {
		rc.serveStaleOnError(w, r, fw, stale)
		return
	}
	rc.counts.count(result)
	noteCache(w, result)
}

// fill forwards a miss for the key f holds, passes the answer on as it comes, and
// stores it when it may be stored. The request it forwards is the GET the key
// names, whatever the caller sent: HEAD becomes GET (nginx's
// proxy_cache_convert_head) so the entry has the body a GET gets, the caller's
// conditional headers stay behind (the cache decides them on hits; this caller gets
// the whole answer, which is always a correct one), and the content coding is the
// one the key names. The fetch does not end when the caller leaves: the callers
// waiting for the entry need it.
func (rc *cachedRoute) fill(next http.Handler, w http.ResponseWriter, r *http.Request, masked bool, f *cache.Fill, stale *cache.Entry) {
	out := rc.fillRequest(r, context.WithoutCancel(r.Context()), masked)
	fw := &fillWriter{w: w, head: r.Method == http.MethodHead, stale: stale, store: true, rc: rc, fill: f, ctx: r.Context()}
	defer func() {
		if v := recover(); v != nil {
			f.Abandon(r.Context(), false)
			panic(v)
		}
	}()
	next.ServeHTTP(fw, out)
	if fw.failed {
		f.Abandon(r.Context(), false)
		rc.serveStaleOnError(w, r, fw, stale)
		return
	}
	rc.counts.count(cacheMiss)
	noteCache(w, cacheMiss)
	fw.finish()
}

// refresh fetches a stale entry's key again in the background, while the callers
// are served the stale answer (stale_while_revalidate).
func (rc *cachedRoute) refresh(next http.Handler, r *http.Request, masked bool, f *cache.Fill) {
	// The refresh gets its own request record: the caller's access line is written
	// while it runs.
	info := *reqinfo.Of(r)
	values := reqinfo.With(context.WithoutCancel(r.Context()), &info)
	out := rc.fillRequest(r, values, masked)
	rc.cache.Background(rc.cache.LockTimeout(), func(bg context.Context) {
		// The request's values (client, mask hook, pool) with the background's
		// end: its timeout, or the cache closing.
		ctx, cancel := context.WithCancel(values)
		defer cancel()
		stop := context.AfterFunc(bg, cancel)
		defer stop()
		fw := &fillWriter{store: true, rc: rc, fill: f, ctx: ctx}
		defer func() {
			if v := recover(); v != nil {
				f.Abandon(ctx, false)
				if v != http.ErrAbortHandler {
					rc.logger.Error("response cache: a background refresh panicked", "panic", v, "route", rc.name)
				}
			}
		}()
		next.ServeHTTP(fw, out.WithContext(ctx))
		fw.finish()
	})
}

// fillRequest is the request a fill sends (see fill), on ctx.
func (rc *cachedRoute) fillRequest(r *http.Request, ctx context.Context, masked bool) *http.Request {
	out := r.Clone(ctx)
	out.Method = http.MethodGet
	out.Body, out.ContentLength, out.GetBody = http.NoBody, 0, nil
	if !masked {
		for _, k := range conditionalHeaders {
			delete(out.Header, k)
		}
		if acceptsGzip(out.Header.Get("Accept-Encoding")) {
			out.Header.Set("Accept-Encoding", "gzip")
		} else {
			out.Header.Set("Accept-Encoding", "identity")
		}
	}
	return out
}

// finish stores the fill's answer, or gives the key up, unless that is done.
func (fw *fillWriter) finish() {
	if fw.finished {
		return
	}
	fw.finished = true
	if !fw.complete() {
		fw.fill.Abandon(fw.ctx, fw.wrote && fw.decision.Pass)
		return
	}
	fw.fill.Store(fw.ctx, fw.code, fw.entryHeader(), fw.body, fw.decision.TTL, fw.decision.NoStale)
}

// serveStaleOnError answers with the stale entry in place of the upstream's failure.
func (rc *cachedRoute) serveStaleOnError(w http.ResponseWriter, r *http.Request, fw *fillWriter, stale *cache.Entry) {
	now := rc.now()
	status := cacheName + "; fwd=stale; fwd-status=" + strconv.Itoa(fw.code) + "; ttl=" + ttlOf(stale, now) + "; detail=stale-if-error"
	// The upstream's error answer was not passed on; its error code stays in the
	// access line, so the failure is still seen.
	rc.answer(w, r, stale, ageOf(stale, now), []string{status}, nil, false, cacheStale)
}

// fillWriter is the ResponseWriter of a forwarded request: it passes the answer to
// the caller (w; none for a background refresh) as it comes, and keeps a copy of
// what may be stored. With a stale entry to fall back on, an upstream failure is
// held back instead (failed), for the caller to be answered with the stale entry.
type fillWriter struct {
	w      http.ResponseWriter // nil: nobody to pass the answer to
	rc     *cachedRoute        // nil: nothing is stored
	header http.Header         // what the upstream answered with
	head   bool                // the caller sent HEAD: no body for it
	stale  *cache.Entry        // served instead of a failure
	status string              // Cache-Status when nothing is stored
	// fill, when set, is the key the answer is stored under (see finish); ctx is
	// the request's, for the Redis calls.
	fill     *cache.Fill
	ctx      context.Context
	finished bool

	code      int
	wrote     bool
	failed    bool // the answer was a failure held back (stale)
	store     bool // what comes may still be stored
	decision  cache.Decision
	body      []byte
	length    int64 // Content-Length, or -1
	callerErr error
}

func (fw *fillWriter) Header() http.Header {
	if fw.header == nil {
		fw.header = make(http.Header)
	}
	return fw.header
}

// serverError reports whether code is a failure stale_if_error covers (RFC 5861).
func serverError(code int) bool {
	switch code {
	case 500, 502, 503, 504:
		return true
	}
	return false
}

func (fw *fillWriter) WriteHeader(code int) {
	h := fw.Header()
	if code < 200 {
		fw.interim(code)
		return
	}
	if fw.wrote {
		return
	}
	fw.wrote, fw.code = true, code
	if fw.stale != nil && serverError(code) {
		fw.failed = true
		return
	}
	status := fw.status
	if fw.store && fw.rc != nil {
		rc := fw.rc
		// The route's answers vary by its vary headers, whether the upstream says
		// so or not: the entry and this answer tell downstream caches alike.
		for _, name := range rc.spec.Vary {
			if !headerListHas(h["Vary"], name) {
				h.Add("Vary", name)
			}
		}
		fw.decision = cache.Storable(code, h, rc.policy.TTL, rc.spec.Vary, rc.now())
		fw.length = -1
		if cl, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
			fw.length = cl
		}
		max := rc.cache.MaxEntryBytes()
		switch {
		case fw.decision.TTL <= 0:
			fw.store = false
			status = cacheName + "; fwd=miss; fwd-status=" + strconv.Itoa(code) + "; detail=" + fw.decision.Why
		case fw.length > max:
			fw.store = false
			fw.decision.Pass = true
			status = cacheName + "; fwd=miss; fwd-status=" + strconv.Itoa(code) + "; detail=too-large"
		default:
			status = cacheName + "; fwd=miss; fwd-status=" + strconv.Itoa(code) + "; stored"
			if fw.length > 0 {
				fw.body = make([]byte, 0, fw.length)
			}
		}
		if fw.store && fw.fill != nil && (fw.length == 0 || code == http.StatusNoContent) {
			fw.finish() // the whole answer is here: see Write
		}
	}
	if fw.w == nil {
		return
	}
	dst := fw.w.Header()
	for k, vs := range h {
		old := dst[k]
		dst[k] = append(old[:len(old):len(old)], vs...)
	}
	if status != "" {
		dst.Add("Cache-Status", status)
	}
	fw.w.WriteHeader(code)
}

// interim passes a 1xx answer (103 Early Hints) on with its own fields only.
func (fw *fillWriter) interim(code int) {
	if fw.w == nil {
		return
	}
	dst := fw.w.Header()
	saved := make(map[string][]string, len(fw.header))
	for k, vs := range fw.header {
		old, had := dst[k]
		if had {
			saved[k] = old
		} else {
			saved[k] = nil
		}
		dst[k] = append(old[:len(old):len(old)], vs...)
	}
	fw.w.WriteHeader(code)
	for k, old := range saved {
		if old == nil {
			delete(dst, k)
		} else {
			dst[k] = old
		}
	}
}

func (fw *fillWriter) Write(p []byte) (int, error) {
	if !fw.wrote {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.failed {
		return len(p), nil
	}
	if fw.store && !fw.finished {
		if max := fw.rc.cache.MaxEntryBytes(); int64(len(fw.body)+len(p)) > max {
			fw.store, fw.body = false, nil
		} else {
			fw.body = append(fw.body, p...)
		}
		if fw.store && fw.fill != nil && int64(len(fw.body)) == fw.length {
			// Stored before the caller has the last bytes: a caller that has the
			// whole answer and asks again, here or on another instance, is a hit.
			fw.finish()
		}
	}
	if fw.w == nil || fw.head {
		return len(p), nil
	}
	if fw.callerErr == nil {
		n, err := fw.w.Write(p)
		if err == nil {
			return n, nil
		}
		fw.callerErr = err
		if !fw.store {
			return n, err
		}
	} else if !fw.store {
		return 0, fw.callerErr
	}
	// The caller is gone, but the answer is being stored: read it to the end.
	return len(p), nil
}

// FlushError passes flushes on (server-sent events, long polls).
func (fw *fillWriter) FlushError() error {
	if fw.w == nil || fw.failed || fw.callerErr != nil {
		return nil
	}
	return http.NewResponseController(fw.w).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (fw *fillWriter) Unwrap() http.ResponseWriter { return fw.w }

// complete reports whether the whole answer is in hand and may be stored.
func (fw *fillWriter) complete() bool {
	if !fw.wrote || fw.failed || !fw.store || fw.rc == nil || fw.decision.TTL <= 0 {
		return false
	}
	return fw.length < 0 || fw.length == int64(len(fw.body))
}

// entryHeader is the header an entry keeps: the upstream's (with the route's vary
// headers in Vary, see WriteHeader), less what names this one exchange
// (X-Request-Id) and what the cache sets itself on every answer (Age), with
// Content-Length exact.
func (fw *fillWriter) entryHeader() http.Header {
	h := fw.header.Clone()
	delete(h, "X-Request-Id")
	delete(h, "Age")
	if fw.code != http.StatusNoContent {
		h["Content-Length"] = []string{strconv.Itoa(len(fw.body))}
	}
	return h
}

func headerListHas(lines []string, name string) bool {
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ",") {
			if p := strings.TrimSpace(part); strings.EqualFold(p, name) || p == "*" {
				return true
			}
		}
	}
	return false
}

// noteCache puts the cache's result for the request in its access line: the access
// log's recorder is found beneath the writers that wrap it (interimMasker).
func noteCache(w http.ResponseWriter, result string) {
	for {
		switch rw := w.(type) {
		case *recordingWriter:
			rw.cache = result
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = rw.Unwrap()
		default:
			return
		}
	}
}

// cacheCounters are one route's signgate_cache_requests_total series, by result.
type cacheCounters struct {
	hit, miss, stale, bypass prometheus.Counter
}

func (c cacheCounters) count(result string) {
	switch result {
	case cacheHit:
		c.hit.Inc()
	case cacheMiss:
		c.miss.Inc()
	case cacheStale:
		c.stale.Inc()
	case cacheBypass:
		c.bypass.Inc()
	}
}

// cacheRoutes lists the names of the routes of cfg that have a cache.
func cacheRoutes(cfg *config.Config) []string {
	var names []string
	for _, rt := range cfg.Routes {
		if rt.Cache.Enabled {
			names = append(names, rt.Name)
		}
	}
	return names
}

// lowerASCII lower-cases s, without allocating when it already is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

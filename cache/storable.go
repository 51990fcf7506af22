package cache

import (
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Policy is a route's cache settings.
type Policy struct {
	// TTL is how long an answer stays fresh; the upstream's Cache-Control can only
	// shorten it.
	TTL time.Duration
	// StaleWhileRevalidate is how long after that a stale answer is served while
	// one caller refreshes it.
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long after that a stale answer is served when the
	// upstream fails.
	StaleIfError time.Duration
}

// lifetime is how long Redis and the in-process tier keep an entry fresh for ttl.
func (p Policy) lifetime(ttl time.Duration) time.Duration {
	return ttl + max(p.StaleWhileRevalidate, p.StaleIfError)
}

// storableStatus are the statuses whose answers are stored (DESIGN.md "Response
// cache"): final answers that do not depend on the moment. 206 is left out (it is
// part of an answer), 304 (it has no body), redirects other than 301 (often
// per-session), and errors but 404 and 410.
func storableStatus(code int) bool {
	switch code {
	case 200, 203, 204, 301, 404, 410:
		return true
	}
	return false
}

// Decision is what Storable decides about one answer.
type Decision struct {
	// TTL is how long the answer stays fresh; 0 when it is not stored.
	TTL time.Duration
	// NoStale is set when the upstream forbids serving it stale (must-revalidate,
	// proxy-revalidate, s-maxage): the route's stale windows do not apply to it.
	NoStale bool
	// Why names the reason it is not stored, for Cache-Status's detail ("" when
	// it is stored).
	Why string
	// Pass says the request's answers are not stored for a reason that will hold
	// for the next requests too (Set-Cookie, no-store, private, Vary): callers stop
	// queueing behind fills for a while (hit-for-pass). A status that is not stored
	// (a 500) is not one: the next answer may well be.
	Pass bool
}

// Storable decides whether an answer with status and header h is stored, and for
// how long, under the route's ttl and the headers the route varies by (canonical).
// now is the time the answer arrived, for Expires.
//
// Stored: 200, 203, 204, 301, 404 and 410 answers without Set-Cookie, without
// Cache-Control no-store, no-cache or private, with Vary naming only headers the
// key holds (the route's vary headers, and Accept-Encoding), and with a body whose
// length is known (a stream, text/event-stream, or an answer with trailers, is
// not). Cache-Control s-maxage or max-age (less the upstream's own Age), or else
// Expires, shortens the ttl; none lengthens it.
func Storable(status int, h http.Header, ttl time.Duration, vary []string, now time.Time) Decision {
	if !storableStatus(status) {
		return Decision{Why: "status"}
	}
	if _, ok := h["Set-Cookie"]; ok {
		return Decision{Why: "set-cookie", Pass: true}
	}
	if _, ok := h["Trailer"]; ok {
		return Decision{Why: "trailer", Pass: true}
	}
	if ct := h.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "text/event-stream" {
			return Decision{Why: "stream", Pass: true}
		}
	}
	for _, line := range h["Vary"] {
		for name := range strings.SplitSeq(line, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if name == "" || name == "Accept-Encoding" || slices.Contains(vary, name) {
				continue
			}
			return Decision{Why: "vary", Pass: true}
		}
	}
	d := Decision{TTL: ttl}
	cc := parseCacheControl(h["Cache-Control"])
	switch {
	case cc.noStore:
		return Decision{Why: "no-store", Pass: true}
	case cc.private:
		return Decision{Why: "private", Pass: true}
	case cc.noCache:
		return Decision{Why: "no-cache", Pass: true}
	}
	d.NoStale = cc.mustRevalidate || cc.sMaxAge >= 0
	switch lifetime := cc.sMaxAge; {
	case lifetime >= 0:
		d.TTL = min(d.TTL, lifetime-upstreamAge(h))
	case cc.maxAge >= 0:
		d.TTL = min(d.TTL, cc.maxAge-upstreamAge(h))
	default:
		if exp, ok := h["Expires"]; ok {
			t, err := http.ParseTime(firstOf(exp))
			if err != nil {
				// RFC 9111 5.3: an invalid Expires, "0" above all, means already expired.
				return Decision{Why: "expires"}
			}
			from := now
			if date, err := http.ParseTime(h.Get("Date")); err == nil {
				from = date
			}
			d.TTL = min(d.TTL, t.Sub(from))
		}
	}
	if d.TTL < time.Second {
		// Not worth a Redis round trip, and Age and Cache-Status count in seconds.
		return Decision{Why: "max-age"}
	}
	return d
}

func firstOf(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// upstreamAge is the Age an upstream that caches itself put on its answer.
func upstreamAge(h http.Header) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 1<<31)) * time.Second
}

// cacheControl is what Storable reads of a response's Cache-Control.
type cacheControl struct {
	noStore, noCache, private, mustRevalidate bool
	maxAge, sMaxAge                           time.Duration // -1 when absent
}

func parseCacheControl(lines []string) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	for _, line := range lines {
		for _, d := range splitDirectives(line) {
			name, value, _ := strings.Cut(d, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch name {
			case "no-store":
				cc.noStore = true
			case "no-cache":
				cc.noCache = true
			case "private":
				cc.private = true
			case "must-revalidate", "proxy-revalidate":
				cc.mustRevalidate = true
			case "max-age":
				cc.maxAge = seconds(value, cc.maxAge)
			case "s-maxage":
				cc.sMaxAge = seconds(value, cc.sMaxAge)
			}
		}
	}
	return cc
}

// seconds reads a delta-seconds value; a malformed one counts as 0 (RFC 9111
// 1.2.2: treat it as stale), and of two the smaller wins.
func seconds(v string, prev time.Duration) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	d := time.Duration(0)
	if err == nil && n > 0 {
		d = time.Duration(min(n, 1<<31)) * time.Second
	}
	if prev >= 0 {
		return min(prev, d)
	}
	return d
}

// splitDirectives splits a Cache-Control line at commas outside quoted strings
// (private="Set-Cookie, X-Foo" is one directive).
func splitDirectives(line string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				out = append(out, line[start:i])
				start = i + 1
			}
		}
	}
	return append(out, line[start:])
}

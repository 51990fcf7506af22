// Package route matches requests to "METHOD /path" patterns: "*" stands for one path
// segment, a final "**" for the rest of the path, and a method of "*" for any method.
// Patterns are parsed once at config load; matching walks the path without allocating.
// A request is matched on its decided form (Decide): HEAD as GET, a path without its
// trailing slash; a pattern that could never match a decided request (a HEAD method,
// a path ending in "/") is refused when parsed.
package route

import (
	"errors"
	"fmt"
	"strings"
)

// Pattern is a parsed "METHOD /path" pattern.
type Pattern struct {
	raw    string
	method string   // "" matches any method
	segs   []string // literal segments, or "*" for any one non-empty segment
	rest   bool     // the pattern ends in "/**": any remainder, including none
}

// ParsePattern parses s, such as "GET /api/orders/*" or "* /api/**".
func ParsePattern(s string) (Pattern, error) {
	method, path, ok := strings.Cut(s, " ")
	if !ok || method == "" || path == "" {
		return Pattern{}, errors.New(`want "METHOD /path", e.g. "GET /api/orders/*"`)
	}
	p := Pattern{raw: s}
	switch {
	case method == "*":
	case method == "HEAD":
		return Pattern{}, errors.New(`method HEAD: a HEAD request is routed, authorised and limited as the GET it stands for; write GET`)
	case !ValidMethod(method):
		return Pattern{}, fmt.Errorf("method %q must be upper-case letters or *", method)
	default:
		p.method = method
	}
	if path[0] != '/' {
		return Pattern{}, fmt.Errorf("path %q must start with /", path)
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		return Pattern{}, fmt.Errorf("path %q ends in /: requests are routed on their path without the trailing slash, so write %q", path, strings.TrimRight(path, "/"))
	}
	if strings.ContainsAny(path, "?# \t") {
		return Pattern{}, fmt.Errorf("path %q may not hold a query, fragment or space", path)
	}
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		switch {
		case seg == "**":
			if i != len(segs)-1 {
				return Pattern{}, fmt.Errorf("path %q: ** may only be the last segment", path)
			}
			p.rest = true
			segs = segs[:i]
		case seg == "*":
		case strings.Contains(seg, "*"):
			return Pattern{}, fmt.Errorf("path %q: * must be a whole segment", path)
		case seg == "." || seg == "..":
			return Pattern{}, fmt.Errorf("path %q: dot segments never match a clean path", path)
		}
	}
	p.segs = segs
	return p, nil
}

// MustParse is ParsePattern for patterns known to be valid; it panics otherwise.
func MustParse(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// ValidMethod reports whether m is a method a pattern can name and a request may
// be routed with: one or more upper-case ASCII letters. Any other method is one
// backends read differently ("get" as GET) or net/http's client refuses to send.
func ValidMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// Decide returns the method and path a request is matched on, routed, authorised
// and limited by: HEAD is decided as the GET it stands for (RFC 9110 9.3.2), and a
// path ending in "/" as the path without it ("/" stays "/"), so neither spelling can
// move a request to another route or role. The request itself is forwarded as sent.
// The results are method and path or substrings of them: Decide does not allocate.
func Decide(method, path string) (string, string) {
	if method == "HEAD" {
		method = "GET"
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		if path = strings.TrimRight(path, "/"); path == "" {
			path = "/"
		}
	}
	return method, path
}

// Match reports whether a request with method and (decoded) path matches p. Callers
// pass the request's decided method and path (Decide).
func (p *Pattern) Match(method, path string) bool {
	if p.method != "" && p.method != method {
		return false
	}
	return p.matchPath(path)
}

func (p *Pattern) matchPath(path string) bool {
	for _, seg := range p.segs {
		if len(path) == 0 || path[0] != '/' {
			return false
		}
		path = path[1:]
		end := strings.IndexByte(path, '/')
		if end < 0 {
			end = len(path)
		}
		got := path[:end]
		if seg == "*" {
			if got == "" {
				return false
			}
		} else if got != seg {
			return false
		}
		path = path[end:]
	}
	if p.rest {
		return path == "" || path[0] == '/'
	}
	return path == ""
}

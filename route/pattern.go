// Package route matches requests to "METHOD /path" patterns: "*" stands for one path
// segment, a final "**" for the rest of the path, and a method of "*" for any method.
// Patterns are parsed once at config load; matching walks the path without allocating.
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
	if method != "*" {
		for _, c := range method {
			if c < 'A' || c > 'Z' {
				return Pattern{}, fmt.Errorf("method %q must be upper-case letters or *", method)
			}
		}
		p.method = method
	}
	if path[0] != '/' {
		return Pattern{}, fmt.Errorf("path %q must start with /", path)
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

// Match reports whether a request with method and (decoded) path matches p.
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

package apispec

import (
	"fmt"
	"regexp"
	"strings"
)

// template is a path template, "/api/orders/{id}/status", split into segments.
type template struct {
	segs []segment
}

// segment is one segment of a template: a literal, a whole-segment parameter
// ("{id}"), or a segment mixing both ("{id}.json", "v{major}") matched by re.
type segment struct {
	lit   string
	param string         // the name of a whole-segment parameter
	re    *regexp.Regexp // a mixed segment; its groups are names, in order
	names []string
}

// kind orders segments by how much they pin down: a literal before a mixed
// segment before a bare parameter, as OpenAPI has concrete paths matched first.
func (s segment) kind() int {
	switch {
	case s.re != nil:
		return 1
	case s.param != "":
		return 2
	}
	return 0
}

// parseTemplate parses a path template. A trailing slash is dropped: requests are
// matched on their decided path, which has none.
func parseTemplate(path string) (template, error) {
	if !strings.HasPrefix(path, "/") {
		return template{}, fmt.Errorf("a path must start with /, got %q", path)
	}
	path = strings.TrimRight(path, "/")
	if path == "" {
		return template{}, nil // "/"
	}
	var t template
	for _, raw := range strings.Split(path[1:], "/") {
		s, err := parseSegment(raw)
		if err != nil {
			return template{}, fmt.Errorf("segment %q: %v", raw, err)
		}
		t.segs = append(t.segs, s)
	}
	return t, nil
}

func parseSegment(raw string) (segment, error) {
	if !strings.Contains(raw, "{") {
		return segment{lit: raw}, nil
	}
	if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") && strings.Count(raw, "{") == 1 && strings.Count(raw, "}") == 1 {
		return segment{param: raw[1 : len(raw)-1]}, nil
	}
	var pat strings.Builder
	var names []string
	pat.WriteByte('^')
	for rest := raw; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			pat.WriteString(regexp.QuoteMeta(rest))
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return segment{}, fmt.Errorf("an unclosed {")
		}
		pat.WriteString(regexp.QuoteMeta(rest[:open]))
		pat.WriteString("(.+?)")
		names = append(names, rest[open+1:open+end])
		rest = rest[open+end+1:]
	}
	pat.WriteByte('$')
	re, err := regexp.Compile(pat.String())
	if err != nil {
		return segment{}, err
	}
	return segment{re: re, names: names}, nil
}

// specificity orders two templates with the same number of segments so the more
// concrete comes first: at the first segment where they differ in kind, the one
// with the literal (or the literal part) wins.
func (t template) specificity(u template) int {
	for i := 0; i < len(t.segs) && i < len(u.segs); i++ {
		if a, b := t.segs[i].kind(), u.segs[i].kind(); a != b {
			return a - b
		}
	}
	return len(t.segs) - len(u.segs)
}

// shape is the template with its parameters' names left out: "/a/{id}" and
// "/a/{x}" are the same operation path.
func (t template) shape() string {
	var b strings.Builder
	for _, s := range t.segs {
		b.WriteByte('/')
		switch {
		case s.re != nil:
			b.WriteString(s.re.String())
		case s.param != "":
			b.WriteString("{}")
		default:
			b.WriteString(s.lit)
		}
	}
	return b.String()
}

// match reports whether path (decoded, without a trailing slash) fits t, and
// returns its parameters' values. It allocates only for templates with parameters.
func (t template) match(path string) (map[string]string, bool) {
	var params map[string]string
	if path == "/" {
		path = ""
	}
	for _, s := range t.segs {
		if len(path) == 0 || path[0] != '/' {
			return nil, false
		}
		path = path[1:]
		end := strings.IndexByte(path, '/')
		if end < 0 {
			end = len(path)
		}
		got := path[:end]
		path = path[end:]
		switch {
		case s.param != "":
			if got == "" {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, 2)
			}
			params[s.param] = got
		case s.re != nil:
			m := s.re.FindStringSubmatch(got)
			if m == nil {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, 2)
			}
			for i, name := range s.names {
				params[name] = m[i+1]
			}
		case got != s.lit:
			return nil, false
		}
	}
	if path != "" {
		return nil, false
	}
	return params, true
}

// Find returns the operation a request with the decided method and path is for
// (HEAD decided as GET finds the GET operation), and the values of its path
// parameters; nil when no operation covers it.
func (s *Spec) Find(method, path string) (*Operation, map[string]string) {
	if s == nil {
		return nil, nil
	}
	for _, o := range s.byMethod[method] {
		if params, ok := o.tmpl.match(path); ok {
			return o, params
		}
	}
	return nil, nil
}

// Covers reports whether some request a gateway route pattern ("POST /api/orders",
// "* /api/orders/**", "GET /api/orders/*") matches is one an operation covers: a
// route no operation covers at all would refuse, or report, every request.
func (s *Spec) Covers(match string) bool {
	method, path, ok := strings.Cut(match, " ")
	if !ok || s == nil {
		return false
	}
	var segs []string
	rest := false
	if p := strings.TrimPrefix(path, "/"); p != "" {
		segs = strings.Split(p, "/")
	}
	if n := len(segs); n > 0 && segs[n-1] == "**" {
		segs, rest = segs[:n-1], true
	}
	for _, o := range s.ops {
		if method != "*" && method != o.Method {
			continue
		}
		if overlaps(segs, rest, o.tmpl) {
			return true
		}
	}
	return false
}

// overlaps reports whether a path exists that both the route segments (literal or
// "*", then any remainder when rest) and the template match.
func overlaps(segs []string, rest bool, t template) bool {
	if len(t.segs) < len(segs) || (!rest && len(t.segs) != len(segs)) {
		return false
	}
	for i, seg := range segs {
		ts := t.segs[i]
		switch {
		case seg == "*" || ts.param != "":
			// "*" takes any non-empty segment, as a parameter does.
		case ts.re != nil:
			if !ts.re.MatchString(seg) {
				return false
			}
		case seg != ts.lit:
			return false
		}
	}
	return true
}

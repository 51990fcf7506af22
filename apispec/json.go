package apispec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// jsonError is a body that is not one well-formed JSON value: at is where, as a
// JSON Pointer, when it is a member named twice.
type jsonError struct {
	path []string // reversed: the innermost member first, as the decoder unwinds
	msg  string
}

func (e *jsonError) Error() string { return e.msg }

func (e *jsonError) at() string {
	p := slices.Clone(e.path)
	slices.Reverse(p)
	return pointer("", p)
}

// decodeJSON decodes a body that must be exactly one JSON value, as the values
// kin-openapi's validator takes (map[string]any, []any, string, float64, bool,
// nil). It is stricter than encoding/json where the upstream could read something
// other than what is checked:
//   - a member named twice, in the same letter case or not (json.Unmarshal keeps
//     the last; other parsers the first; Go's, ASP.NET Core's and case-insensitive
//     Jackson's match a name to a field without regard to case),
//   - bytes that are not UTF-8 (json.Unmarshal replaces them; others keep them),
//
// and, as json.Unmarshal is, about anything but space after the value (a
// streaming parser would read on).
func decodeJSON(body []byte) (any, error) {
	if !utf8.Valid(body) {
		return nil, &jsonError{msg: "the body is not valid UTF-8: send JSON as UTF-8"}
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if strings.Contains(msg, "after top-level value") {
			return nil, &jsonError{msg: "the body holds more than one JSON value: send one"}
		}
		return nil, &jsonError{msg: "the body is not valid JSON: " + msg}
	}
	if err := (&dupScanner{b: body}).value(); err != nil {
		return nil, err
	}
	return v, nil
}

// dupScanner walks a well-formed JSON document (json.Unmarshal has accepted it)
// for an object that names a member twice. It compares names as decoded, so
// "\u0070hone" and "phone" are the same member, and without regard to case, as
// strings.EqualFold does (Unicode simple folding, encoding/json's own matching of
// names to fields), so "AMOUNT" and "amount" are too. It allocates only for names
// written with escapes and for objects with many members.
type dupScanner struct {
	b []byte
	i int
}

// inlineMembers is how many names an object's check keeps in a slice before it
// moves them to a map.
const inlineMembers = 16

func (s *dupScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *dupScanner) value() *jsonError {
	s.space()
	if s.i >= len(s.b) {
		return nil
	}
	switch s.b[s.i] {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		s.str()
	default:
		for s.i < len(s.b) && !strings.ContainsRune(",]} \t\n\r", rune(s.b[s.i])) {
			s.i++
		}
	}
	return nil
}

// str skips a string and returns its content as written (escapes included) and
// whether it holds any.
func (s *dupScanner) str() (raw []byte, escaped bool) {
	s.i++ // the opening quote
	start := s.i
	for s.i < len(s.b) && s.b[s.i] != '"' {
		if s.b[s.i] == '\\' {
			escaped = true
			s.i++
		}
		s.i++
	}
	raw = s.b[start:min(s.i, len(s.b))]
	s.i++ // the closing quote
	return raw, escaped
}

func (s *dupScanner) object() *jsonError {
	s.i++ // '{'
	var inline [inlineMembers][]byte
	names := inline[:0]
	var many map[string]int // a name folded (appendFolded) → its index in names, once there are many
	var fold [64]byte       // room to fold a name in without allocating
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if s.b[s.i] == ',' {
			s.i++
			continue
		}
		raw, escaped := s.str()
		name := raw
		if escaped {
			var dec string
			_ = json.Unmarshal(s.b[s.i-len(raw)-2:s.i], &dec)
			name = []byte(dec)
		}
		if many == nil && len(names) == inlineMembers {
			many = make(map[string]int, 2*inlineMembers)
			for i, n := range names {
				many[string(appendFolded(fold[:0], n))] = i
			}
		}
		prev := -1
		if many != nil {
			folded := appendFolded(fold[:0], name)
			if i, ok := many[string(folded)]; ok {
				prev = i
			} else {
				many[string(folded)] = len(names)
			}
		} else {
			prev = slices.IndexFunc(names, func(n []byte) bool { return bytes.EqualFold(n, name) })
		}
		if prev >= 0 {
			return &jsonError{path: []string{string(name)}, msg: twiceMessage(names[prev], name)}
		}
		names = append(names, name)
		s.space()
		s.i++ // ':'
		if err := s.value(); err != nil {
			err.path = append(err.path, string(name))
			return err
		}
	}
}

// twiceMessage says that name repeats the member named first.
func twiceMessage(first, name []byte) string {
	if bytes.Equal(first, name) {
		return fmt.Sprintf("member %q appears twice: send it once", name)
	}
	return fmt.Sprintf("member %q appears twice, also as %q (names are matched regardless of case): send it once", name, first)
}

// appendFolded appends name in one letter case to out, such that the folded x and
// y are equal just when bytes.EqualFold(x, y): ASCII in upper case, any other
// rune as the least of its simple-folding orbit (as encoding/json folds names).
func appendFolded(out, name []byte) []byte {
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

// foldRune is the least rune that folds to r (unicode.SimpleFold walks the orbit
// upwards, then wraps to its least).
func foldRune(r rune) rune {
	for {
		f := unicode.SimpleFold(r)
		if f <= r {
			return f
		}
		r = f
	}
}

func (s *dupScanner) array() *jsonError {
	s.i++ // '['
	for n := 0; ; {
		s.space()
		switch {
		case s.i >= len(s.b) || s.b[s.i] == ']':
			s.i++
			return nil
		case s.b[s.i] == ',':
			s.i++
			continue
		}
		if err := s.value(); err != nil {
			err.path = append(err.path, strconv.Itoa(n))
			return err
		}
		n++
	}
}

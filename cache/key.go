package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
)

// Key names one stored answer: the SHA-256 of everything that makes two requests
// get different answers (KeySpec, Request). It is an array so a lookup in the
// in-process tier hashes no string and allocates nothing.
type Key [32]byte

// String is the key as Redis names it.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// KeySpec is a route's part of every key, fixed when the config is loaded.
type KeySpec struct {
	// Route is the route's name: purges by route find its entries by it.
	Route string
	// Salt is a fingerprint of what shapes the route's answers (its match and
	// upstream, its cache settings, the masking rules): a reload or a fleet member
	// with other settings reads and writes other entries, not the old ones.
	Salt string
	// Vary are the request headers the route's answers vary by, in canonical
	// form, sorted, without repeats (see CanonicalVary).
	Vary []string
}

// Request is a request's part of its key.
type Request struct {
	// Method and Path are the decided form (HEAD as GET, no trailing slash), so every
	// spelling of one request shares its entry.
	Method, Path string
	// Slash is whether the path was sent with its trailing slash. The upstream gets
	// the path as sent, and a framework may answer /x/ with a redirect to /x: the
	// two share a route and its policy, but not an entry, or the redirect would be
	// served for the path it points to.
	Slash bool
	// Host is the host the caller named (Host, :authority), lower-cased by the
	// caller of Key: the upstream receives it as X-Forwarded-Host, which frameworks
	// build absolute URLs from, so an answer for one host is never served for
	// another (cache poisoning by an unkeyed input).
	Host string
	// RawQuery is the query as sent; the key holds it canonically (see Key).
	RawQuery string
	// Header is read for the spec's Vary headers.
	Header http.Header
	// Encoding is the content coding the entry's body is in ("gzip" or "").
	Encoding string
	// View is what the caller may see of the answer ("masked", "full"): callers
	// with different views never share an entry.
	View string
	// Principal is who the answer is for: the client id (and the end user, where a
	// route knows one), or "" when the route's scope is all.
	Principal string
}

// ErrQuery is a query the key cannot be made of: a malformed %-escape, or a raw
// ";" that some upstreams read as a separator and others do not. Such a request is
// not cached.
var ErrQuery = errors.New("cache: malformed query")

// keyVersion starts every key's input: a change of the layout below changes every
// key rather than misreading old entries.
const keyVersion = "sgcache2"

// Key returns the key of r on the route s describes. Every part is written with
// its length first, so no two distinct inputs write the same bytes.
//
// The query is taken as a Go upstream reads it (url.ParseQuery): '+' is a space,
// %XX is decoded, empty parameters are skipped, "a" is "a=". Parameters are sorted by
// name, stably, so the order of different names does not matter while the order of
// one name's values does (url.Values.Get returns the first). Key allocates nothing
// for a request of usual size.
func (s *KeySpec) Key(r *Request) (Key, error) {
	var arr [512]byte
	b := append(arr[:0], keyVersion...)
	b = appendField(b, s.Route)
	b = appendField(b, s.Salt)
	b = appendField(b, r.Method)
	b = appendField(b, r.Host)
	b = appendField(b, r.Path)
	if r.Slash {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b, err := appendQuery(b, r.RawQuery)
	if err != nil {
		return Key{}, err
	}
	b = appendField(b, r.Encoding)
	b = appendField(b, r.View)
	b = appendField(b, r.Principal)
	b = binary.AppendUvarint(b, uint64(len(s.Vary)))
	for _, name := range s.Vary {
		values := r.Header[name]
		b = binary.AppendUvarint(b, uint64(len(values)))
		for _, v := range values {
			b = appendField(b, v)
		}
	}
	return sha256.Sum256(b), nil
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// param locates one decoded query parameter in the scratch buffer: name is
// buf[start:eq], value buf[eq:end].
type param struct{ start, eq, end int }

// appendQuery appends the canonical form of a raw query: the number of parameters,
// then each decoded name and value, length first, sorted stably by name.
func appendQuery(b []byte, raw string) ([]byte, error) {
	var bufArr [256]byte
	var paramsArr [16]param
	buf, params := bufArr[:0], paramsArr[:0]
	for rest := raw; rest != ""; {
		var p string
		p, rest, _ = cut(rest, '&')
		if p == "" {
			continue
		}
		name, value, _ := cut(p, '=')
		var err error
		pr := param{start: len(buf)}
		if buf, err = appendUnescaped(buf, name); err != nil {
			return b, err
		}
		pr.eq = len(buf)
		if buf, err = appendUnescaped(buf, value); err != nil {
			return b, err
		}
		pr.end = len(buf)
		params = append(params, pr)
	}
	byName := func(x, y param) int {
		return compareBytes(buf[x.start:x.eq], buf[y.start:y.eq])
	}
	if len(params) <= 16 {
		// Insertion sort: stable, and no closure escapes to the heap.
		for i := 1; i < len(params); i++ {
			for j := i; j > 0 && byName(params[j-1], params[j]) > 0; j-- {
				params[j-1], params[j] = params[j], params[j-1]
			}
		}
	} else {
		slices.SortStableFunc(params, byName)
	}
	b = binary.AppendUvarint(b, uint64(len(params)))
	for _, p := range params {
		b = binary.AppendUvarint(b, uint64(p.eq-p.start))
		b = append(b, buf[p.start:p.eq]...)
		b = binary.AppendUvarint(b, uint64(p.end-p.eq))
		b = append(b, buf[p.eq:p.end]...)
	}
	return b, nil
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func compareBytes(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// appendUnescaped decodes one query component as url.QueryUnescape does.
func appendUnescaped(dst []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '+':
			c = ' '
		case ';':
			return dst, ErrQuery
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return dst, ErrQuery
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	return dst, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// CanonicalVary returns header names in canonical form, sorted, without repeats:
// the form KeySpec.Vary takes.
func CanonicalVary(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, http.CanonicalHeaderKey(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

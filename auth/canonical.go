package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// maxQueryParams is net/url's default limit (GODEBUG urlmaxqueryparams), so the
// gateway refuses the queries a Go upstream would refuse, and a query of 100 000
// empty parameters cannot make every signed request sort a huge slice.
const maxQueryParams = 10000

var (
	errQueryTooLong   = fmt.Errorf("malformed query: more than %d parameters", maxQueryParams)
	errQuerySemicolon = errors.New("malformed query: ';' is not a parameter separator (send it as %3B)")
)

// CanonicalQuery returns the CANONICAL_QUERY of DESIGN.md's hmac-sha256 string to
// sign for a raw (still escaped) query: the parameters sorted by name, then by value,
// each written name=value with every byte but RFC 3986's unreserved A-Z a-z 0-9 - . _ ~
// percent-encoded as upper-case %XX (a space is %20), joined by '&'. It is "" for an
// empty query.
//
// The raw query is decoded as url.ParseQuery decodes it, so that the gateway signs
// what a Go upstream will read: '+' is a space (form encoding), a parameter without
// '=' is name with an empty value ("a" and "a=" are the same), empty parameters
// ("a=1&&b=2") are skipped, and a malformed %-escape, a raw ';' or more than 10 000
// parameters is an error. Sorting compares the decoded bytes (code-point order for
// UTF-8), not their escaped form: "a~" sorts before "a%E4%B8%AD" ("a中").
func CanonicalQuery(rawQuery string) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	if strings.Count(rawQuery, "&") >= maxQueryParams {
		return "", errQueryTooLong
	}
	// Every parameter is written canonically into one buffer, '&'-separated, and
	// remembered by offsets; the usual small query needs no heap at all until the
	// result string, and none when it was canonical already.
	var bufArr [512]byte
	var pairsArr [16]queryPair
	buf, pairs := bufArr[:0], pairsArr[:0]
	sorted := true
	for rest := rawQuery; rest != ""; {
		var param string
		param, rest, _ = strings.Cut(rest, "&")
		if param == "" {
			continue
		}
		if strings.IndexByte(param, ';') >= 0 {
			return "", errQuerySemicolon
		}
		name, value, _ := strings.Cut(param, "=")
		if len(pairs) > 0 {
			buf = append(buf, '&')
		}
		p := queryPair{start: len(buf)}
		var err error
		if buf, err = appendCanonical(buf, name); err != nil {
			return "", err
		}
		p.eq = len(buf)
		buf = append(buf, '=')
		if buf, err = appendCanonical(buf, value); err != nil {
			return "", err
		}
		p.end = len(buf)
		if sorted && len(pairs) > 0 && comparePairs(buf, pairs[len(pairs)-1], p) > 0 {
			sorted = false
		}
		pairs = append(pairs, p)
	}
	if sorted {
		if string(buf) == rawQuery { // compared without converting: no allocation
			return rawQuery, nil
		}
		return string(buf), nil
	}
	slices.SortFunc(pairs, func(a, b queryPair) int { return comparePairs(buf, a, b) })
	var outArr [512]byte
	out := outArr[:0]
	for i, p := range pairs {
		if i > 0 {
			out = append(out, '&')
		}
		out = append(out, buf[p.start:p.end]...)
	}
	return string(out), nil
}

// queryPair locates one canonical name=value in the buffer: name is buf[start:eq],
// value buf[eq+1:end].
type queryPair struct{ start, eq, end int }

// comparePairs orders two canonical pairs by decoded name, then decoded value.
func comparePairs(buf []byte, a, b queryPair) int {
	if c := compareDecoded(buf[a.start:a.eq], buf[b.start:b.eq]); c != 0 {
		return c
	}
	return compareDecoded(buf[a.eq+1:a.end], buf[b.eq+1:b.end])
}

// compareDecoded compares two canonically encoded strings by the bytes they decode
// to. In canonical form every '%' starts an upper-case %XX escape, so decoding on
// the fly is safe and saves keeping a decoded copy.
func compareDecoded(a, b []byte) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, na := canonicalByteAt(a, i)
		cb, nb := canonicalByteAt(b, j)
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
		i, j = i+na, j+nb
	}
	switch {
	case i < len(a):
		return 1
	case j < len(b):
		return -1
	}
	return 0
}

func canonicalByteAt(s []byte, i int) (byte, int) {
	if s[i] == '%' {
		return unhex(s[i+1])<<4 | unhex(s[i+2]), 3
	}
	return s[i], 1
}

const upperHex = "0123456789ABCDEF"

// appendCanonical decodes one query component (url.QueryUnescape rules) and appends
// it re-encoded canonically.
func appendCanonical(dst []byte, raw string) ([]byte, error) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return dst, fmt.Errorf("malformed query: invalid URL escape %q", raw[i:min(i+3, len(raw))])
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		}
		if isUnreserved(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xF])
		}
	}
	return dst, nil
}

// isUnreserved reports whether c is an RFC 3986 unreserved character.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
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
	default: // 'A'-'F': callers have checked isHex
		return c - 'A' + 10
	}
}

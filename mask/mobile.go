package mask

import "unicode/utf8"

// nationalAt matches the 11 national digits of a mobile number in ASCII starting
// at s[i]: 1[3-9], then 9 digits, with one space or dash allowed at the 3|4|4
// boundaries, and no digit right after. It shapes a phone field's masking
// (phoneShaped); the finder is what finds numbers in text.
func nationalAt[T text](s T, i int) (star, end int, ok bool) {
	n := len(s)
	if i+11 > n || s[i] != '1' || s[i+1] < '3' || s[i+1] > '9' || !isDigit(s[i+2]) {
		return 0, 0, false
	}
	star = skipSeparator(s, i+3)
	if !fourDigits(s, star) {
		return 0, 0, false
	}
	last := skipSeparator(s, star+4)
	if !fourDigits(s, last) {
		return 0, 0, false
	}
	end = last + 4
	if end < n && isDigit(s[end]) {
		return 0, 0, false
	}
	return star, end, true
}

// skipSeparator steps over one space or dash at s[j] when a digit follows it.
func skipSeparator[T text](s T, j int) int {
	if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1]) {
		return j + 1
	}
	return j
}

func fourDigits[T text](s T, j int) bool {
	return j+4 <= len(s) && isDigit(s[j]) && isDigit(s[j+1]) && isDigit(s[j+2]) && isDigit(s[j+3])
}

// phoneShaped reports whether all of d is one mobile number, prefix and
// separators included ("+86 138-1234-5678"), and where its masked digits are.
func phoneShaped[T text](d T) (a, b int, ok bool) {
	i := 0
	if i < len(d) && d[i] == '+' {
		i++
	}
	prefixed := true
	switch {
	case hasPrefixAt(d, i, "0086"):
		i += 4
	case hasPrefixAt(d, i, "86"):
		i += 2
	default:
		prefixed = false
	}
	if prefixed && i < len(d) && (d[i] == ' ' || d[i] == '-') {
		i++
	}
	star, end, ok := nationalAt(d, i)
	if !ok || end != len(d) {
		return 0, 0, false
	}
	return star, star + 4, true
}

func hasPrefixAt[T text](s T, i int, p string) bool {
	return len(s)-i >= len(p) && string(s[i:i+len(p)]) == p
}

// Mobile masks one value of a phone field, as a JSON field in Rules.Fields is
// masked: "13812345678" -> "138****5678", "+86 138-1234-5678" -> "+86 138-****-5678".
// A value that is not a mobile number keeps its first 3 and last 4 characters when
// it has at least 8, and is all stars otherwise, so no full number gets through.
func Mobile(s string) string {
	if a, b, ok := phoneShaped(s); ok {
		return s[:a] + "****" + s[b:]
	}
	buf := appendKeepEnds(make([]byte, 0, len(s)), []byte(s), false)
	return string(buf)
}

// appendField appends the masked form of a phone field's value, given as its raw
// JSON string content (escapes and all) and as the decoded units the matchers read
// (dec; off maps each unit to its offset in raw, nil when raw has no escapes).
// Only the masked characters change: kept ones keep their spelling, \u escapes
// included.
func appendField(dst, raw, dec []byte, off []int) []byte {
	if a, b, ok := phoneShaped(dec); ok {
		ra, rb := a, b
		if off != nil {
			ra, rb = off[a], off[b]
		}
		dst = append(dst, raw[:ra]...)
		dst = appendStars(dst, b-a)
		return append(dst, raw[rb:]...)
	}
	return appendKeepEnds(dst, raw, off != nil)
}

// appendKeepEnds appends raw with every character but the first 3 and last 4
// starred, or all of them when there are fewer than 8: enough of the value left to
// recognise it, never enough to use it. escaped says whether raw is JSON string
// content whose escapes count as one character each.
func appendKeepEnds(dst, raw []byte, escaped bool) []byte {
	n := 0
	for i := 0; i < len(raw); i += charLen(raw, i, escaped) {
		n++
	}
	k := 0
	for i := 0; i < len(raw); k++ {
		size := charLen(raw, i, escaped)
		if n >= 8 && (k < 3 || k >= n-4) {
			dst = append(dst, raw[i:i+size]...)
		} else {
			dst = append(dst, '*')
		}
		i += size
	}
	return dst
}

// charLen is the length in raw of the character at raw[i]: a UTF-8 sequence (an
// invalid byte counts alone, as encoding/json decodes it to one U+FFFD), or, when
// escaped, a JSON escape, a surrogate pair being one character.
func charLen(raw []byte, i int, escaped bool) int {
	c := raw[i]
	if c < utf8.RuneSelf {
		if c == '\\' && escaped {
			return escapeLen(raw, i)
		}
		return 1
	}
	_, size := utf8.DecodeRune(raw[i:])
	return size
}

const stars = "********************************"

func appendStars(dst []byte, n int) []byte {
	for n > len(stars) {
		dst = append(dst, stars...)
		n -= len(stars)
	}
	return append(dst, stars[:n]...)
}

package mask

import (
	"unicode/utf16"
	"unicode/utf8"
)

// The helpers here read the content of a JSON string that the scanner has already
// validated, so they index without bounds checks of their own.

// escapeLen is the length of the escape at raw[i]: 2 for \n and friends, 6 for
// \uXXXX, 12 for a surrogate pair, which is one character. A lone surrogate is one
// character too (encoding/json decodes it to U+FFFD).
func escapeLen(raw []byte, i int) int {
	if raw[i+1] != 'u' {
		return 2
	}
	if r := hex4(raw[i+2:]); r >= 0xD800 && r < 0xDC00 && i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
		if r2 := hex4(raw[i+8:]); r2 >= 0xDC00 && r2 < 0xE000 {
			return 12
		}
	}
	return 6
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// simpleEscape maps the letter after a backslash to the byte it stands for.
func simpleEscape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // " \ /
}

// appendUnits decodes escaped JSON string content for the matchers: one byte per
// unit (a literal byte, or one escape), the ASCII character it stands for, or 0x80
// for anything beyond ASCII, which matters to no matcher. off[k] is where unit k
// starts in raw, and off[len(dec)] == len(raw), so a match on dec maps back to the
// raw bytes it covers and only those are replaced: an escaped digit (\u0031) is
// found, and an escaped 张 elsewhere keeps its spelling.
func appendUnits(dec []byte, off []int, raw []byte) ([]byte, []int) {
	for i := 0; i < len(raw); {
		off = append(off, i)
		c := raw[i]
		switch {
		case c != '\\':
			dec = append(dec, c)
			i++
		case raw[i+1] == 'u':
			if r := hex4(raw[i+2:]); r < utf8.RuneSelf {
				dec = append(dec, byte(r))
			} else {
				dec = append(dec, utf8.RuneSelf)
			}
			i += 6
		default:
			dec = append(dec, simpleEscape(raw[i+1]))
			i += 2
		}
	}
	return dec, append(off, len(raw))
}

// appendUnescaped decodes JSON string content as encoding/json does, for looking
// member names up.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c != '\\':
			dst = append(dst, c)
			i++
		case raw[i+1] == 'u':
			r := hex4(raw[i+2:])
			if escapeLen(raw, i) == 12 {
				r = utf16.DecodeRune(r, hex4(raw[i+8:]))
				i += 12
			} else {
				if utf16.IsSurrogate(r) {
					r = utf8.RuneError
				}
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
		default:
			dst = append(dst, simpleEscape(raw[i+1]))
			i += 2
		}
	}
	return dst
}

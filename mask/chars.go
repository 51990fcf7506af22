package mask

import (
	"unicode"
	"unicode/utf8"

	"github.com/signgate/signgate/internal/leakcheck"
)

// How the matchers read characters: as internal/leakcheck defines them (its package
// comment is the reference), so that what the masker hides and what the tests look
// for are one thing. TestCharsAgreeWithLeakcheck compares the two over all of
// Unicode.

// kind is what a character is to the matchers.
type kind uint8

const (
	other kind = iota
	digitChar
	separator // a separator other than a dot
	dot       // a dot: joins runs only as phones are grouped
)

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// ndZeros holds the zero of every range of ten Unicode decimal digits (category Nd)
// beyond ASCII, in order: Unicode encodes decimal digits in runs of ten, from zero
// up, so a digit's value is its distance from the zero before it.
var ndZeros = func() (zeros []rune) {
	for _, rg := range unicode.Nd.R16 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			if r >= utf8.RuneSelf && (len(zeros) == 0 || r-zeros[len(zeros)-1] >= 10) {
				zeros = append(zeros, r)
			}
		}
	}
	for _, rg := range unicode.Nd.R32 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			if len(zeros) == 0 || r-zeros[len(zeros)-1] >= 10 {
				zeros = append(zeros, r)
			}
		}
	}
	return zeros
}()

// ndBlocks marks the 256-code-point blocks of the BMP that hold a decimal digit,
// ASCII's included, so that a Chinese character is turned down with one load.
var ndBlocks = func() (t [256]bool) {
	t[0] = true // ASCII
	for _, z := range ndZeros {
		if z < 0x10000 {
			t[z>>8], t[(z+9)>>8] = true, true
		}
	}
	return t
}()

// bmpDigits holds the value of every decimal digit of the BMP, -1 for the other
// code points, for the blocks ndBlocks marks: bmpDigits[bmpBlock[r>>8]][r&0xff].
var bmpBlock, bmpDigits = func() (index [256]uint8, values [][256]int8) {
	values = append(values, [256]int8{}) // block 0 is ASCII and Latin-1
	for b := range 256 {
		if b == 0 || !ndBlocks[b] {
			continue
		}
		index[b] = uint8(len(values))
		values = append(values, [256]int8{})
	}
	for b := range values {
		for c := range values[b] {
			values[b][c] = -1
		}
	}
	for c := '0'; c <= '9'; c++ {
		values[0][c] = int8(c - '0')
	}
	for _, z := range ndZeros {
		for r := z; r < z+10 && r < 0x10000; r++ {
			values[index[r>>8]][r&0xff] = int8(r - z)
		}
	}
	return index, values
}()

// digitValue is r's value when it is a decimal digit, and -1 otherwise.
func digitValue(r rune) int {
	if r < 0x10000 {
		if r < 0 || !ndBlocks[r>>8] {
			return -1
		}
		return int(bmpDigits[bmpBlock[r>>8]][r&0xff])
	}
	// The last zero at or before r.
	lo, hi := 0, len(ndZeros)
	for lo < hi {
		if m := int(uint(lo+hi) >> 1); ndZeros[m] <= r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 && r-ndZeros[lo-1] < 10 {
		return int(r - ndZeros[lo-1])
	}
	return -1
}

// isDot and isSeparator are leakcheck's: the masker and the tests read numbers by
// one definition.
func isDot(r rune) bool       { return leakcheck.IsDot(r) }
func isSeparator(r rune) bool { return leakcheck.IsSeparator(r) }

// digitLead marks the bytes at which a digit can start: ASCII digits, the
// backslash of a JSON escape, and the UTF-8 lead bytes of the other decimal digits
// (0xD9, 0xDB, 0xDF, 0xE0, 0xE1, 0xEA, 0xEF, 0xF0). Chinese text (lead bytes 0xE4
// to 0xE9) is not among them, so it is stepped over a byte at a time.
var digitLead = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['\\'] = true
	for _, z := range ndZeros {
		for r := z; r < z+10; r++ {
			t[utf8.AppendRune(nil, r)[0]] = true
		}
	}
	return t
}()

// decodeLead marks the non-ASCII lead bytes worth decoding: those of digits and of
// separators. Any other byte beyond ASCII is a character that breaks a chain,
// whatever the sequence it starts.
var decodeLead = func() (t [256]bool) {
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = digitLead[c]
	}
	for r := rune(utf8.RuneSelf); r < 0x10000; r++ { // every separator is in the BMP
		if isSeparator(r) {
			t[utf8.AppendRune(nil, r)[0]] = true
		}
	}
	return t
}()

// charAt reads the character at s[i] as internal/leakcheck does: a UTF-8 sequence
// or a JSON escape. size is its length in s; val is the value of a digit.
//
// Only the characters that matter are decoded; any other is read as one byte of
// kind other. That keeps the reading in step with leakcheck's, which decodes
// everything: a sequence that starts at a lead byte has no lead byte inside it, so
// both read the same characters from every byte they decode at.
func charAt[T text](s T, i int) (k kind, val uint8, size int) {
	c := s[i]
	if c < utf8.RuneSelf {
		switch {
		case isDigit(c):
			return digitChar, c - '0', 1
		case c == '.':
			return dot, 0, 1
		case c == ' ' || c == '\t' || c == '-':
			return separator, 0, 1
		case c != '\\':
			return other, 0, 1
		}
		r, size := escapeAt(s, i)
		k, val := classify(r)
		return k, val, size
	}
	if !decodeLead[c] {
		return other, 0, 1
	}
	r, size := decodeRune(s, i)
	k, val = classify(r)
	return k, val, size
}

// digitAt reports whether a digit starts at s[i], a backslash or a byte beyond
// ASCII, and the length of the character there.
func digitAt[T text](s T, i int) (bool, int) {
	var r rune
	var size int
	if s[i] == '\\' {
		r, size = escapeAt(s, i)
	} else {
		r, size = decodeRune(s, i)
	}
	return digitValue(r) >= 0, size
}

// hexVal is the value of a hex digit, -1 for any other byte.
var hexVal = func() (t [256]int16) {
	for c := range t {
		t[c] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int16(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = int16(c-'a'+10), int16(c-'a'+10)
	}
	return t
}()

func classify(r rune) (kind, uint8) {
	if v := digitValue(r); v >= 0 {
		return digitChar, uint8(v)
	}
	if isDot(r) {
		return dot, 0
	}
	if isSeparator(r) {
		return separator, 0
	}
	return other, 0
}

// runeAt reads the character at s[i] as charAt does, in full.
func runeAt[T text](s T, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		if c == '\\' {
			return escapeAt(s, i)
		}
		return rune(c), 1
	}
	return decodeRune(s, i)
}

func decodeRune[T text](s T, i int) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s[i:min(i+utf8.UTFMax, len(s))])
	return utf8.DecodeRune(buf[:n])
}

// escapeAt reads the backslash at s[i] and what follows as JSON does: \uXXXX (a
// surrogate pair as one character, a lone surrogate as U+FFFD), the two-character
// escapes, or, when no escape starts here, the backslash alone. In a JSON string
// that has been validated the last never happens; in text it keeps "\\u0031" from
// being read as an escaped digit, as a JSON decoder would not.
func escapeAt[T text](s T, i int) (rune, int) {
	if i+1 >= len(s) {
		return '\\', 1
	}
	switch s[i+1] {
	case 'u':
		r, ok := hexAt(s, i+2)
		if !ok {
			return '\\', 1
		}
		if r < 0xD800 || r >= 0xE000 {
			return r, 6
		}
		if r < 0xDC00 && i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
			if low, ok := hexAt(s, i+8); ok && low >= 0xDC00 && low < 0xE000 {
				return 0x10000 + (r-0xD800)<<10 + (low - 0xDC00), 12
			}
		}
		return utf8.RuneError, 6
	case 't':
		return '\t', 2
	case '"', '\\', '/', 'b', 'f', 'n', 'r':
		return rune(simpleEscape(s[i+1])), 2
	}
	return '\\', 1
}

func hexAt[T text](s T, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		c := s[k]
		switch {
		case isDigit(c):
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

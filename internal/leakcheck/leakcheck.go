// Package leakcheck finds full mainland mobile numbers in text, in any digit form,
// for tests: whatever a masked client may receive (a body, a header, a log line)
// passes when Find returns nothing. It is the reference for DESIGN.md "Numbers in
// any form": package mask masks exactly what Find finds, with its own faster code,
// and mask's fuzz targets hold the two to each other. This implementation is kept
// simple on purpose so that it can be read as the definition.
//
// Characters. Text is read as UTF-8, an invalid byte being a character of its own,
// with JSON escapes decoded, so that a JSON body is read as its client will read it:
// \uXXXX is the character it names (a surrogate pair is one character, a lone
// surrogate U+FFFD), \t is a tab, \" \\ \/ \b \f \n \r stand for one character
// each, and a backslash that starts none of these is a character of its own.
//
// Digits are the Unicode decimal digits (category Nd: ASCII 0-9, full-width ０-９,
// Arabic-Indic, Devanagari, mathematical 𝟎-𝟗 and the others), each read as its
// value 0-9. A run is a maximal sequence of digits.
//
// Separators join two runs into one chain when one to three of them, and nothing
// else, stand between the runs: space, tab, '-', '.', and
//
//	U+00A0 no-break space       U+00AD soft hyphen       U+00B7 middle dot
//	U+2000-U+200D spaces and zero-width characters       U+2010-U+2015 hyphens and dashes
//	U+202F narrow no-break space  U+205F math space      U+2060 word joiner
//	U+2212 minus sign           U+3000 ideographic space U+30FB katakana middle dot
//	U+FEFF zero-width no-break space  U+FF0D full-width hyphen  U+FF0E full-width full stop
//
// Line breaks are not separators, so that text masked line by line (a stream) is
// masked as a whole is; nor are commas, slashes, colons or brackets, which separate
// numbers in lists, dates, times and JSON.
//
// Dots ('.', U+FF0E, and the middle dots U+00B7 and U+30FB) also mark decimals,
// fractions of a second and IPv4 addresses, so where only dots stand between two
// runs they join them only as phones are grouped: after 86 or 0086, or after the
// third or seventh digit of the number ("138.1234.5678", "+86.138.1234.5678").
// "13:45:15.253444101", "1700000000.5", "13812345.678" and "18.204.123.100" are
// not phones.
//
// A leak is one run, or several consecutive runs of a chain, whose digits put
// together are 1[3-9] and nine more digits (11 in all), or that with 86 or 0086 in
// front (13 or 15): "13812345678", "+86 138-1234-5678", "１３８ １２３４ ５６７８",
// "1 3 8 1 2 3 4 5 6 7 8", the last three runs of "12 138 1234 5678". A mobile
// number inside a longer run is not one: "20261123138123456789" is an order
// number, and "138****5678" has no run longer than four digits.
package leakcheck

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Find returns every leak in b, as it is spelled there (from its first digit to its
// last), in the order they end; for runs that end several leaks ("86 138 1234
// 5678") only the longest is returned.
func Find(b []byte) []string { return FindString(string(b)) }

// FindString is Find for a string.
func FindString(s string) []string {
	var leaks []string
	runs := readRuns(s)
	reported := make(map[int]bool)
	for first := range runs {
		var digits []byte
		var dots []int // where dot joints fall, in digits from the first run
		for last := first; last < len(runs); last++ {
			if last > first {
				if !runs[last].joined {
					break
				}
				if runs[last].dots {
					dots = append(dots, len(digits))
				}
			}
			digits = append(digits, runs[last].digits...)
			if len(digits) > 15 {
				break
			}
			if IsMobile(digits) && dotsAsGrouped(dots, len(digits)-11) && !reported[last] {
				reported[last] = true
				leaks = append(leaks, s[runs[first].start:runs[last].end])
			}
		}
	}
	return leaks
}

// dotsAsGrouped reports whether dot joints at these offsets fall where a phone
// is grouped, the national number starting at offset national.
func dotsAsGrouped(dots []int, national int) bool {
	for _, d := range dots {
		if d != national+3 && d != national+7 && (national == 0 || d != national) {
			return false
		}
	}
	return true
}

// IsMobile reports whether digits (ASCII) are a mainland mobile number, alone or
// after 86 or 0086.
func IsMobile(digits []byte) bool {
	switch len(digits) {
	case 11:
		return digits[0] == '1' && digits[1] >= '3' && digits[1] <= '9'
	case 13:
		return string(digits[:2]) == "86" && IsMobile(digits[2:])
	case 15:
		return string(digits[:4]) == "0086" && IsMobile(digits[4:])
	}
	return false
}

// run is a maximal sequence of digits, as ASCII, and where it is spelled.
type run struct {
	digits     []byte
	start, end int
	joined     bool // to the run before it, by one to three separators
	dots       bool // all of them dots
}

func readRuns(s string) []run {
	var runs []run
	seps := -1 // separators since the last run ended; -1: something else came between
	dots := true
	for i := 0; i < len(s); {
		r, size := Decode(s, i)
		v, isDigit := DigitValue(r)
		if isDigit && escapedHex(s, i) {
			// The hex digits of %HH or \xHH are one other character, not digits:
			// "%E4%B8%8913812345678" holds a number after the escape.
			seps = -1
			i += 2
			continue
		}
		switch {
		case isDigit:
			if seps == 0 { // the run goes on
				last := &runs[len(runs)-1]
				last.digits = append(last.digits, byte('0'+v))
				last.end = i + size
				break
			}
			joined := seps >= 1 && seps <= 3
			runs = append(runs, run{digits: []byte{byte('0' + v)}, start: i, end: i + size, joined: joined, dots: joined && dots})
			seps, dots = 0, true
		case IsSeparator(r) && seps >= 0:
			seps++
			dots = dots && IsDot(r)
		default:
			seps = -1
		}
		i += size
	}
	return runs
}

// Decode reads the character at s[i] as Find does, JSON escapes included, and
// returns it and its length in s.
func Decode(s string, i int) (rune, int) {
	if s[i] != '\\' || i+1 >= len(s) {
		return utf8.DecodeRuneInString(s[i:])
	}
	switch s[i+1] {
	case 'u':
		r, ok := hex(s, i+2)
		if !ok {
			break
		}
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if r < 0xDC00 && i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
			if low, ok := hex(s, i+8); ok && low >= 0xDC00 && low < 0xE000 {
				return utf16.DecodeRune(r, low), 12
			}
		}
		return utf8.RuneError, 6
	case 't':
		return '\t', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case '"', '\\', '/':
		return rune(s[i+1]), 2
	}
	return '\\', 1
}

func hex(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
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

// DigitValue reports whether r is a Unicode decimal digit and its value. Unicode
// encodes decimal digits in runs of ten, from zero up, so the value is the
// distance from the start of r's range, modulo ten.
func DigitValue(r rune) (int, bool) {
	for _, rg := range unicode.Nd.R16 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if rune(rg.Lo) <= r && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	return 0, false
}

// IsDot reports whether r is a separator that joins runs only as phones are
// grouped (see the package comment).
func IsDot(r rune) bool { return r == '.' || r == 0xFF0E || r == 0x00B7 || r == 0x30FB }

// IsSeparator reports whether r joins runs of digits (see the package comment).
func IsSeparator(r rune) bool {
	switch r {
	case ' ', '\t', '-', '.',
		0x00A0, 0x00AD, 0x00B7,
		0x202F, 0x205F, 0x2060, 0x2212,
		0x3000, 0x30FB, 0xFEFF, 0xFF0D, 0xFF0E:
		return true
	}
	return 0x2000 <= r && r <= 0x200D || 0x2010 <= r && r <= 0x2015
}

// escapedHex reports whether the ASCII digit at s[i] is the first hex digit of a
// %HH or \xHH escape.
func escapedHex(s string, i int) bool {
	if s[i] > '9' || i+1 >= len(s) || !isHexDigit(s[i+1]) {
		return false
	}
	return i >= 1 && s[i-1] == '%' || i >= 2 && s[i-2] == '\\' && s[i-1] == 'x'
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

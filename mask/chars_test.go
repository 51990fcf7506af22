package mask

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/signgate/signgate/internal/leakcheck"
)

// TestCharsAgreeWithLeakcheck holds the masker's reading of characters to the
// reference over every code point: the same digits with the same values, the same
// separators, and both spelled as UTF-8 and as JSON escapes.
func TestCharsAgreeWithLeakcheck(t *testing.T) {
	for r := rune(0); r <= utf8.MaxRune; r++ {
		want, ok := leakcheck.DigitValue(r)
		if !ok {
			want = -1
		}
		if got := digitValue(r); got != want {
			t.Fatalf("digitValue(%U) = %d; leakcheck says %d", r, got, want)
		}
		if got, want := isSeparator(r), leakcheck.IsSeparator(r); got != want {
			t.Fatalf("isSeparator(%U) = %v; leakcheck says %v", r, got, want)
		}
		if got, want := isDot(r), leakcheck.IsDot(r); got != want || got && !isSeparator(r) {
			t.Fatalf("isDot(%U) = %v; leakcheck says %v", r, got, want)
		}
		if !ok && !leakcheck.IsSeparator(r) && r%97 != 0 {
			continue // a sample of the others is enough for the spellings
		}
		spellings := []string{string(r)}
		if r < 0x10000 {
			spellings = append(spellings, fmt.Sprintf(`\u%04x`, r), fmt.Sprintf(`\u%04X`, r))
		} else {
			spellings = append(spellings, fmt.Sprintf(`\u%04x\u%04x`, 0xD800+(r-0x10000)>>10, 0xDC00+(r-0x10000)&0x3FF))
		}
		for _, s := range spellings {
			k, v, size := charAt(s, 0)
			lr, lsize := leakcheck.Decode(s, 0)
			lk, lv := other, uint8(0)
			switch lval, ok := leakcheck.DigitValue(lr); {
			case ok:
				lk, lv = digitChar, uint8(lval)
			case leakcheck.IsDot(lr):
				lk = dot
			case leakcheck.IsSeparator(lr):
				lk = separator
			}
			// The masker reads the characters that matter to it whole and any
			// other a byte at a time; either way it must be of kind other.
			if k != lk || v != lv || (k != other && size != lsize) {
				t.Fatalf("charAt(%q) = %d, %d, %d; leakcheck reads %d, %d, %d", s, k, v, size, lk, lv, lsize)
			}
			// The fast paths that look for a digit: the finder's and scanString's.
			if c := s[0]; !isDigit(c) && digitLead[c] {
				if got, _ := digitAt(s, 0); got != (lk == digitChar) {
					t.Fatalf("digitAt(%q) = %v; leakcheck reads kind %d", s, got, lk)
				}
			} else if lk == digitChar && !isDigit(c) {
				t.Fatalf("%q is a digit, but digitLead does not mark its first byte", s)
			}
			if s[0] == '\\' && escapedDigit([]byte(s), 0) != (lk == digitChar) {
				t.Fatalf("escapedDigit(%q) = %v; leakcheck reads kind %d", s, !(lk == digitChar), lk)
			}
		}
	}
}

func TestCharAtEscapes(t *testing.T) {
	tests := []struct {
		in   string
		kind kind
		val  uint8
		size int
	}{
		{`\u0031`, digitChar, 1, 6},
		{`\uFF18`, digitChar, 8, 6},
		{`\ud835\udfd7`, digitChar, 9, 12},
		{`\ud835`, other, 0, 6},       // a lone high surrogate
		{`\udfd7\ud835`, other, 0, 6}, // halves the wrong way round
		{`\ud835\u0031`, other, 0, 6}, // a high surrogate and a digit: the digit is read next
		{`\t`, separator, 0, 2},
		{`\u00a0`, separator, 0, 6},
		{`\n`, other, 0, 2},
		{`\\`, other, 0, 2},
		{`\u12G4`, other, 0, 1}, // no escape: the backslash alone
		{`\`, other, 0, 1},
		{`\x`, other, 0, 1},
	}
	for _, tt := range tests {
		k, v, size := charAt(tt.in, 0)
		if k != tt.kind || v != tt.val || size != tt.size {
			t.Errorf("charAt(%q) = %d, %d, %d; want %d, %d, %d", tt.in, k, v, size, tt.kind, tt.val, tt.size)
		}
	}
}

// TestChineseStaysOnTheFastPath keeps the promise stringStop and digitLead make:
// no byte that starts a Chinese character, or continues any character, needs a
// closer look.
func TestChineseStaysOnTheFastPath(t *testing.T) {
	for c := 0x80; c < 0xC0; c++ {
		if digitLead[c] || stringStop[c] {
			t.Errorf("continuation byte %#x stops the scan", c)
		}
	}
	for c := 0xE4; c <= 0xE9; c++ {
		if digitLead[c] || stringStop[c] {
			t.Errorf("lead byte %#x of Chinese text stops the scan", c)
		}
	}
}

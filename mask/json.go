package mask

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit, so that every body json.Valid accepts
// is masked, and a body of a million '[' is an error rather than a deep stack.
const maxDepth = 10000

// JSON appends src to dst with the rules applied; changed reports whether anything
// was masked, and when it is false what was appended is src itself. Everything not
// masked is kept byte for byte: member order, white space, number spellings,
// escapes. A number in a masked field, and with DetectMobile any number that is or
// spells a mobile number, becomes a string ("138****5678"), since a JSON number
// cannot hold a star. When src is not valid JSON (as json.Valid sees
// it) JSON returns an error, and what it appended to dst is unspecified.
func (m *Masker) JSON(dst, src []byte) ([]byte, bool, error) {
	return m.rewrite(dst, src, false)
}

// rewrite is JSON, or, forLog, the masking of a log value's JSON form: there, as
// everywhere in logs, mobile numbers are always looked for, and ID-card numbers in
// numbers too.
func (m *Masker) rewrite(dst, src []byte, forLog bool) ([]byte, bool, error) {
	var w *rewriter
	if m == nil {
		m = &Masker{}
	} else {
		w, _ = m.rewriters.Get().(*rewriter)
	}
	if w == nil {
		w = new(rewriter)
	}
	*w = rewriter{src: src, dst: dst, members: m.members, mobile: m.mobile || forLog, idCard: m.idCard, numbers: forLog,
		dec: w.dec[:0], off: w.off[:0], key: w.key[:0]}
	changed, err := w.document()
	dst = w.dst
	w.src, w.dst = nil, nil
	if cap(w.dec) <= maxPooledScratch {
		m.rewriters.Put(w)
	}
	return dst, changed, err
}

// maxPooledScratch bounds the scratch a pooled rewriter keeps, so one huge escaped
// string does not pin its buffers for the life of the process.
const maxPooledScratch = 64 << 10

func (w *rewriter) document() (changed bool, err error) {
	if err := w.value(modeNone, 0); err != nil {
		return false, err
	}
	w.skipSpace()
	if w.pos < len(w.src) {
		return false, w.fail("after the top-level value")
	}
	w.dst = append(w.dst, w.src[w.copied:]...)
	return w.changed, nil
}

// rewriter is one pass over one body. It copies src to dst lazily: src[:copied]
// is already in dst, so an unmasked body costs one copy at the end, and a masked
// one a copy of each stretch between masks.
type rewriter struct {
	src, dst []byte
	pos      int // next byte of src to read
	copied   int
	changed  bool

	members map[string]mode
	mobile  bool
	idCard  bool
	numbers bool

	// Scratch for strings with escapes: decoded units, their offsets, member names.
	dec []byte
	off []int
	key []byte

	find finder[[]byte]
}

type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("mask: invalid JSON at offset %d: %s", e.offset, e.msg)
}

// fail reports the byte at w.pos as unexpected. The message names one byte and an
// offset, never more of the body, so logging it cannot leak what was to be masked.
func (w *rewriter) fail(where string) error {
	if w.pos >= len(w.src) {
		return &syntaxError{w.pos, "unexpected end of input"}
	}
	msg := fmt.Sprintf("unexpected byte 0x%02x", w.src[w.pos])
	if c := w.src[w.pos]; c >= 0x20 && c < 0x7f {
		msg = fmt.Sprintf("unexpected %q", c)
	}
	if where != "" {
		msg += " " + where
	}
	return &syntaxError{w.pos, msg}
}

func (w *rewriter) skipSpace() {
	for w.pos < len(w.src) {
		switch w.src[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *rewriter) value(md mode, depth int) error {
	w.skipSpace()
	if w.pos >= len(w.src) {
		return w.fail("")
	}
	switch c := w.src[w.pos]; c {
	case '{':
		return w.object(md, depth+1)
	case '[':
		return w.array(md, depth+1)
	case '"':
		return w.stringValue(md)
	case 't':
		return w.literal("true")
	case 'f':
		return w.literal("false")
	case 'n':
		return w.literal("null")
	default:
		if c == '-' || isDigit(c) {
			return w.number(md)
		}
		return w.fail("looking for a value")
	}
}

func (w *rewriter) object(md mode, depth int) error {
	if empty, err := w.open('}', depth); empty || err != nil {
		return err
	}
	for {
		if w.pos >= len(w.src) || w.src[w.pos] != '"' {
			return w.fail("looking for a member name")
		}
		start := w.pos
		flags, err := w.scanString()
		if err != nil {
			return err
		}
		raw := w.src[start+1 : w.pos-1]
		child := md
		if w.members != nil {
			if k := w.memberMode(raw, flags&strEscaped != 0); k > child {
				child = k
			}
		}
		// Names are looked up first, then masked: a member named by its phone
		// number ({"13812345678": {...}}) is as much a leak as a value.
		if flags&strDigit != 0 && (w.mobile || w.idCard) {
			w.maskText(start+1, raw)
		}
		w.skipSpace()
		if w.pos >= len(w.src) || w.src[w.pos] != ':' {
			return w.fail("after a member name")
		}
		w.pos++
		if err := w.value(child, depth); err != nil {
			return err
		}
		if done, err := w.next('}', "after an object member"); done || err != nil {
			return err
		}
		w.skipSpace()
	}
}

func (w *rewriter) array(md mode, depth int) error {
	if empty, err := w.open(']', depth); empty || err != nil {
		return err
	}
	for {
		if err := w.value(md, depth); err != nil {
			return err
		}
		if done, err := w.next(']', "after an array element"); done || err != nil {
			return err
		}
	}
}

// open steps over the '{' or '[' at w.pos and the space after it, refusing nesting
// deeper than maxDepth, and reports whether the container is empty (its closing
// byte next, then stepped over too).
func (w *rewriter) open(closing byte, depth int) (empty bool, err error) {
	if depth > maxDepth {
		return false, &syntaxError{w.pos, fmt.Sprintf("nested deeper than %d", maxDepth)}
	}
	w.pos++
	w.skipSpace()
	if w.pos < len(w.src) && w.src[w.pos] == closing {
		w.pos++
		return true, nil
	}
	return false, nil
}

// next steps over the space and the ',' or closing byte after a member or element,
// and reports whether that was the container's end; anything else fails with what.
func (w *rewriter) next(closing byte, what string) (done bool, err error) {
	w.skipSpace()
	if w.pos >= len(w.src) {
		return false, w.fail("")
	}
	switch w.src[w.pos] {
	case ',':
		w.pos++
		return false, nil
	case closing:
		w.pos++
		return true, nil
	default:
		return false, w.fail(what)
	}
}

func (w *rewriter) literal(lit string) error {
	if !hasPrefixAt(w.src, w.pos, lit) {
		return w.fail("looking for " + lit)
	}
	w.pos += len(lit)
	return nil
}

// memberMode is how the value of the member named raw is masked.
func (w *rewriter) memberMode(raw []byte, escaped bool) mode {
	if !escaped {
		return w.members[string(raw)] // no allocation for the lookup
	}
	w.key = appendUnescaped(w.key[:0], raw)
	return w.members[string(w.key)]
}

// Flags scanString reports about a string's content.
const (
	strEscaped = 1 << iota // has a backslash escape
	strDigit               // has a decimal digit, in any script, literal or escaped
)

// stringStop marks the bytes at which scanString must look closer: control
// characters, the quote, the backslash, and the bytes a digit can start with.
// Every other byte is stepped over, the fast path for text without digits; that
// includes Chinese text, whose lead bytes no digit shares.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'] = true
	for c := range 256 {
		t[c] = t[c] || digitLead[c]
	}
	return t
}()

// scanString validates the string starting at the quote at w.pos and moves past
// its closing quote.
func (w *rewriter) scanString() (flags int, err error) {
	src := w.src
	i := w.pos + 1
	stop := &stringStop
	for {
		for uint(i) < uint(len(src)) && !stop[src[i]] {
			i++
		}
		if i >= len(src) {
			w.pos = i
			return 0, w.fail("in a string")
		}
		switch c := src[i]; {
		case c == '"':
			w.pos = i + 1
			return flags, nil
		case c == '\\':
			flags |= strEscaped
			if i+1 >= len(src) {
				w.pos = len(src)
				return 0, w.fail("")
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(src) || !isHex(src[k]) {
						w.pos = k
						return 0, w.fail("in a \\u escape")
					}
				}
				// Most escapes are of letters in blocks without digits (\u5f20):
				// their first two hex digits say so.
				if flags&strDigit == 0 {
					if b := hexVal[src[i+2]]<<4 | hexVal[src[i+3]]; (ndBlocks[b] || b >= 0xD8 && b <= 0xDB) && escapedDigit(src, i) {
						flags |= strDigit
					}
				}
				i += 6
			default:
				w.pos = i + 1
				return 0, w.fail("after a backslash")
			}
		case c < 0x20:
			w.pos = i
			return 0, w.fail("in a string (control characters must be escaped)")
		case c < utf8.RuneSelf:
			flags |= strDigit
			i++
		default:
			i, flags = scanLead(src, i, flags)
		}
	}
}

// scanLead steps over the byte src[i], beyond ASCII, that a digit can start with,
// and adds strDigit to flags when a digit does (full-width punctuation shares
// its lead byte with full-width digits, so this runs in most Chinese text). It is
// kept out of scanString so that the loop there stays small.
//
// The character is decoded without checking its continuation bytes: on a
// malformed one the answer may be a digit that the finder will not see, which
// costs a closer look and nothing else, and the scan goes on from the next byte,
// where a quote or backslash inside it is found.
//
//go:noinline
func scanLead(src []byte, i, flags int) (int, int) {
	if flags&strDigit != 0 {
		return i + 1, flags
	}
	var r rune
	switch c := src[i]; {
	case c < 0xE0 && i+1 < len(src):
		r = rune(c&0x1F)<<6 | rune(src[i+1]&0x3F)
	case c < 0xF0 && i+2 < len(src):
		r = rune(c&0x0F)<<12 | rune(src[i+1]&0x3F)<<6 | rune(src[i+2]&0x3F)
	default:
		r, _ = utf8.DecodeRune(src[i:])
	}
	if digitValue(r) >= 0 {
		flags |= strDigit
	}
	return i + 1, flags
}

// escapedDigit reports whether the \u escape at src[i], its four hex digits
// checked, is a decimal digit, alone or as the first half of a surrogate pair
// (mathematical digits, 𝟏 = \ud835\udfcf).
func escapedDigit(src []byte, i int) bool {
	r := hex4(src[i+2:])
	if r < 0xD800 || r >= 0xDC00 {
		return digitValue(r) >= 0
	}
	if i+12 > len(src) || src[i+6] != '\\' || src[i+7] != 'u' {
		return false
	}
	// The second half is checked when the scan reaches it; unchecked, hex4 of
	// anything is some rune, and a wrong answer only costs a closer look.
	low := hex4(src[i+8:])
	return low >= 0xDC00 && low < 0xE000 && digitValue(0x10000+(r-0xD800)<<10+(low-0xDC00)) >= 0
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (w *rewriter) stringValue(md mode) error {
	start := w.pos
	flags, err := w.scanString()
	if err != nil {
		return err
	}
	end := w.pos
	raw := w.src[start+1 : end-1]
	escaped := flags&strEscaped != 0
	switch md {
	case modeField:
		dec, off := raw, []int(nil)
		if escaped {
			w.dec, w.off = appendUnits(w.dec[:0], w.off[:0], raw)
			dec, off = w.dec, w.off
		}
		out := w.replaceFrom(start)
		w.dst = appendField(w.dst, raw, dec, off)
		w.replaced(out, start, end)
	case modeName:
		out := w.replaceFrom(start)
		w.dst = appendName(w.dst, raw, escaped)
		w.replaced(out, start, end)
	default:
		if flags&strDigit != 0 && (w.mobile || w.idCard) {
			w.maskText(start+1, raw)
		}
	}
	return nil
}

func (w *rewriter) number(md mode) error {
	start := w.pos
	frac, exp, err := w.scanNumber()
	if err != nil {
		return err
	}
	raw := w.src[start:w.pos]
	switch {
	case md == modeField:
		out := w.replaceFrom(start)
		w.dst = appendField(w.dst, raw, raw, nil)
		w.replaced(out, start, w.pos)
	case w.mobile && (exp || len(raw) >= 11):
		// Shorter and without an exponent, it has too few digits to be a phone.
		w.maskNumber(start, raw, !frac && !exp)
	}
	return nil
}

// scanNumber validates the number at w.pos (JSON's grammar: no leading zeros, no
// bare dot, no hex), moves past it, and reports whether it has a fraction and an
// exponent.
func (w *rewriter) scanNumber() (frac, exp bool, err error) {
	src := w.src
	i := w.pos
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && isDigit(src[i]):
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	default:
		w.pos = i
		return false, false, w.fail("in a number")
	}
	if i < len(src) && src[i] == '.' {
		frac = true
		i++
		if i >= len(src) || !isDigit(src[i]) {
			w.pos = i
			return false, false, w.fail("after a decimal point")
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		exp = true
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || !isDigit(src[i]) {
			w.pos = i
			return false, false, w.fail("in an exponent")
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	w.pos = i
	return frac, exp, nil
}

// maskText stars the numbers the detectors find in the string content raw, which
// starts at src[base]. The finder reads escapes itself, so an escaped digit
// (\u0031, \uff11) is starred whole and everything else keeps its spelling.
func (w *rewriter) maskText(base int, raw []byte) {
	f := &w.find
	f.reset(raw, w.mobile, w.idCard)
	for f.find() {
		w.star(base+f.a, base+f.b, f.stars)
	}
}

// star replaces src[a:b] with n stars.
func (w *rewriter) star(a, b, n int) {
	w.dst = append(w.dst, w.src[w.copied:a]...)
	w.dst = appendStars(w.dst, n)
	w.copied = b
	w.changed = true
}

// replaceFrom starts writing a JSON string in place of the value at src[start:]
// and returns where it starts in dst.
func (w *rewriter) replaceFrom(start int) int {
	w.dst = append(w.dst, w.src[w.copied:start]...)
	out := len(w.dst)
	w.dst = append(w.dst, '"')
	return out
}

// replaced closes the string begun at dst[out] in place of src[start:end]. A value
// that comes out as it went in (an empty name, an already masked phone) does not
// count as a change.
func (w *rewriter) replaced(out, start, end int) {
	w.dst = append(w.dst, '"')
	w.copied = end
	if !bytes.Equal(w.dst[out:], w.src[start:end]) {
		w.changed = true
	}
}

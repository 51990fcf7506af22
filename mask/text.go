package mask

import "strings"

// Text appends src to dst with every mainland mobile number masked and, when the
// rules detect ID cards, every ID-card number; changed reports whether anything
// was. Numbers are found in any digit form and grouping (see the package comment);
// each masked digit becomes one star, so an ASCII digit keeps its width and a
// full-width or escaped one shrinks to a '*'. Nothing else changes. It is for
// bodies that are not JSON, or claim to be and do not parse, and for lines of a
// stream; JSON escapes are read as the digits they stand for, so the lines of a
// JSON stream are masked as their client will decode them.
func (m *Masker) Text(dst, src []byte) ([]byte, bool) {
	f := finder[[]byte]{s: src, mobile: true, idCard: m.idCards(), lastStar: -1}
	if !f.find() {
		return append(dst, src...), false
	}
	copied := 0
	for ok := true; ok; ok = f.find() {
		dst = append(dst, src[copied:f.a]...)
		dst = appendStars(dst, f.stars)
		copied = f.b
	}
	return append(dst, src[copied:]...), true
}

// String is Text for a string. It returns s itself, without allocating, when there
// is nothing to mask, which is nearly always: it runs on every log attribute.
func (m *Masker) String(s string) string {
	out, _ := m.maskString(s)
	return out
}

// maskString is String that also says whether s changed, so callers need not
// compare the strings.
func (m *Masker) maskString(s string) (string, bool) {
	// Every digit starts with a byte digitLead marks, and a number has eleven
	// digits: most log values are turned down before a finder is set up.
	i := 0
	for i < len(s) && !digitLead[s[i]] {
		i++
	}
	if len(s)-i < 11 {
		return s, false
	}
	return m.maskDigitString(s, i)
}

// maskDigitString is maskString for a string that may hold a number from s[i] on.
func (m *Masker) maskDigitString(s string, i int) (string, bool) {
	f := finder[string]{s: s, i: i, mobile: true, idCard: m.idCards(), lastStar: -1}
	if !f.find() {
		return s, false
	}
	var sb strings.Builder
	sb.Grow(len(s))
	copied := 0
	for ok := true; ok; ok = f.find() {
		sb.WriteString(s[copied:f.a])
		for range f.stars {
			sb.WriteByte('*')
		}
		copied = f.b
	}
	sb.WriteString(s[copied:])
	return sb.String(), true
}

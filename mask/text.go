package mask

import "strings"

// Text appends src to dst with every mainland mobile number masked and, when the
// rules detect ID cards, every ID-card number; changed reports whether anything
// was. Only digits are replaced, one star each, so the text keeps its length and
// layout. It is for bodies that are not JSON, or claim to be and do not parse.
func (m *Masker) Text(dst, src []byte) ([]byte, bool) {
	idCard := m.idCards()
	a, b, end := nextMatch(src, 0, true, idCard)
	if a < 0 {
		return append(dst, src...), false
	}
	copied := 0
	for ; a >= 0; a, b, end = nextMatch(src, end, true, idCard) {
		dst = append(dst, src[copied:a]...)
		dst = appendStars(dst, b-a)
		copied = b
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
	idCard := m.idCards()
	a, b, end := nextMatch(s, 0, true, idCard)
	if a < 0 {
		return s, false
	}
	var sb strings.Builder
	sb.Grow(len(s))
	copied := 0
	for ; a >= 0; a, b, end = nextMatch(s, end, true, idCard) {
		sb.WriteString(s[copied:a])
		sb.WriteString(stars[:b-a]) // at most 11: an ID card's middle
		copied = b
	}
	sb.WriteString(s[copied:])
	return sb.String(), true
}

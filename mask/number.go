package mask

// maskNumber masks the JSON number raw at src[start:] outside phone fields, when
// mobile numbers are detected: a number is a phone as much as a string is, and a
// JSON number cannot hold a star, so one that is, or holds, a mobile number
// becomes a string. When its value is one (13812345678, -1.3812345678E10,
// 8613812345678.0, 1381234567.8e1) the string is the number's plain masked form,
// "138****5678" or "86138****5678"; otherwise, when its spelling holds one as text
// does (1381234.5678), it is that spelling masked, "138****.5678". In a log
// value, ID-card numbers are masked in numbers as well (110***********1234).
func (w *rewriter) maskNumber(start int, raw []byte, integer bool) {
	idCard := w.idCard && w.numbers
	// An integer without fraction or exponent is one run of digits, its value:
	// the value says all there is about phones.
	plain := integer && !idCard
	if plain && !mobileInteger(raw) {
		return
	}
	if national, prefixed, ok := mobileValue(raw); ok {
		out := w.replaceFrom(start)
		if prefixed {
			w.dst = append(w.dst, "86"...)
		}
		w.dst = append(w.dst, national[:3]...)
		w.dst = append(w.dst, "****"...)
		w.dst = append(w.dst, national[7:]...)
		w.replaced(out, start, w.pos)
		return
	}
	if plain {
		return
	}
	f := &w.find
	f.reset(raw, true, idCard)
	if !f.find() {
		return
	}
	out := w.replaceFrom(start)
	copied := 0
	for ok := true; ok; ok = f.find() {
		w.dst = append(w.dst, raw[copied:f.a]...)
		w.dst = appendStars(w.dst, f.stars)
		copied = f.b
	}
	w.dst = append(w.dst, raw[copied:]...)
	w.replaced(out, start, w.pos)
}

// mobileInteger is mobileValue's quick answer for a number spelt as an integer,
// the usual case (an id, a millisecond timestamp): whether it may be one.
func mobileInteger(raw []byte) bool {
	if raw[0] == '-' {
		raw = raw[1:]
	}
	if len(raw) == 13 && raw[0] == '8' && raw[1] == '6' {
		raw = raw[2:]
	}
	return len(raw) == 11 && raw[0] == '1' && raw[1] >= '3'
}

// mobileValue reports whether the valid JSON number raw has as its value a mainland
// mobile number, 86 in front or not (a sign is ignored), and returns its 11
// national digits.
func mobileValue(raw []byte) (national [11]byte, prefixed, ok bool) {
	i := 0
	if raw[i] == '-' {
		i++
	}
	// The mantissa's digits, the integer part then the fraction, and where the
	// point is among them.
	intStart := i
	for i < len(raw) && isDigit(raw[i]) {
		i++
	}
	intEnd, fracStart, fracEnd := i, i, i
	if i < len(raw) && raw[i] == '.' {
		fracStart = i + 1
		for i = fracStart; i < len(raw) && isDigit(raw[i]); i++ {
		}
		fracEnd = i
	}
	exp := 0
	if i < len(raw) {
		i++ // e or E
		neg := raw[i] == '-'
		if raw[i] == '-' || raw[i] == '+' {
			i++
		}
		for ; i < len(raw); i++ {
			if exp < 1<<20 { // far beyond any phone; stops overflow
				exp = exp*10 + int(raw[i]-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	mantissa := func(k int) byte { // digit k of the mantissa
		if k < intEnd-intStart {
			return raw[intStart+k]
		}
		return raw[fracStart+k-(intEnd-intStart)]
	}
	n := intEnd - intStart + fracEnd - fracStart
	first, last := 0, n-1
	for first < n && mantissa(first) == '0' {
		first++
	}
	for last >= first && mantissa(last) == '0' {
		last--
	}
	if first > last {
		return national, false, false // zero
	}
	// The value is mantissa[first..last] followed by zeros zeros.
	zeros := exp + (intEnd - intStart) - 1 - last
	size := last - first + 1 + zeros
	if zeros < 0 || size != 11 && size != 13 {
		return national, false, false
	}
	var digits [13]byte
	for k := range size {
		digits[k] = '0'
		if k <= last-first {
			digits[k] = mantissa(first + k)
		}
	}
	d := digits[:size]
	if size == 13 {
		if d[0] != '8' || d[1] != '6' {
			return national, false, false
		}
		d, prefixed = d[2:], true
	}
	if d[0] != '1' || d[1] < '3' {
		return national, false, false
	}
	copy(national[:], d)
	return national, prefixed, true
}

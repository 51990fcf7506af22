package mask

// idCardAt matches a resident ID-card number at the run of digits first..last,
// which ends at s[end]: 18 digits, or 17 and a check character X or x, or the older
// 15 digits. a..b-1 are the digits to star: all but the first 3 and the last 4
// characters (110***********1234).
//
// Order numbers are often 18 digits too, so the birth date inside must look like
// one (year 19xx or 20xx in the 18-digit form, month 01-12, day 01-31) and the
// region code cannot start with 0. The check digit is not verified on purpose: a
// mistyped ID number is still somebody's ID number.
func (f *finder[T]) idCardAt(first, last, end int) (a, b int, ok bool) {
	size := last - first + 1
	switch {
	case size == 18, size == 17 && f.checkX(end):
		y := 10*f.val(first+6) + f.val(first+7)
		if y != 19 && y != 20 || !f.monthDay(first+10) {
			return 0, 0, false
		}
		size = 18
	case size == 15:
		if !f.monthDay(first + 8) {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	if f.val(first) == 0 {
		return 0, 0, false
	}
	return first + 3, first + size - 4, true
}

// checkX reports whether s[i] is the check character X (or x) and no digit
// follows it.
func (f *finder[T]) checkX(i int) bool {
	if i >= len(f.s) {
		return false
	}
	r, size := runeAt(f.s, i)
	if r != 'X' && r != 'x' {
		return false
	}
	if i += size; i < len(f.s) {
		if k, _, _ := charAt(f.s, i); k == digitChar {
			return false
		}
	}
	return true
}

// monthDay reports whether the four digits from digit k are a plausible MMDD.
func (f *finder[T]) monthDay(k int) bool {
	month := 10*f.val(k) + f.val(k+1)
	day := 10*f.val(k+2) + f.val(k+3)
	return month >= 1 && month <= 12 && day >= 1 && day <= 31
}

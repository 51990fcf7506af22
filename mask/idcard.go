package mask

// idCardAt matches a resident ID-card number at the run of digits s[i:j]: 18
// digits, or 17 and a check character X or x, or the older 15 digits. a:b is
// everything but the first 3 and last 4 characters (110***********1234).
//
// Order numbers are often 18 digits too, so the birth date inside must look like
// one (year 19xx or 20xx in the 18-digit form, month 01-12, day 01-31) and the
// region code cannot start with 0. The check digit is not verified on purpose: a
// mistyped ID number is still somebody's ID number.
func idCardAt[T text](s T, i, j int) (a, b, end int, ok bool) {
	size := j - i
	switch {
	case size == 18, size == 17 && j < len(s) && (s[j] == 'X' || s[j] == 'x') && (j+1 == len(s) || !isDigit(s[j+1])):
		y := s[i+6 : i+8]
		if string(y) != "19" && string(y) != "20" || !monthDay(s, i+10) {
			return 0, 0, 0, false
		}
		size = 18
	case size == 15:
		if !monthDay(s, i+8) {
			return 0, 0, 0, false
		}
	default:
		return 0, 0, 0, false
	}
	if s[i] == '0' {
		return 0, 0, 0, false
	}
	return i + 3, i + size - 4, i + size, true
}

// monthDay reports whether the four digits at s[k] are a plausible MMDD.
func monthDay[T text](s T, k int) bool {
	month := int(s[k]-'0')*10 + int(s[k+1]-'0')
	day := int(s[k+2]-'0')*10 + int(s[k+3]-'0')
	return month >= 1 && month <= 12 && day >= 1 && day <= 31
}

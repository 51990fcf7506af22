package mask

// appendName appends a personal name with its first character kept and every
// other one starred, one star per character so the length still reads right:
// 张三 -> 张*, 欧阳娜娜 -> 欧***. raw is JSON string content when escaped, and an
// escape counts as the one character it stands for.
func appendName(dst, raw []byte, escaped bool) []byte {
	if len(raw) == 0 {
		return dst
	}
	first := charLen(raw, 0, escaped)
	dst = append(dst, raw[:first]...)
	for i := first; i < len(raw); i += charLen(raw, i, escaped) {
		dst = append(dst, '*')
	}
	return dst
}

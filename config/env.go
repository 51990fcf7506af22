package config

import (
	"fmt"
	"strings"
)

// expand replaces ${NAME} and ${NAME:-default} in s with values from lookup, and $$
// with a literal $. It returns one message per reference it could not expand, so a
// value naming two missing variables reports both.
//
// As in the shell, the default is used when NAME is unset or empty; a lone $ not
// followed by { or $ is kept, so values such as regular expressions mostly need no
// escaping.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var errs []string
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				errs = append(errs, `unterminated "${" (write $$ for a literal $)`)
				return s, errs
			}
			ref := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(ref, ":-")
			if !validEnvName(name) {
				errs = append(errs, fmt.Sprintf("bad environment variable reference ${%s} (want ${NAME} or ${NAME:-default}; $$ for a literal $)", ref))
			} else if val, ok := lookup(name); ok && (val != "" || !hasDef) {
				b.WriteString(val)
			} else if hasDef {
				b.WriteString(def)
			} else {
				errs = append(errs, fmt.Sprintf("environment variable %s is not set", name))
			}
			i += 2 + end + 1
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), errs
}

// validEnvName reports whether name is a portable environment variable name.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

package route

import "strings"

// Table is an ordered list of patterns and their values: the first match wins.
type Table[T any] struct {
	entries []entry[T]
}

type entry[T any] struct {
	pattern Pattern
	value   T
}

// Add appends pattern p with value v; earlier entries take precedence.
func (t *Table[T]) Add(p Pattern, v T) {
	t.entries = append(t.entries, entry[T]{p, v})
}

// Len returns the number of entries.
func (t *Table[T]) Len() int { return len(t.entries) }

// Lookup returns the value of the first pattern matching method and path, a
// request's decided form (Decide).
func (t *Table[T]) Lookup(method, path string) (v T, ok bool) {
	if i := t.Index(method, path); i >= 0 {
		return t.entries[i].value, true
	}
	return v, false
}

// Set is a list of patterns; it matches when any of them does (a role's allow list).
type Set []Pattern

// Match reports whether any pattern in s matches method and path.
func (s Set) Match(method, path string) bool {
	for i := range s {
		if s[i].Match(method, path) {
			return true
		}
	}
	return false
}

// Folded returns t with every pattern's literal path segments lower-cased, in the
// same order and with the same values: the table a framework that routes without
// regard to letter case would use.
func (t *Table[T]) Folded() *Table[T] {
	f := &Table[T]{entries: make([]entry[T], 0, len(t.entries))}
	for _, e := range t.entries {
		method, path, _ := strings.Cut(e.pattern.raw, " ")
		f.entries = append(f.entries, entry[T]{MustParse(method + " " + strings.ToLower(path)), e.value})
	}
	return f
}

// Index returns the position of the first pattern matching method and path, or -1.
// Earlier entries take precedence, so a smaller index is a more specific route.
func (t *Table[T]) Index(method, path string) int {
	for i := range t.entries {
		if t.entries[i].pattern.Match(method, path) {
			return i
		}
	}
	return -1
}

// At returns the value of entry i, a position Index returned.
func (t *Table[T]) At(i int) T { return t.entries[i].value }

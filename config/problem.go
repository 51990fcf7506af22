package config

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config file, at a YAML path such as
// "routes[2].upstream" and its line (0 when the key is absent from the file).
type Problem struct {
	Path string
	Line int
	Msg  string
}

// String formats p as "path.to.key (line N): message", the form
// `signgate validate` prints.
func (p Problem) String() string {
	switch {
	case p.Path != "" && p.Line > 0:
		return p.Path + " (line " + strconv.Itoa(p.Line) + "): " + p.Msg
	case p.Path != "":
		return p.Path + ": " + p.Msg
	case p.Line > 0:
		return "line " + strconv.Itoa(p.Line) + ": " + p.Msg
	}
	return p.Msg
}

// Errors is every problem found in a config file, in line order.
type Errors []Problem

// Error returns one problem per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortByLine orders problems as a reader meets them in the file; problems about
// absent keys (line 0) have no place in it and go last.
func sortByLine(ps []Problem) {
	key := func(p Problem) int {
		if p.Line <= 0 {
			return math.MaxInt
		}
		return p.Line
	}
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(key(a), key(b)) })
}

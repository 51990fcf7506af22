package explain

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes e as plain text, for a terminal: the request, the route, then one
// block per caller with its checks in order and the answer.
func WriteText(w io.Writer, e *Explanation) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", e.Method, e.Target)
	if e.DecidedMethod != "" && (e.DecidedMethod != e.Method || e.DecidedPath != e.Path) {
		fmt.Fprintf(&b, "  decided as %s %s: routes, roles and limits see this form; the upstream gets the request as sent\n", e.DecidedMethod, e.DecidedPath)
	}
	for _, n := range e.Notes[:notesBefore(e)] {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if e.Refused != nil {
		fmt.Fprintf(&b, "refused before routing: %s\n", e.Refused)
		for _, n := range e.Notes[notesBefore(e):] {
			fmt.Fprintf(&b, "  %s\n", n)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	rt := e.Route
	fmt.Fprintf(&b, "route: %s (routes[%d], match %q)\n", rt.Name, e.RouteIndex, rt.Match)
	fmt.Fprintf(&b, "  sends to %s\n", e.Sends)
	b.WriteString("  for every caller, first:\n")
	for _, c := range e.Before {
		fmt.Fprintf(&b, "    - %s\n", c)
	}
	for _, c := range e.Callers {
		fmt.Fprintf(&b, "\n%s:\n", c.Who)
		for i, check := range c.Checks {
			fmt.Fprintf(&b, "  %d. %s\n", i+1, check)
		}
		if c.Refused != nil {
			fmt.Fprintf(&b, "  => refused: %s\n", c.Refused)
			continue
		}
		for _, a := range c.After {
			fmt.Fprintf(&b, "  - %s\n", a)
		}
		fmt.Fprintf(&b, "  => sent to %s\n", short(e))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// notesBefore is how many of e.Notes come before the refusal: the last note of a
// refused request says what it still costs.
func notesBefore(e *Explanation) int {
	if e.Refused != nil && len(e.Notes) > 0 {
		return len(e.Notes) - 1
	}
	return len(e.Notes)
}

func short(e *Explanation) string {
	if e.Route.Daojia == "relay" {
		return "58到家 (relay)"
	}
	s := "upstream " + e.Route.Upstream
	if e.Route.Cache.Enabled && e.DecidedMethod == "GET" {
		s += ", or answered from the cache"
	}
	return s
}

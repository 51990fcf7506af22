// Package docscheck reads the links out of the repository's Markdown, so a test can
// hold the documentation to the promise that a reader who clones the repository and
// nothing else has everything: every relative link names a file that is there, and
// every anchor a heading that is.
package docscheck

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Link is one link target in a Markdown file.
type Link struct {
	Line   int    // 1-based line of the link in the file
	Target string // as written: "docs/design.md#errors", "https://…", "#websocket"
}

// Local reports whether the link points into the repository: not a URL with a scheme
// (https:, mailto:) and not protocol-relative (//host).
func (l Link) Local() bool {
	if strings.HasPrefix(l.Target, "//") {
		return false
	}
	u, err := url.Parse(l.Target)
	return err == nil && u.Scheme == ""
}

// PathAndAnchor splits a local target into its unescaped path ("" for a link within
// the same file) and its anchor ("" for none).
func (l Link) PathAndAnchor() (path, anchor string, err error) {
	p, a, _ := strings.Cut(l.Target, "#")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p, err = url.PathUnescape(p); err != nil {
		return "", "", err
	}
	if a, err = url.PathUnescape(a); err != nil {
		return "", "", err
	}
	return p, a, nil
}

var (
	fence = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	// inline is [text](target) or [text](target "title"), images included; text may
	// hold one level of brackets ([`x`] and [![badge](…)](…) both occur).
	inline = regexp.MustCompile(`\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refDef is a reference definition: [label]: target.
	refDef = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	// htmlLink is an href or src attribute of inline HTML.
	htmlLink = regexp.MustCompile(`(?:href|src)\s*=\s*"([^"]+)"`)
	heading  = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	// explicitAnchor is <a id="x"> or <a name="x">, which make anchors too.
	explicitAnchor = regexp.MustCompile(`<a\s+(?:id|name)\s*=\s*"([^"]+)"`)
)

// Links returns every link target in markdown, in order, leaving out what is inside
// fenced code blocks and code spans.
func Links(markdown string) []Link {
	var prose []string // markdown with code blocks blanked, one entry per line
	forLines(markdown, func(n int, line string) {
		for len(prose) < n-1 {
			prose = append(prose, "")
		}
		prose = append(prose, line)
	})
	var out []Link
	for i, line := range strings.Split(blankCodeSpans(strings.Join(prose, "\n")), "\n") {
		n := i + 1
		if m := refDef.FindStringSubmatch(line); m != nil {
			out = append(out, Link{Line: n, Target: m[1]})
			continue
		}
		for _, m := range inline.FindAllStringSubmatch(line, -1) {
			out = append(out, Link{Line: n, Target: m[1]})
		}
		for _, m := range htmlLink.FindAllStringSubmatch(line, -1) {
			out = append(out, Link{Line: n, Target: m[1]})
		}
	}
	return out
}

// blankCodeSpans replaces each code span, backticks included, with spaces (keeping
// its line breaks, so line numbers hold). A span closes at the next run of as many
// backticks, on the same line or a later one of the same paragraph; a run without a
// match is literal text.
func blankCodeSpans(text string) string {
	b := []byte(text)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		run := 1
		for i+run < len(b) && b[i+run] == '`' {
			run++
		}
		end := closingRun(b, i+run, run)
		if end < 0 {
			i += run
			continue
		}
		for j := i; j < end; j++ {
			if b[j] != '\n' {
				b[j] = ' '
			}
		}
		i = end
	}
	return string(b)
}

// closingRun returns the index just past the first run of exactly n backticks at or
// after from, before the paragraph ends; -1 when there is none.
func closingRun(b []byte, from, n int) int {
	for j := from; j < len(b); {
		switch {
		case b[j] == '\n' && j+1 < len(b) && b[j+1] == '\n':
			return -1
		case b[j] != '`':
			j++
			continue
		}
		k := j
		for k < len(b) && b[k] == '`' {
			k++
		}
		if k-j == n {
			return k
		}
		j = k
	}
	return -1
}

// Anchors returns the anchors a Markdown file offers: GitHub's slug of each heading
// ("-1", "-2"… after repeats) and explicit <a id> / <a name> targets.
func Anchors(markdown string) map[string]bool {
	anchors := make(map[string]bool)
	seen := make(map[string]int)
	forLines(markdown, func(_ int, line string) {
		for _, m := range explicitAnchor.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			return
		}
		s := Slug(m[1])
		if k := seen[s]; k > 0 {
			anchors[s+"-"+strconv.Itoa(k)] = true
		} else {
			anchors[s] = true
		}
		seen[s]++
	})
	return anchors
}

// linkText turns [text](target) into text, so a heading's slug is made from what it
// shows.
var linkText = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)

// Slug is GitHub's anchor for a heading's text: links reduced to their text, lower
// case, every character that is not a letter, digit, mark, space, hyphen or
// underscore dropped, spaces made hyphens.
func Slug(heading string) string {
	heading = linkText.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// forLines calls f for each line outside fenced code blocks, with its 1-based number.
func forLines(markdown string, f func(n int, line string)) {
	var open string // the fence that opened the current code block, or ""
	for i, line := range strings.Split(markdown, "\n") {
		if m := fence.FindStringSubmatch(line); m != nil {
			switch {
			case open == "":
				open = m[1]
				continue
			case m[1][0] == open[0] && len(m[1]) >= len(open) && strings.TrimSpace(line[strings.Index(line, m[1])+len(m[1]):]) == "":
				open = ""
				continue
			}
		}
		if open == "" {
			f(i+1, line)
		}
	}
}

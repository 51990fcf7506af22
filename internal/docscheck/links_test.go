package docscheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the directory holding go.mod, found upwards from the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// documents are the Markdown files a reader of the repository follows links in: the
// README, everything under docs/, and deploy/README.md.
func documents(t *testing.T, root string) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "deploy", "README.md")}, docs...)
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v", err)
		}
	}
	if !slices.Contains(files, filepath.Join(root, "docs", "design.md")) {
		t.Fatal("docs/design.md is missing: the README's contract must be in the repository")
	}
	return files
}

// A reader who clones the repository and nothing else must be able to follow every
// relative link in its documentation: each names a file or directory inside the
// repository, and each anchor a heading of the file it points at.
func TestRelativeLinksResolve(t *testing.T) {
	root := repoRoot(t)
	anchorsOf := make(map[string]map[string]bool)
	anchors := func(path string) map[string]bool {
		if a, ok := anchorsOf[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		anchorsOf[path] = Anchors(string(b))
		return anchorsOf[path]
	}
	checked := 0
	for _, doc := range documents(t, root) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		for _, l := range Links(string(b)) {
			if !l.Local() {
				continue
			}
			checked++
			path, anchor, err := l.PathAndAnchor()
			if err != nil {
				t.Errorf("%s:%d: %q: %v", rel, l.Line, l.Target, err)
				continue
			}
			target := doc
			if path != "" {
				if filepath.IsAbs(path) {
					t.Errorf("%s:%d: %q is an absolute path; link relative to the file", rel, l.Line, l.Target)
					continue
				}
				target = filepath.Join(filepath.Dir(doc), filepath.FromSlash(path))
				if inside, _ := filepath.Rel(root, target); inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
					t.Errorf("%s:%d: %q points outside the repository", rel, l.Line, l.Target)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s:%d: %q: no such file in the repository", rel, l.Line, l.Target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !anchors(target)[anchor] {
				t.Errorf("%s:%d: %q: %s has no heading with anchor #%s", rel, l.Line, l.Target, filepath.Base(target), anchor)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the link reader is broken")
	}
}

func TestLinks(t *testing.T) {
	md := strings.Join([]string{
		"See [the design](docs/design.md#errors) and [`config.yaml`](config.yaml).", // 1
		"An image ![badge](img/b.svg \"title\") and <https://example.com>.",         // 2
		"In code: `[not](a-link.md)` stays text.",                                   // 3
		"```yaml",                  // 4
		"[not](inside-a-fence.md)", // 5
		"```",                      // 6
		"[ref]: ../outside.md",     // 7
		`<a href="deploy/">deploy</a> and [x](https://example.com/y) [here](#websocket)`, // 8
		"[`../shared/DESIGN.md`]: ../shared/DESIGN.md",                                   // 9
		"A span `websocket:", // 10
		"true` across lines, then [a link](#after-a-span).", // 11
		"An unmatched ` backtick and [another](x.md).",      // 12
		"", // 13: a paragraph ends; so does any code span
		"``double `tick` span [no](no.md)`` then [yes](yes.md)", // 14
	}, "\n")
	want := []Link{
		{1, "docs/design.md#errors"}, {1, "config.yaml"}, {2, "img/b.svg"},
		{7, "../outside.md"}, {8, "https://example.com/y"}, {8, "#websocket"}, {8, "deploy/"},
		{9, "../shared/DESIGN.md"}, {11, "#after-a-span"}, {12, "x.md"}, {14, "yes.md"},
	}
	got := Links(md)
	if !slices.Equal(got, want) {
		t.Errorf("Links =\n%v\nwant\n%v", got, want)
	}
	var local []string
	for _, l := range got {
		if l.Local() {
			local = append(local, l.Target)
		}
	}
	wantLocal := []string{"docs/design.md#errors", "config.yaml", "img/b.svg", "../outside.md", "#websocket", "deploy/", "../shared/DESIGN.md", "#after-a-span", "x.md", "yes.md"}
	if !slices.Equal(local, wantLocal) {
		t.Errorf("local links %v, want %v", local, wantLocal)
	}
}

func TestAnchors(t *testing.T) {
	md := strings.Join([]string{
		"# signgate — design and external contract",
		"## Outbound: the 58到家 relay",
		"### `hmac-sha256` (ours; recommended for partners)",
		"## Paths: one decision, one path",
		"## Errors",
		"## Errors",
		"```",
		"## not a heading",
		"```",
		`<a id="custom-anchor"></a>`,
		"## See [WebSocket](#websocket) too",
	}, "\n")
	a := Anchors(md)
	for _, want := range []string{
		"signgate--design-and-external-contract",
		"outbound-the-58到家-relay",
		"hmac-sha256-ours-recommended-for-partners",
		"paths-one-decision-one-path",
		"errors", "errors-1",
		"custom-anchor",
		"see-websocket-too",
	} {
		if !a[want] {
			t.Errorf("no anchor %q in %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a line inside a code block made an anchor")
	}
}

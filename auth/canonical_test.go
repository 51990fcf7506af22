package auth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestCanonicalQuery(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"no query", "", ""},
		{"already canonical", "a=1&b=2", "a=1&b=2"},
		{"sorted by name", "b=2&a=1", "a=1&b=2"},
		{"equal names sorted by value", "a=2&a=10&a=1", "a=1&a=10&a=2"},
		{"name before value: a sorts before a-b although '-' < '='", "a-b=0&a=1", "a=1&a-b=0"},
		{"plus is a space (form encoding), written %20", "q=hello+world", "q=hello%20world"},
		{"%20 and + are the same space", "q=hello%20world", "q=hello%20world"},
		{"an encoded plus stays a plus", "q=1%2B1", "q=1%2B1"},
		{"lower-case escapes become upper-case", "p=%e5%bc%a0", "p=%E5%BC%A0"},
		{"needless escapes of unreserved characters are decoded", "%61=%7E%2D%2E%5F", "a=~-._"},
		{"reserved characters are escaped", "redirect=https://x.example/a?b=c", "redirect=https%3A%2F%2Fx.example%2Fa%3Fb%3Dc"},
		{"raw UTF-8 is escaped byte by byte", "name=张", "name=%E5%BC%A0"},
		{"bytes that are not UTF-8 are kept", "b=%FF%00", "b=%FF%00"},
		{"a name without = has an empty value", "flag&a=1", "a=1&flag="},
		{"a name with = and no value is the same", "flag=&a=1", "a=1&flag="},
		{"empty parameters are skipped", "&&a=1&&b=2&", "a=1&b=2"},
		{"an empty name is kept", "=v&a=1", "=v&a=1"},
		{"only the first = separates", "a=b=c", "a=b%3Dc"},
		{"duplicates are all kept", "a=1&a=1", "a=1&a=1"},
		{"sorted by decoded bytes, not by their escapes", "a%E4%B8%AD=1&a~=2", "a~=2&a%E4%B8%AD=1"},
		{"an escaped & is data, not a separator", "q=a%26b=c", "q=a%26b%3Dc"},
		{"DESIGN.md style example", "b=2&a=1&a=0&name=%E5%BC%A0+%E4%B8%89", "a=0&a=1&b=2&name=%E5%BC%A0%20%E4%B8%89"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalQuery(tt.raw)
			if err != nil || got != tt.want {
				t.Fatalf("CanonicalQuery(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
			if ref, err := referenceCanonicalQuery(tt.raw); err != nil || ref != got {
				t.Fatalf("reference built on url.ParseQuery gives %q, %v", ref, err)
			}
		})
	}
}

func TestCanonicalQueryErrors(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"escape with a non-hex digit", "a=%zz", `invalid URL escape "%zz"`},
		{"escape cut short", "a=%4", `invalid URL escape "%4"`},
		{"lone percent at the end", "a=100%", `invalid URL escape "%"`},
		{"malformed escape in a name", "%g1=1", `invalid URL escape "%g1"`},
		{"semicolon separator", "a=1;b=2", "';' is not a parameter separator"},
		{"too many parameters", strings.Repeat("a=1&", 10000), "more than 10000 parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalQuery(tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CanonicalQuery(%q) = %q, %v; want an error containing %q", tt.raw, got, err, tt.want)
			}
			if _, err := url.ParseQuery(tt.raw); err == nil {
				t.Fatalf("url.ParseQuery accepts %q: the two must agree", tt.raw)
			}
		})
	}
}

// Up to 10 000 parameters are accepted, as url.ParseQuery accepts them.
func TestCanonicalQueryParameterLimit(t *testing.T) {
	raw := strings.TrimSuffix(strings.Repeat("a=1&", 10000), "&")
	if _, err := CanonicalQuery(raw); err != nil {
		t.Fatalf("10000 parameters: %v", err)
	}
}

// The query is on every signed request's path; a canonical one must cost nothing.
func TestCanonicalQueryAllocations(t *testing.T) {
	tests := []struct {
		raw  string
		want float64
	}{
		{"a=1&b=2&status=done", 0},
		{"status=done&b=2&a=1&name=%E5%BC%A0+%E4%B8%89", 1},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, func() { _, _ = CanonicalQuery(tt.raw) }); got > tt.want {
			t.Errorf("CanonicalQuery(%q) allocates %v times, want at most %v", tt.raw, got, tt.want)
		}
	}
}

// referenceCanonicalQuery is DESIGN.md's rule written the slow, obvious way on top of
// url.ParseQuery, to check CanonicalQuery against.
func referenceCanonicalQuery(raw string) (string, error) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return "", err
	}
	type pair struct{ name, value string }
	var pairs []pair
	for name, vs := range values {
		for _, v := range vs {
			pairs = append(pairs, pair{name, v})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	encode := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = encode(p.name) + "=" + encode(p.value)
	}
	return strings.Join(parts, "&"), nil
}

func FuzzCanonicalQuery(f *testing.F) {
	for _, seed := range []string{
		"", "a=1&b=2", "b=2&a=1&a=0&name=%E5%BC%A0+%E4%B8%89", "a", "=", "&&", "=&=",
		"a=%zz", "a=%", "a;b", "a~=1&a%E4%B8%AD=2", "%FF=%00", "x=a%26b%3Dc", "+=+",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := CanonicalQuery(raw)
		ref, refErr := referenceCanonicalQuery(raw)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("CanonicalQuery(%q) error %v, url.ParseQuery error %v: they must agree", raw, err, refErr)
		}
		if err != nil {
			return
		}
		if got != ref {
			t.Fatalf("CanonicalQuery(%q) = %q, reference %q", raw, got, ref)
		}
		for i := 0; i < len(got); i++ {
			switch c := got[i]; {
			case c == '%':
				if i+2 >= len(got) || !strings.ContainsRune("0123456789ABCDEF", rune(got[i+1])) || !strings.ContainsRune("0123456789ABCDEF", rune(got[i+2])) {
					t.Fatalf("CanonicalQuery(%q) = %q: bad escape at %d", raw, got, i)
				}
				i += 2
			case c == '=' || c == '&' || isUnreserved(c):
			default:
				t.Fatalf("CanonicalQuery(%q) = %q: byte %q at %d", raw, got, c, i)
			}
		}
		again, err := CanonicalQuery(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", raw, got, again, err)
		}
	})
}

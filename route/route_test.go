package route

import (
	"fmt"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		name, pattern, method, path string
		want                        bool
	}{
		{"exact path and method", "GET /api/services", "GET", "/api/services", true},
		{"other method refused", "GET /api/services", "POST", "/api/services", false},
		{"any method", "* /api/services", "DELETE", "/api/services", true},
		{"trailing slash is another path", "GET /api/services", "GET", "/api/services/", false},
		{"longer path refused", "GET /api/services", "GET", "/api/services/1", false},
		{"star matches one segment", "GET /api/orders/*", "GET", "/api/orders/42", true},
		{"star does not match two segments", "GET /api/orders/*", "GET", "/api/orders/42/status", false},
		{"star does not match an empty segment", "GET /api/orders/*", "GET", "/api/orders/", false},
		{"star in the middle", "PUT /api/orders/*/status", "PUT", "/api/orders/42/status", true},
		{"star in the middle, wrong tail", "PUT /api/orders/*/status", "PUT", "/api/orders/42/staff", false},
		{"double star matches the rest", "* /api/**", "GET", "/api/a/b/c", true},
		{"double star matches nothing more", "* /api/**", "GET", "/api", true},
		{"double star matches a trailing slash", "* /api/**", "GET", "/api/", true},
		{"double star needs a segment boundary", "* /api/**", "GET", "/apix", false},
		{"root", "GET /", "GET", "/", true},
		{"root is not everything", "GET /", "GET", "/x", false},
		{"catch-all", "* /**", "PATCH", "/anything/at/all", true},
		{"prefix of a literal refused", "GET /api/orders", "GET", "/api/order", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(tt.method, tt.path); got != tt.want {
				t.Errorf("%q.Match(%s %s) = %v, want %v", tt.pattern, tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, s := range []string{"", "GET", "/api", "get /api", "GET api", "GET /api/**/x", "GET /api/a*", "GET /api?x=1", "GET /../x", "GET  /x",
		"HEAD /api", "GET /api/", "GET /api//", "* /api/*/", "M-SEARCH /x", "GET2 /x"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) succeeded, want an error", s)
		}
	}
}

// A request is decided as the request it stands for: a trailing slash and HEAD
// for GET are the same request to routes and roles, whatever the table's order.
func TestDecide(t *testing.T) {
	tests := []struct{ name, method, path, wantMethod, wantPath string }{
		{"canonical already", "GET", "/api/orders/42", "GET", "/api/orders/42"},
		{"trailing slash", "GET", "/api/orders/42/", "GET", "/api/orders/42"},
		{"HEAD is GET", "HEAD", "/api/orders", "GET", "/api/orders"},
		{"HEAD with a trailing slash", "HEAD", "/api/", "GET", "/api"},
		{"root stays root", "GET", "/", "GET", "/"},
		{"only slashes", "GET", "///", "GET", "/"},
		{"several trailing slashes", "PUT", "/a//", "PUT", "/a"},
		{"other methods as they are", "POST", "/api/staff", "POST", "/api/staff"},
		{"letter case is not changed", "get", "/x/", "get", "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, p := Decide(tt.method, tt.path); m != tt.wantMethod || p != tt.wantPath {
				t.Errorf("Decide(%q, %q) = %q, %q, want %q, %q", tt.method, tt.path, m, p, tt.wantMethod, tt.wantPath)
			}
		})
	}
	var tab Table[string]
	tab.Add(MustParse("GET /api/signed"), "signed-only")
	tab.Add(MustParse("* /api/**"), "api")
	for _, path := range []string{"/api/signed", "/api/signed/"} {
		for _, method := range []string{"GET", "HEAD"} {
			if got, _ := tab.Lookup(Decide(method, path)); got != "signed-only" {
				t.Errorf("%s %s went to %q, want signed-only", method, path, got)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { Decide("HEAD", "/api/orders/42/") }); n != 0 {
		t.Errorf("Decide allocated %v times", n)
	}
}

func TestValidMethod(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": true, "PROPFIND": true, "": false, "get": false, "Get": false, "M-SEARCH": false,
		"GET2": false, "G(T": false, "GET ": false, "ＧＥＴ": false,
	} {
		if got := ValidMethod(m); got != want {
			t.Errorf("ValidMethod(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestTableFirstMatchWins(t *testing.T) {
	var tab Table[string]
	tab.Add(MustParse("POST /api/orders"), "orders-create")
	tab.Add(MustParse("* /api/**"), "api")
	for _, tt := range []struct{ method, path, want string }{
		{"POST", "/api/orders", "orders-create"},
		{"GET", "/api/orders", "api"},
		{"GET", "/other", ""},
	} {
		got, _ := tab.Lookup(tt.method, tt.path)
		if got != tt.want {
			t.Errorf("Lookup(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("GET /api/orders/*/status", "GET", "/api/orders/1/status")
	f.Add("* /api/**", "POST", "/api//x")
	f.Add("GET /", "GET", "")
	f.Fuzz(func(t *testing.T, pattern, method, path string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		got := p.Match(method, path)
		// A pattern always matches its own literal path when it has no wildcards.
		if !p.rest && got && p.method != "" && p.method != method {
			t.Fatalf("%q matched method %q", pattern, method)
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q, want %q", p.String(), pattern)
		}
	})
}

func BenchmarkTableLookup50(b *testing.B) {
	var tab Table[int]
	for i := 0; i < 49; i++ {
		tab.Add(MustParse(fmt.Sprintf("GET /api/v1/resource%d/*/items", i)), i)
	}
	tab.Add(MustParse("* /api/**"), 49)
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := tab.Lookup("POST", "/api/orders/42/status"); v != 49 {
			b.Fatal(v)
		}
	}
}

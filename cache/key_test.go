package cache

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func keyOf(t testing.TB, s *KeySpec, r Request) Key {
	t.Helper()
	k, err := s.Key(&r)
	if err != nil {
		t.Fatalf("Key(%+v): %v", r, err)
	}
	return k
}

func TestKeySameRequest(t *testing.T) {
	spec := &KeySpec{Route: "services", Salt: "s1", Vary: CanonicalVary([]string{"accept-language"})}
	base := Request{Method: "GET", Path: "/api/services", RawQuery: "city=sh&page=2", View: "full", Principal: "app",
		Header: http.Header{"Accept-Language": {"zh-CN"}}}
	tests := []struct {
		name string
		edit func(r *Request)
	}{
		{"query in another order", func(r *Request) { r.RawQuery = "page=2&city=sh" }},
		{"escapes of the same bytes", func(r *Request) { r.RawQuery = "city=%73%68&page=%32" }},
		{"empty parameters skipped", func(r *Request) { r.RawQuery = "&city=sh&&page=2&" }},
		{"headers the route does not vary by", func(r *Request) { r.Header = r.Header.Clone(); r.Header.Set("User-Agent", "x") }},
	}
	want := keyOf(t, spec, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.edit(&r)
			if got := keyOf(t, spec, r); got != want {
				t.Fatalf("key differs from the base request's")
			}
		})
	}
}

func TestKeyPlusIsASpace(t *testing.T) {
	spec := &KeySpec{Route: "services"}
	a := keyOf(t, spec, Request{Method: "GET", Path: "/s", RawQuery: "q=a+b"})
	b := keyOf(t, spec, Request{Method: "GET", Path: "/s", RawQuery: "q=a%20b"})
	if a != b {
		t.Fatal("q=a+b and q=a%20b have different keys; url.ParseQuery reads both as \"a b\"")
	}
}

func TestKeyDifferentRequests(t *testing.T) {
	spec := &KeySpec{Route: "services", Salt: "s1", Vary: CanonicalVary([]string{"Accept-Language"})}
	base := Request{Method: "GET", Path: "/api/services", RawQuery: "a=1&a=2", View: "full", Principal: "app",
		Header: http.Header{"Accept-Language": {"zh-CN"}}}
	tests := []struct {
		name string
		spec *KeySpec
		edit func(r *Request)
	}{
		{"another route", &KeySpec{Route: "services2", Salt: "s1", Vary: spec.Vary}, nil},
		{"another salt", &KeySpec{Route: "services", Salt: "s2", Vary: spec.Vary}, nil},
		{"another path", nil, func(r *Request) { r.Path = "/api/services/1" }},
		{"trailing slash sent", nil, func(r *Request) { r.Slash = true }},
		{"one name's values in another order", nil, func(r *Request) { r.RawQuery = "a=2&a=1" }},
		{"a value moved into the name", nil, func(r *Request) { r.RawQuery = "a=1&a%3D2=" }},
		{"masked view", nil, func(r *Request) { r.View = "masked" }},
		{"another client", nil, func(r *Request) { r.Principal = "ops" }},
		{"scope all", nil, func(r *Request) { r.Principal = "" }},
		{"gzip", nil, func(r *Request) { r.Encoding = "gzip" }},
		{"another language", nil, func(r *Request) { r.Header = http.Header{"Accept-Language": {"en"}} }},
		{"no language", nil, func(r *Request) { r.Header = http.Header{} }},
		{"language split in two lines", nil, func(r *Request) { r.Header = http.Header{"Accept-Language": {"zh", "CN"}} }},
		{"principal spelled into the view", nil, func(r *Request) { r.View, r.Principal = "fullapp", "" }},
	}
	want := keyOf(t, spec, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r := spec, base
			if tt.spec != nil {
				s = tt.spec
			}
			if tt.edit != nil {
				tt.edit(&r)
			}
			if keyOf(t, s, r) == want {
				t.Fatal("shares the base request's key")
			}
		})
	}
}

func TestKeyRefusesAmbiguousQueries(t *testing.T) {
	spec := &KeySpec{Route: "r"}
	for _, q := range []string{"a=1;b=2", "a=%zz", "a=%4", "%"} {
		if _, err := spec.Key(&Request{Method: "GET", Path: "/", RawQuery: q}); err == nil {
			t.Errorf("query %q: no error", q)
		}
	}
}

// reference is what a key must tell apart: a request as a Go upstream reads it.
type reference struct {
	route, salt, method, path string
	slash                     bool
	query                     url.Values
	encoding, view, principal string
	vary                      map[string][]string
}

// FuzzCacheKey holds the key builder to a reference reading of each request:
// two requests share a key exactly when a Go upstream would read them as one
// (url.ParseQuery's values, the same vary header values, and every other part
// equal); and reordering the parameters of different names never changes a key.
func FuzzCacheKey(f *testing.F) {
	f.Add("services", "GET", "/api/services", false, "city=sh&page=2", "page=2&city=sh", "zh", "zh", "full", "app", "app")
	f.Add("services", "GET", "/api/services", true, "a=1&a=2", "a=2&a=1", "", "", "masked", "", "")
	f.Add("r", "GET", "/", false, "a+b=c", "a%20b=c", "en", "en", "full", "x", "y")
	f.Add("r", "GET", "/x", false, "a=1&&b", "b=&a=1", "", "zh", "masked", "", "")
	f.Add("r\x00", "GET", "/x", false, "%41=1", "A=1", "", "", "full", "a\x00b", "a")
	f.Fuzz(func(t *testing.T, route, method, path string, slash bool, q1, q2, lang1, lang2, view, p1, p2 string) {
		spec := &KeySpec{Route: route, Salt: "salt", Vary: []string{"Accept-Language"}}
		mk := func(q, lang, principal string) (Request, reference, bool) {
			vals, err := url.ParseQuery(q)
			if err != nil || strings.Contains(q, ";") {
				return Request{}, reference{}, false
			}
			h := http.Header{}
			if lang != "" {
				h["Accept-Language"] = []string{lang}
			}
			r := Request{Method: method, Path: path, Slash: slash, RawQuery: q, Header: h, View: view, Principal: principal}
			ref := reference{route: route, salt: "salt", method: method, path: path, slash: slash, query: vals,
				view: view, principal: principal, vary: map[string][]string{"Accept-Language": h["Accept-Language"]}}
			return r, ref, true
		}
		r1, ref1, ok1 := mk(q1, lang1, p1)
		r2, ref2, ok2 := mk(q2, lang2, p2)
		if !ok1 || !ok2 {
			return
		}
		k1, err := spec.Key(&r1)
		if err != nil {
			t.Fatalf("Key(%q): %v", q1, err)
		}
		k2, err := spec.Key(&r2)
		if err != nil {
			t.Fatalf("Key(%q): %v", q2, err)
		}
		same := reflect.DeepEqual(ref1, ref2)
		if (k1 == k2) != same {
			t.Fatalf("keys equal: %v, requests the same: %v\n%+v\n%+v", k1 == k2, same, ref1, ref2)
		}

		// Reordering different names, keeping each name's values in order.
		params := strings.Split(q1, "&")
		byName := map[string][]string{}
		var names []string
		for _, p := range params {
			n, _, _ := strings.Cut(p, "=")
			dn, _ := url.QueryUnescape(n)
			if _, seen := byName[dn]; !seen {
				names = append(names, dn)
			}
			byName[dn] = append(byName[dn], p)
		}
		slices.Reverse(names)
		var shuffled []string
		for _, n := range names {
			shuffled = append(shuffled, byName[n]...)
		}
		r3 := r1
		r3.RawQuery = strings.Join(shuffled, "&")
		k3, err := spec.Key(&r3)
		if err != nil {
			t.Fatalf("Key(%q): %v", r3.RawQuery, err)
		}
		if k3 != k1 {
			t.Fatalf("reordering %q as %q changed the key", q1, r3.RawQuery)
		}
	})
}

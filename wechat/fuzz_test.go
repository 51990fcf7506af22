package wechat

import (
	"strings"
	"testing"
	"time"
)

// Whatever a caller puts after "Bearer ": nothing panics, nothing is found, and a
// logout of it ends no one's session.
func FuzzSessionToken(f *testing.F) {
	s := NewStore(StoreOptions{MaxSessions: 100, TTL: time.Hour})
	issued, _, err := s.Create(bg, alice)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		NewToken(), "", "Bearer " + NewToken(), strings.Repeat("A", 43), strings.Repeat("A", 44),
		issued[:42], issued + "=", strings.ToUpper(issued), hashHex(issued), "\x00\xff",
		// The same 32 bytes with the unused low bits of the last character set:
		// another spelling NewToken never makes.
		issued[:42] + "B",
	} {
		if seed != issued {
			f.Add(seed)
		}
	}
	f.Fuzz(func(t *testing.T, token string) {
		if token == issued {
			return
		}
		if _, ok, err := s.Lookup(bg, token); ok || err != nil {
			t.Fatalf("Lookup(%q) = %v, %v", token, ok, err)
		}
		if err := s.Logout(bg, token); err != nil {
			t.Fatalf("Logout(%q) = %v", token, err)
		}
		if _, ok, _ := s.Lookup(bg, issued); !ok {
			t.Fatalf("Logout(%q) ended another session", token)
		}
	})
}

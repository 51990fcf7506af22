package auth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/signgate/signgate/route"
)

func TestKeysLookup(t *testing.T) {
	app := &Client{ID: "property-miniapp"}
	keys, err := NewKeys(map[string]*Client{HashKey("app-key"): app})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key string
		want      *Client
	}{
		{"known key finds its client", "app-key", app},
		{"unknown key finds nothing", "other-key", nil},
		{"empty key finds nothing", "", nil},
		{"key differing in case finds nothing", "APP-KEY", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := keys.Lookup(tt.key)
			if got != tt.want || ok != (tt.want != nil) {
				t.Errorf("Lookup(%q) = %v, %v; want %v", tt.key, got, ok, tt.want)
			}
		})
	}
}

func TestNewKeysRefusesBadDigest(t *testing.T) {
	_, err := NewKeys(map[string]*Client{"abc": {ID: "x"}})
	if err == nil || !strings.Contains(err.Error(), `client "x"`) {
		t.Fatalf("err = %v, want one naming the client", err)
	}
}

func TestHashKeyKnownValue(t *testing.T) {
	// sha256("abc"), FIPS 180-2 appendix B.1.
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashKey = %s", got)
	}
}

func TestGenerateKeyIsUnique(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	if a == b || len(a) < 40 {
		t.Fatalf("weak keys %q %q", a, b)
	}
}

func TestAllowed(t *testing.T) {
	roles := map[string]Role{
		"resident_app": {Allow: route.Set{route.MustParse("GET /api/services"), route.MustParse("GET /api/orders/*")}},
		"provider":     {Allow: route.Set{route.MustParse("PUT /api/orders/*/status")}},
	}
	c := &Client{ID: "both", Allow: AllowSet(roles, []string{"resident_app", "provider"})}
	tests := []struct {
		name, method, path string
		want               bool
	}{
		{"first role's pattern", "GET", "/api/services", true},
		{"second role's pattern", "PUT", "/api/orders/7/status", true},
		{"method not granted", "DELETE", "/api/orders/7", false},
		{"path not granted", "GET", "/api/admin", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Allowed(tt.method, tt.path); got != tt.want {
				t.Errorf("Allowed(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

// BenchmarkRouteKeyRBAC is the per-request cost of the gateway's decision: route
// lookup in a 50-route table, API key lookup, and the RBAC check.
func BenchmarkRouteKeyRBAC(b *testing.B) {
	var table route.Table[string]
	for i := 0; i < 49; i++ {
		table.Add(route.MustParse(fmt.Sprintf("GET /api/v1/resource%d/*/items", i)), fmt.Sprint("r", i))
	}
	table.Add(route.MustParse("* /api/**"), "api")
	byHash := map[string]*Client{}
	var target *Client
	for i := 0; i < 100; i++ {
		c := &Client{ID: fmt.Sprint("client", i), Allow: route.Set{
			route.MustParse("GET /api/services"), route.MustParse("POST /api/orders"),
			route.MustParse("GET /api/orders/*"), route.MustParse("PUT /api/orders/*/status"),
		}}
		byHash[HashKey(fmt.Sprint("key-", i))] = c
		target = c
	}
	_ = target
	keys, err := NewKeys(byHash)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		name, ok := table.Lookup("PUT", "/api/orders/42/status")
		if !ok || name != "api" {
			b.Fatal("no route")
		}
		c, ok := keys.Lookup("key-99")
		if !ok || !c.Allowed("PUT", "/api/orders/42/status") {
			b.Fatal("denied")
		}
	}
}

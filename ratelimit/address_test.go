package ratelimit

import "testing"

func TestAddressKey(t *testing.T) {
	tests := []struct {
		name   string
		host   string
		prefix int
		want   string
	}{
		{"IPv4 is its own key", "203.0.113.7", 64, "203.0.113.7"},
		{"IPv4 ignores the IPv6 prefix", "203.0.113.7", 8, "203.0.113.7"},
		{"IPv4-mapped IPv6 is the IPv4 address", "::ffff:203.0.113.7", 64, "203.0.113.7"},
		{"IPv6 counts by its /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"},
		{"another address of the same /64", "2001:db8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"the next /64 is another key", "2001:db8:1:3::1", 64, "2001:db8:1:3::/64"},
		{"a zone does not make a new key", "fe80::1%eth0", 64, "fe80::/64"},
		{"upper-case spelling is the same key", "2001:DB8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"a /56", "2001:db8:1:2ff::1", 56, "2001:db8:1:200::/56"},
		{"prefix 128 is per address", "2001:db8::1", 128, "2001:db8::1"},
		{"a prefix out of range takes 64", "2001:db8:1:2::1", 0, "2001:db8:1:2::/64"},
		{"not an address is kept as given", "@", 64, "@"},
		{"empty stays empty", "", 64, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AddressKey(tt.host, tt.prefix); got != tt.want {
				t.Fatalf("AddressKey(%q, %d) = %q, want %q", tt.host, tt.prefix, got, tt.want)
			}
		})
	}
}

func TestAddressKeyIPv4AllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = AddressKey("203.0.113.7", 64) }); n != 0 {
		t.Fatalf("AddressKey on IPv4 allocates %v times, want 0", n)
	}
}

func BenchmarkAddressKey(b *testing.B) {
	for _, host := range []string{"203.0.113.7", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = AddressKey(host, 64)
			}
		})
	}
}

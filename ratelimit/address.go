package ratelimit

import "net/netip"

// DefaultIPv6Prefix is the prefix AddressKey counts IPv6 callers by when given none
// that fits an address: a /64, the block one host or one customer line is given.
const DefaultIPv6Prefix = 64

// AddressKey is the key a "key: ip" bucket is counted under for a caller at host (an
// IP address, as http.Request.RemoteAddr has it without the port). An IPv4 caller is
// counted per address. An IPv6 caller is counted per network of its first v6Prefix
// bits ("2001:db8:1:2::/64"): one host is handed a whole /64 and picks any address
// in it at will, so counting addresses would give one caller 2^64 budgets. A v6Prefix
// outside 1..128 is taken as DefaultIPv6Prefix; 128 counts every address. A host that
// is not an IP address is its own key.
func AddressKey(host string, v6Prefix int) string {
	addr, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return host
	case addr.Is4():
		return host // already the canonical form; no allocation on the common path
	case addr.Is4In6():
		return addr.Unmap().String()
	}
	if v6Prefix <= 0 || v6Prefix > 128 {
		v6Prefix = DefaultIPv6Prefix
	}
	addr = addr.WithZone("")
	if v6Prefix == 128 {
		return addr.String()
	}
	p, _ := addr.Prefix(v6Prefix) // cannot fail: an IPv6 address and 1..127 bits
	return p.String()
}

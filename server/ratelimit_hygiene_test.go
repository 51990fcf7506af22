package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/ratelimit"
)

// A route-wide budget (key: route) is spent only by requests the route accepts: a
// stranger with no key, a wrong key, or a key whose role may not call the route gets
// 401/403 and leaves the budget to the clients. Key guessing stays limited per
// address by the ip rule, which still runs before authentication.
func TestStrangersCannotSpendARouteBudget(t *testing.T) {
	up := okUpstream(t)
	g := startGateway(t, baseConfig(up.URL, `rate_limits:
  - {key: ip, rate: 1/h, burst: 30}
  - {key: route, routes: [orders-create], rate: 1/h, burst: 3}
`))
	strangers := []struct {
		name, key string
		status    int
		code      string
	}{
		{"no key", "", 401, "missing_credentials"},
		{"a guessed key", "guess-0000000000", 401, "unknown_key"},
		{"a client the route's role refuses", providerKey, 403, "forbidden"},
	}
	for round := range 4 {
		for _, s := range strangers {
			resp, body := g.do(t, "POST", "/api/orders", s.key, nil)
			what := fmt.Sprintf("%s (round %d)", s.name, round)
			wantEnvelopeAnswer(t, what, resp.StatusCode, resp.Header, body, s.status, s.code)
		}
	}
	// Twelve refused requests later, the client has the route's whole burst.
	for i := range 3 {
		resp, body := g.do(t, "POST", "/api/orders", appKey, nil)
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("client request %d after the strangers: %d %s, want 200 (the strangers spent the route's budget)", i+1, resp.StatusCode, body)
		}
		if got, want := resp.Header.Get("RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
			t.Errorf("client request %d: RateLimit-Remaining %q, want %s (the route budget, untouched by strangers)", i+1, got, want)
		}
		if got := resp.Header.Get("RateLimit-Limit"); got != "1" {
			t.Errorf("client request %d: RateLimit-Limit %q, want 1", i+1, got)
		}
	}
	// The budget still binds the clients who may spend it.
	resp, body := g.do(t, "POST", "/api/orders", appKey, nil)
	wantEnvelopeAnswer(t, "fourth client request", resp.StatusCode, resp.Header, body, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}

	// The ip rule runs before authentication: guessing is limited per address. The
	// 12 strangers and 4 client requests above spent 16 of the address's 30.
	for i := range 14 {
		if resp, body := g.do(t, "GET", "/api/services", fmt.Sprintf("guess-%010d", i), nil); resp.StatusCode != 401 {
			t.Fatalf("guess %d within the ip burst: %d %s, want 401", i, resp.StatusCode, body)
		}
	}
	resp, body = g.do(t, "GET", "/api/services", "guess-x", nil)
	wantEnvelopeAnswer(t, "guess past the ip burst", resp.StatusCode, resp.Header, body, http.StatusTooManyRequests, "rate_limited")
}

// The same on a 58到家 callback route: callbacks with a wrong signature are refused
// before the route's budget is counted, and 58到家's own callback still gets through.
func TestForgedCallbacksCannotSpendARouteBudget(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, signedConfig(up.URL, "http://127.0.0.1:1", "")+`rate_limits:
  - {key: route, routes: [callback], rate: 1/h, burst: 1}
`)
	for i := range 5 {
		forged, err := daojia.SignedBody([]byte(fmt.Sprintf(`{"orderId":"f%d"}`, i)), djKey, "", "not-the-secret", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, body := g.do(t, "POST", "/callbacks/daojia/order/status", "", bytes.NewReader(forged), "Content-Type", "application/json")
		wantEnvelopeAnswer(t, fmt.Sprintf("forged callback %d", i), resp.StatusCode, resp.Header, body, http.StatusUnauthorized, "invalid_signature")
	}
	genuine, err := daojia.SignedBody([]byte(`{"orderId":"o1","status":3}`), djKey, "", djSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, body := g.do(t, "POST", "/callbacks/daojia/order/status", "", bytes.NewReader(genuine), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("58到家's callback after forged ones: %d %s, want 200 (forgeries spent the route budget)", resp.StatusCode, body)
	}
	if got := resp.Header.Get("RateLimit-Remaining"); got != "0" {
		t.Errorf("RateLimit-Remaining %q, want 0: the genuine callback spent the burst of 1", got)
	}
	if hits := up.hits(); len(hits) != 1 || hits[0] != "/callbacks/daojia/order/status" {
		t.Fatalf("the upstream saw %q, want only the genuine callback", hits)
	}
}

// loopbackV6 adds addrs (each "addr/bits") to the loopback interface for the test
// and removes them afterwards. It needs root (CAP_NET_ADMIN); without it the test
// fails, saying so: IPv6 limits must be tested, not skipped.
func loopbackV6(t *testing.T, addrs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test adds IPv6 addresses to lo and must run as root (uid %d); run it in the dev container as root", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("this test adds IPv6 addresses to lo with iproute2's ip, which is not installed: %v", err)
	}
	for _, a := range addrs {
		out, err := exec.Command("ip", "-6", "addr", "add", a, "dev", "lo", "nodad").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -6 addr add %s dev lo: %v: %s (IPv6 disabled? see sysctl net.ipv6.conf.lo.disable_ipv6)", a, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "-6", "addr", "del", a, "dev", "lo").CombinedOutput(); err != nil {
				t.Errorf("ip -6 addr del %s dev lo: %v: %s", a, err, out)
			}
		})
	}
}

// testSubnets returns n /64 prefixes of fd00:5167::/32 no other test run uses.
func testSubnets(n int) []netip.Prefix {
	var b [4]byte
	_, _ = rand.Read(b[:])
	hi := binary.BigEndian.Uint32(b[:])
	out := make([]netip.Prefix, n)
	for i := range out {
		var a [16]byte
		a[0], a[1], a[2], a[3] = 0xfd, 0x00, 0x51, 0x67
		binary.BigEndian.PutUint32(a[4:], hi+uint32(i))
		out[i] = netip.PrefixFrom(netip.AddrFrom16(a), 64)
	}
	return out
}

// host returns the address ending in n in prefix p.
func host(p netip.Prefix, n byte) netip.Addr {
	a := p.Addr().As16()
	a[15] = n
	return netip.AddrFrom16(a)
}

// clientBoundTo returns a client whose connections come from src, for the gateway's TLS
// listener.
func clientBoundTo(t *testing.T, src netip.Addr) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// getFrom sends GET path from client and returns the status, headers and body.
func getFrom(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// ipLimitedConfig is a public route behind an ip rule of burst 2, the gateway
// listening on listen; extra goes under ratelimit:.
func ipLimitedConfig(upstreamURL, listen, ratelimit string) string {
	cfg := withOpenRoute(baseConfig(upstreamURL, fmt.Sprintf(`ratelimit: {redis_failure: local%s}
rate_limits:
  - {key: ip, rate: 1/h, burst: 2}
`, ratelimit)))
	return strings.Replace(cfg, "\n  listen: \"127.0.0.1:0\"", "\n  listen: "+strconv.Quote(listen), 1)
}

// key: ip counts an IPv6 caller by its /64 (ratelimit.ipv6_prefix), the block one
// host or one customer line is given: counting each address would hand one caller
// 2^64 budgets. Another /64 has its own budget.
func TestIPv6CallersCountByPrefix(t *testing.T) {
	nets := testSubnets(2)
	server, a, b, other := host(nets[0], 1), host(nets[0], 2), host(nets[0], 3), host(nets[1], 2)
	loopbackV6(t, server.String()+"/64", a.String()+"/128", b.String()+"/128", other.String()+"/64")
	up := okUpstream(t)

	t.Run("one /64 shares a budget", func(t *testing.T) {
		g := startGateway(t, ipLimitedConfig(up.URL, net.JoinHostPort(server.String(), "0"), ""))
		url := g.url + "/open/x"
		ca, cb, cother := clientBoundTo(t, a), clientBoundTo(t, b), clientBoundTo(t, other)
		for i := range 2 {
			if resp, body := getFrom(t, ca, url); resp.StatusCode != 200 {
				t.Fatalf("%s request %d within the burst: %d %s", a, i+1, resp.StatusCode, body)
			}
		}
		resp, body := getFrom(t, cb, url)
		wantEnvelopeAnswer(t, "another address of the same /64", resp.StatusCode, resp.Header, body, http.StatusTooManyRequests, "rate_limited")
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Remaining") != "0" {
			t.Errorf("429 headers: %v", resp.Header)
		}
		if resp, body := getFrom(t, cother, url); resp.StatusCode != 200 {
			t.Fatalf("a caller in another /64: %d %s, want 200 (its own budget)", resp.StatusCode, body)
		}
		// The access log still shows each caller's own address.
		var seen []string
		for _, l := range g.logs.lines(t, "request") {
			seen = append(seen, fmt.Sprint(l["remote_ip"]))
		}
		if !strings.Contains(strings.Join(seen, " "), b.String()) {
			t.Errorf("access log remote_ip values %v, want %s among them", seen, b)
		}
	})

	t.Run("ipv6_prefix 128 counts every address", func(t *testing.T) {
		g := startGateway(t, ipLimitedConfig(up.URL, net.JoinHostPort(server.String(), "0"), ", ipv6_prefix: 128"))
		url := g.url + "/open/x"
		ca, cb := clientBoundTo(t, a), clientBoundTo(t, b)
		for i := range 2 {
			if resp, body := getFrom(t, ca, url); resp.StatusCode != 200 {
				t.Fatalf("%s request %d within the burst: %d %s", a, i+1, resp.StatusCode, body)
			}
		}
		if resp, body := getFrom(t, cb, url); resp.StatusCode != 200 {
			t.Fatalf("with ipv6_prefix 128, another address: %d %s, want 200", resp.StatusCode, body)
		}
		resp, body := getFrom(t, ca, url)
		wantEnvelopeAnswer(t, "the first address past its burst", resp.StatusCode, resp.Header, body, http.StatusTooManyRequests, "rate_limited")
	})
}

// IPv4 callers stay counted per address, whatever ipv6_prefix says.
func TestIPv4CallersCountPerAddress(t *testing.T) {
	up := okUpstream(t)
	g := startGateway(t, ipLimitedConfig(up.URL, "127.0.0.1:0", ", ipv6_prefix: 8"))
	url := g.url + "/open/x"
	c2, c3 := clientBoundTo(t, netip.MustParseAddr("127.0.0.2")), clientBoundTo(t, netip.MustParseAddr("127.0.0.3"))
	for i := range 2 {
		if resp, body := getFrom(t, c2, url); resp.StatusCode != 200 {
			t.Fatalf("127.0.0.2 request %d within the burst: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := getFrom(t, c2, url)
	wantEnvelopeAnswer(t, "127.0.0.2 past its burst", resp.StatusCode, resp.Header, body, http.StatusTooManyRequests, "rate_limited")
	if resp, body := getFrom(t, c3, url); resp.StatusCode != 200 {
		t.Fatalf("127.0.0.3: %d %s, want 200 (its own budget)", resp.StatusCode, body)
	}
}

// Which rules may be spent before authentication: only those that count by the
// caller's own address. The rest wait for a caller the route accepted.
func TestLimitsForSplitsByWhoMaySpend(t *testing.T) {
	rules := []*ratelimit.Rule{
		{Name: "ip", Key: "ip"},
		{Name: "route", Key: "route"},
		{Name: "client", Key: "client"},
		{Name: "ip+route", Key: "ip+route"},
		{Name: "client+route", Key: "client+route"},
		{Name: "elsewhere", Key: "route", Routes: []string{"other"}},
	}
	names := func(rs []*ratelimit.Rule) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name          string
		public        bool
		before, after string
	}{
		{"authenticated route", false, "ip ip+route", "route client client+route"},
		{"public route", true, "ip route ip+route", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, after := limitsFor(rules, "api", tt.public)
			if names(before) != tt.before || names(after) != tt.after {
				t.Fatalf("before [%s] after [%s], want before [%s] after [%s]", names(before), names(after), tt.before, tt.after)
			}
		})
	}
}

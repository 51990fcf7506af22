package server

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/signgate/signgate/auth"
)

// proxyProtocolConfig fronts upstreamURL with the PROXY protocol required from the
// networks in from, and an ip rate limit of two requests per address.
func proxyProtocolConfig(upstreamURL, tlsMode, from string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", read_header_timeout: 2s, proxy_protocol_from: [%s]}
tls: {mode: %s}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["GET /api/services"]}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: api, match: "* /api/**", upstream: backend}
rate_limits:
  - {key: ip, rate: 1/h, burst: 2}
`, from, tlsMode, auth.HashKey(appKey), upstreamURL)
}

// viaBalancer sends one GET /api/services on a new connection to addr, first writing
// header (nil: none), as an L4 load balancer with PROXY protocol would, and over TLS
// when tlsOn. It returns the answer, or closed when the gateway closed the
// connection without one.
func viaBalancer(t *testing.T, addr string, header *proxyproto.Header, tlsOn bool) rawAnswer {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	if header != nil {
		if _, err := header.WriteTo(raw); err != nil {
			t.Fatal(err)
		}
	}
	conn := raw
	if tlsOn {
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			return rawAnswer{closed: true}
		}
		conn = tc
	}
	if _, err := io.WriteString(conn, string(request("GET", "/api/services", appKey))); err != nil {
		return rawAnswer{closed: true}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawAnswer{closed: true}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

func proxyHeader(version byte, client string) *proxyproto.Header {
	return &proxyproto.Header{
		Version:           version,
		Command:           proxyproto.PROXY,
		TransportProtocol: proxyproto.TCPv4,
		SourceAddr:        &net.TCPAddr{IP: net.ParseIP(client), Port: 51000},
		DestinationAddr:   &net.TCPAddr{IP: net.ParseIP("10.0.0.11"), Port: 8443},
	}
}

// forwardedFor is the X-Forwarded-For the upstream saw, from recordingUpstream's echo.
func forwardedFor(t *testing.T, a rawAnswer) string {
	t.Helper()
	var echo struct{ Headers http.Header }
	if err := json.Unmarshal(a.body, &echo); err != nil {
		t.Fatalf("upstream answer %d %s: %v", a.status, a.body, err)
	}
	return echo.Headers.Get("X-Forwarded-For")
}

// Behind an L4 balancer that speaks the PROXY protocol, the caller's own address is
// what the upstream, the access log and the ip rate limits see, over TLS and
// without, with either version of the header.
func TestProxyProtocolFromTheBalancer(t *testing.T) {
	for _, tlsMode := range []string{"off", "self_signed"} {
		t.Run("tls "+tlsMode, func(t *testing.T) {
			up := newRecordingUpstream(t)
			g := startGateway(t, proxyProtocolConfig(up.URL, tlsMode, `"127.0.0.0/8"`))
			addr, tlsOn := g.srv.Addr().String(), tlsMode != "off"

			for _, v := range []byte{1, 2} {
				a := viaBalancer(t, addr, proxyHeader(v, "203.0.113.7"), tlsOn)
				if a.status != 200 || forwardedFor(t, a) != "203.0.113.7" {
					t.Fatalf("v%d: %d, upstream saw X-Forwarded-For %q; want 200 from 203.0.113.7", v, a.status, a.body)
				}
			}
			// The ip limit (burst 2) is the caller's, not the balancer's: 203.0.113.7
			// has used its two, another caller has its own.
			if a := viaBalancer(t, addr, proxyHeader(2, "203.0.113.7"), tlsOn); a.status != 429 {
				t.Errorf("third request from 203.0.113.7: %d %s, want 429", a.status, a.body)
			}
			if a := viaBalancer(t, addr, proxyHeader(2, "198.51.100.9"), tlsOn); a.status != 200 {
				t.Errorf("first request from 198.51.100.9: %d %s, want 200", a.status, a.body)
			}
			var ips []string
			for _, line := range g.logs.lines(t, "request") {
				ips = append(ips, fmt.Sprint(line["remote_ip"]))
			}
			if got := strings.Join(ips, " "); got != "203.0.113.7 203.0.113.7 203.0.113.7 198.51.100.9" {
				t.Errorf("access log remote_ip: %s", got)
			}

			// From the balancer's network the header is required: without one the
			// connection is closed before any HTTP, and nothing reaches the upstream.
			up.hits() // hits drains what was recorded so far
			if a := viaBalancer(t, addr, nil, tlsOn); !a.closed {
				t.Errorf("no PROXY header from a balancer address: %d %s, want the connection closed", a.status, a.body)
			}
			if hits := up.hits(); len(hits) != 0 {
				t.Errorf("the upstream was reached without a PROXY header: %q", hits)
			}
		})
	}
}

// A peer outside proxy_protocol_from cannot claim another address with a PROXY
// header; it is served as itself.
func TestProxyProtocolNotBelievedFromOthers(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, proxyProtocolConfig(up.URL, "off", `"10.9.9.0/24"`))
	addr := g.srv.Addr().String()
	if a := viaBalancer(t, addr, proxyHeader(1, "203.0.113.7"), false); a.status != 400 || len(up.hits()) != 0 {
		t.Errorf("a PROXY header from outside the balancers: %d %s, want 400 and no upstream request", a.status, a.body)
	}
	a := viaBalancer(t, addr, nil, false)
	if a.status != 200 || forwardedFor(t, a) != "127.0.0.1" {
		t.Errorf("a direct request: %d %s, want 200 from 127.0.0.1", a.status, a.body)
	}
}

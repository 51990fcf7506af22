package server

import (
	"net"
	"time"

	"github.com/pires/go-proxyproto"
)

// withProxyProtocol wraps ln for server.proxy_protocol_from: a connection from one of
// those networks (the L4 load balancers) must begin with a PROXY protocol header, v1
// or v2, and the source address it names is the connection's RemoteAddr from then
// on, so access logs, X-Forwarded-For and ip rate limits see the caller rather than
// the balancer. One without a header is closed when first read, before a byte of
// HTTP or TLS. A connection from anywhere else is served as it is: a PROXY header it
// sends is not believed, and the HTTP or TLS parser refuses it as the garbage it
// then is. The header must arrive within timeout (read_header_timeout).
func withProxyProtocol(ln net.Listener, from []string, timeout time.Duration) (net.Listener, error) {
	if len(from) == 0 {
		return ln, nil
	}
	policy, err := proxyproto.PolicyFromRanges(from, proxyproto.REQUIRE, proxyproto.SKIP)
	if err != nil {
		return nil, err
	}
	return &proxyproto.Listener{Listener: ln, ConnPolicy: policy, ReadHeaderTimeout: timeout}, nil
}

package tlsedge

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/signgate/signgate/apierror"
)

// RedirectHandler answers every request with 308 Permanent Redirect to the same host,
// path and query on HTTPS. 308, not 301, because clients must repeat a POST as a POST
// rather than turn it into a GET and lose the body. httpsAddr is the TLS listener's
// address as given to net.Listen (":8443"); its port goes into the Location unless it
// is 443, or cannot be read. The host comes from the request's Host with its port
// dropped; a missing or malformed Host answers 400 bad_request, since there is no safe
// place to send the caller.
func RedirectHandler(httpsAddr string) http.Handler {
	port := httpsPort(httpsAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, ok := redirectHost(r.Host)
		if !ok {
			apierror.Write(w, r, apierror.BadRequest("the Host header is missing or malformed"))
			return
		}
		if port != "" {
			host = net.JoinHostPort(host, port)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		uri := r.URL.RequestURI()
		if !strings.HasPrefix(uri, "/") { // "OPTIONS *" and other oddities
			uri = "/"
		}
		http.Redirect(w, r, "https://"+host+uri, http.StatusPermanentRedirect)
	})
}

// httpsPort returns the port to put in redirects for a listener on addr, "" for the
// default 443.
func httpsPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return ""
	}
	n, err := net.LookupPort("tcp", port) // also accepts a service name such as "https"
	if err != nil || n == 443 || n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// redirectHost returns the host part of a Host header (port and IPv6 brackets
// removed) if it is an IP address or a plain DNS name. Anything else is refused
// rather than copied into a Location header.
func redirectHost(hostport string) (string, bool) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		// A zone ("fe80::1%eth0") would need escaping in a URL and is never
		// meaningful to a remote client.
		return host, ip.Zone() == ""
	}
	if host == "" || len(host) > 253 {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", false
		}
	}
	return host, true
}

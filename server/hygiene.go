package server

import (
	"net/http"
	"strings"

	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/route"
)

// hygiene is the one place where a request becomes what the upstream will see, before
// routing decides on it (DESIGN.md "Request hygiene", "One request, one decision").
// It runs after cleanPath, which has refused what cannot be forwarded as sent (a
// method no pattern can name, a path or query a backend could read otherwise), and:
//
//   - decides the request once: its decided method and path (route.Decide: HEAD as
//     the GET it stands for, the path without a trailing slash) go into reqinfo, and
//     routing, RBAC and everything attached to a route use them, so no spelling of a
//     request escapes its route's policy. The upstream gets the method and path as
//     sent: the hmac-sha256 signature covers that form, and a HEAD must stay a HEAD;
//   - removes the caller's headers that no upstream may take from a caller (see
//     droppedHeader), before any layer of the gateway reads them. What the gateway
//     vouches for (X-Signgate-Client, X-Real-IP, X-Forwarded-*, the end user's
//     identity) is set after this, by the layer that knows it;
//   - drops request trailers: they arrive after the body, outside any signature, and
//     once a layer has read the body whole (a signature, mask_request, a callback)
//     net/http has them in r.Trailer, which the proxy would send on.
//
// A request already canonical costs a walk over its header names and no allocation.
func hygiene(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.Of(r)
		info.DecidedMethod, info.DecidedPath = route.Decide(r.Method, r.URL.Path)
		for name := range r.Header {
			if droppedHeader(name) {
				delete(r.Header, name)
			}
		}
		// net/http fills in trailer values when the body reaches its end, into the
		// map r.Trailer held when the request was read. A nil field here detaches
		// this request, and every copy made of it below, from that map.
		r.Trailer = nil
		next.ServeHTTP(w, r)
	})
}

// decided returns the method and path r is routed, authorised and limited on: those
// hygiene stored, or, for a request that did not pass through it (a test's
// handler), the same decision made here.
func decided(r *http.Request) (method, path string) {
	if info := reqinfo.From(r.Context()); info != nil && info.DecidedMethod != "" {
		return info.DecidedMethod, info.DecidedPath
	}
	return route.Decide(r.Method, r.URL.Path)
}

// droppedHeader reports whether a caller's request header named name (in net/http's
// canonical form, as the server hands every header over) is removed: any name with an
// underscore (nginx's underscores_in_headers off: CGI-style servers and many
// frameworks read "X_Signgate_Client" as X-Signgate-Client), any X-Signgate-*
// (the gateway's own), and the names in callerHeaders.
func droppedHeader(name string) bool {
	if strings.IndexByte(name, '_') >= 0 {
		return true
	}
	if len(name) >= len("X-Signgate-") && strings.EqualFold(name[:len("X-Signgate-")], "X-Signgate-") {
		return true
	}
	_, ok := callerHeaders[name]
	return ok
}

// callerHeaders are the request headers, in canonical form, that frameworks trust to
// come from a proxy rather than a caller. None reaches the upstream as a caller sent
// it: the gateway sets those it vouches for after hygiene (proxy.Pool sets
// X-Real-IP and X-Forwarded-For/-Host/-Proto to what it saw), and the rest are gone.
var callerHeaders = headerNames(
	// Method and URL overrides: RBAC decided on the real method and path.
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
	"X-Original-URL", "X-Rewrite-URL",
	// The client's address.
	"X-Real-IP", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP", "X-Cluster-Client-IP",
	"Fastly-Client-IP", "X-Original-Forwarded-For", "X-Forwarded-For", "Forwarded",
	"X-Forwarded",
	// The public URL the caller used.
	"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Prefix",
	"X-Forwarded-Ssl", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Uri",
	"X-Forwarded-Url", "X-Forwarded-Path", "X-Forwarded-Protocol", "X-Original-Host",
	"X-Url-Scheme", "Front-End-Https",
	// Identities a terminating proxy vouches for: a client certificate (Envoy's XFCC),
	// and the end user the gateway names from a WeChat session or JWT.
	"X-Forwarded-Client-Cert", "X-WX-OpenID", "X-WX-UnionID",
	// httpoxy: CGI turns Proxy into HTTP_PROXY, which HTTP clients in the backend use.
	"Proxy",
	// Trailers are dropped; so is their announcement.
	"Trailer",
)

func headerNames(names ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[http.CanonicalHeaderKey(n)] = struct{}{}
	}
	return m
}

package server

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/signgate/signgate/apierror"

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
		if err := methodOverrideParam(r); err != nil {
			apierror.Write(w, r, err)
			return
		}
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
	for _, p := range callerHeaderPrefixes {
		if len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
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
	// The user an authenticating proxy in front vouches for (oauth2-proxy, Apache,
	// Grafana-style auth proxies), and what frameworks take from a proxy for the
	// path and method they route on (Flask's ReverseProxied reads X-Script-Name).
	"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Groups",
	"X-Remote-User", "Remote-User", "X-Webauth-User", "X-User", "X-Userinfo",
	"X-Script-Name", "X-Forwarded-Method", "X-Original-Method", "X-Original-Uri",
)

// callerHeaderPrefixes are families of identity headers another gateway sets for
// its backends (Kong's X-Consumer-*, X-Credential-*, X-Anonymous-*,
// X-Authenticated-*; oauth2-proxy's X-Auth-Request-*; WeChat Cloud Hosting's
// X-WX-* — X-WX-OpenID, X-WX-From-OpenID, X-WX-AppID, X-WX-Env, which this gateway
// sets or a backend ported from 云托管 trusts): a backend behind such a gateway
// before trusts them, so no caller may send them through this one.
var callerHeaderPrefixes = [...]string{"X-Consumer-", "X-Credential-", "X-Anonymous-", "X-Authenticated-", "X-Auth-Request-", "X-Wx-"}

// errMethodOverride answers a request carrying a _method parameter.
var errMethodOverride = apierror.BadRequest("a _method parameter is not accepted: frameworks (Rails, Laravel, Symfony) " +
	"act on it as the request's method, which the gateway decided on as sent")

// methodOverrideParam refuses a request whose query, or whose POST form or JSON
// body, carries _method: Rack::MethodOverride, Laravel and Symfony turn a POST
// with _method=DELETE into a DELETE that RBAC, limits and signatures never saw.
// A query without "method" in it, and a body that is not a POST form or JSON, cost
// nothing; such a POST body is read whole (it is bounded by server.max_body_bytes,
// and a signed or masked route reads it whole anyway).
func methodOverrideParam(r *http.Request) *apierror.Error {
	if q := r.URL.RawQuery; q != "" && containsFold(q, "method") {
		for name := range parseQueryLenient(q) {
			if strings.EqualFold(name, "_method") {
				return errMethodOverride
			}
		}
	}
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form := mt == "application/x-www-form-urlencoded"
	if !form && mt != "multipart/form-data" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil
	}
	body, err := bufferBody(r)
	if err != nil {
		var e *apierror.Error
		if errors.As(err, &e) {
			return e
		}
		return apierror.BadRequest("the request body could not be read")
	}
	if !containsFold(body, "method") {
		return nil
	}
	if form {
		for name := range parseQueryLenient(string(body)) {
			if strings.EqualFold(name, "_method") {
				return errMethodOverride
			}
		}
		return nil
	}
	// multipart (name="_method") and JSON ("_method":): any mention is refused,
	// rather than parsing either here.
	if containsFold(body, `"_method"`) {
		return errMethodOverride
	}
	return nil
}

// parseQueryLenient returns the names in a query or form body, decoded as
// frameworks decode them, skipping what does not decode.
func parseQueryLenient(q string) map[string]struct{} {
	names := make(map[string]struct{})
	for part := range strings.SplitSeq(q, "&") {
		for sub := range strings.SplitSeq(part, ";") {
			name, _, _ := strings.Cut(sub, "=")
			if n, err := url.QueryUnescape(name); err == nil {
				names[n] = struct{}{}
			}
		}
	}
	return names
}

// containsFold reports whether s holds sub, ignoring ASCII case; sub is lower
// case. It reads a body in place, without a string copy of it.
func containsFold[T ~string | ~[]byte](s T, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

func headerNames(names ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[http.CanonicalHeaderKey(n)] = struct{}{}
	}
	return m
}

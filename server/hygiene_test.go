package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/route"
)

// wireUpstream is an upstream that keeps every byte of each request it receives,
// trailers included, so a test asserts on the whole of what the gateway forwarded
// rather than on the fields a handler happens to look at. It answers 200 with a
// small JSON body (none to a HEAD).
type wireUpstream struct {
	URL  string
	addr string
	mu   sync.Mutex
	got  []wireRequest
}

// wireRequest is one request as it reached the upstream.
type wireRequest struct {
	raw     []byte        // every byte of it, head, framing and trailers
	req     *http.Request // as net/http reads it
	body    []byte        // the body, de-chunked
	bodyErr error
}

func newWireUpstream(t *testing.T) *wireUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &wireUpstream{addr: ln.Addr().String(), URL: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { u.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return u
}

func (u *wireUpstream) serve(c net.Conn) {
	defer c.Close()
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, berr := io.ReadAll(req.Body)
		// The gateway does not pipeline: what bufio read ahead is the next
		// request's, of which nothing has arrived yet, but keep it if it has.
		n := raw.Len() - br.Buffered()
		q := wireRequest{raw: bytes.Clone(raw.Bytes()[:n]), req: req, body: body, bodyErr: berr}
		rest := bytes.Clone(raw.Bytes()[n:])
		raw.Reset()
		raw.Write(rest)
		u.mu.Lock()
		u.got = append(u.got, q)
		u.mu.Unlock()
		if berr != nil {
			return
		}
		const answer = `{"ok":true}`
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(answer))
		if req.Method != http.MethodHead {
			io.WriteString(c, answer)
		}
	}
}

// take returns what the upstream received since the last take, rendered (see
// wireRequest.String), and forgets it.
func (u *wireUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.got))
	for _, q := range u.got {
		out = append(out, q.render(u.addr))
	}
	u.got = nil
	return out
}

// render writes a request as the tests state it: the request line; the header lines
// exactly as sent, sorted, with the upstream's own address as "upstream" and the
// request id as "<id>"; a blank line; the body; and, when the request carried any,
// a "-- trailers --" section.
func (q wireRequest) render(upstreamAddr string) string {
	head, _, _ := bytes.Cut(q.raw, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	hdr := lines[1:]
	for i, l := range hdr {
		switch name, value, _ := strings.Cut(l, ": "); {
		case name == "Host" && value == upstreamAddr:
			hdr[i] = "Host: upstream"
		case name == "X-Request-Id" && validRequestID(value):
			hdr[i] = "X-Request-Id: <id>"
		}
	}
	slices.Sort(hdr)
	var b strings.Builder
	b.WriteString(lines[0] + "\n")
	for _, l := range hdr {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n")
	b.Write(q.body)
	if q.bodyErr != nil {
		fmt.Fprintf(&b, "\n-- body cut: %v --", q.bodyErr)
	}
	if len(q.req.Trailer) > 0 {
		b.WriteString("\n-- trailers --")
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range q.req.Trailer {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(&b, "\n%s: %s", k, strings.Join(q.req.Trailer[k], ", "))
		}
	}
	return b.String()
}

// upstreamSaw renders what the upstream must receive, as wireRequest.render does:
// requestLine, the headers the gateway sets on every proxied request (client is
// X-Signgate-Client, none when ""; the caller at 127.0.0.1 sent Host: gw), the
// other header lines in extra, and body.
func upstreamSaw(requestLine, client string, body string, extra ...string) string {
	hdr := append([]string{
		"Host: upstream",
		"X-Forwarded-For: 127.0.0.1",
		"X-Forwarded-Host: gw",
		"X-Forwarded-Proto: http",
		"X-Real-Ip: 127.0.0.1",
		"X-Request-Id: <id>",
	}, extra...)
	if client != "" {
		hdr = append(hdr, "X-Signgate-Client: "+client)
	}
	slices.Sort(hdr)
	return requestLine + "\n" + strings.Join(hdr, "\n") + "\n\n" + body
}

// hygieneConfig is a plain-HTTP gateway (raw requests reach the parser as written)
// with the routes whose policy a different spelling of a request used to escape: a
// signed-only route and a mask_request route, each before a looser "* /api/**"; a
// route with a client limit and one with an ip limit; and a 58到家 callback route.
// property-miniapp (unsigned) may call anything under /api; sunshine-housekeeping
// (hmac-sha256) only what its role lists.
func hygieneConfig(upstreamURL, extraServer string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", max_body_bytes: 4096%s}
tls: {mode: "off"}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, secret: %q, signature: hmac-sha256, roles: [provider]}
roles:
  app: {allow: ["* /api/**"]}
  provider: {allow: ["GET /api/signed", "GET /api/orders/*", "PUT /api/orders/*/status"]}
upstreams: {backend: {targets: [%q], response_timeout: 2s}}
daojia: {base_url: "http://127.0.0.1:1", service_key: %q, service_secret: %q, timeout: 2s}
routes:
  - {name: callback, match: "POST /callbacks/daojia/**", verify: daojia-md5, upstream: backend}
  - {name: signed-only, match: "GET /api/signed", verify: hmac-sha256, upstream: backend}
  - {name: staff, match: "POST /api/staff", upstream: backend, mask_request: true}
  - {name: client-limited, match: "GET /api/limited", upstream: backend}
  - {name: ip-limited, match: "GET /api/ip-limited", upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
masking: {fields: [phone], detect: [cn_mobile]}
rate_limits:
  - {key: client, routes: [client-limited], rate: 1/h, burst: 2}
  - {key: ip, routes: [ip-limited], rate: 1/h, burst: 2}
`, extraServer, auth.HashKey(appKey), auth.HashKey(partnerKey), partnerSecret, upstreamURL, djKey, djSecret)
}

// rawRequest builds a raw HTTP/1.1 request: hdr are name, value pairs; a non-empty
// body is sent with its Content-Length.
func rawRequest(method, target string, hdr []string, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gw\r\n", method, target)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("Connection: close\r\n\r\n" + body)
	return []byte(b.String())
}

var testNonces atomic.Int64

// signedBy returns the headers of a request sunshine-housekeeping signed: its key,
// X-Timestamp, X-Nonce and X-Signature over method, target (as sent) and body, and
// Content-Type.
func signedBy(t *testing.T, method, target, body string) []string {
	t.Helper()
	nonce := fmt.Sprintf("hygiene-%08d", testNonces.Add(1))
	return append([]string{"X-Api-Key", partnerKey}, signedHeaders(t, method, target, body, nonce, time.Now())...)
}

// Every spelling of a request is decided as the request the upstream will read: a
// trailing slash, HEAD for GET and a method in another letter case cannot take a
// request away from its route's signature requirement, mask_request or its role's
// allow list; a method no pattern can name and a path with parameters (";") are
// refused before routing. Each accepted request is checked whole, as the upstream
// received it: method and path as the caller sent them (the signature covers that
// form), the gateway's headers, the body.
func TestOneRequestOneDecision(t *testing.T) {
	up := newWireUpstream(t)
	g := startGateway(t, hygieneConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	app := []string{"X-Api-Key", appKey}
	const phone = `{"name":"张三","phone":"13812345678"}`
	const masked = `{"name":"张三","phone":"138****5678"}`
	status := `{"status":"done"}`
	tests := []struct {
		name       string
		req        []byte
		wantStatus int
		wantCode   string
		want       string // what the upstream received, rendered; "" for nothing
	}{
		// A signed-only route ("GET /api/signed", verify: hmac-sha256) before "* /api/**".
		{"unsigned on the signed-only route", rawRequest("GET", "/api/signed", app, ""), 401, "invalid_signature", ""},
		{"unsigned with a trailing slash", rawRequest("GET", "/api/signed/", app, ""), 401, "invalid_signature", ""},
		{"unsigned HEAD for GET", rawRequest("HEAD", "/api/signed", app, ""), 401, "invalid_signature", ""},
		{"unsigned HEAD with a trailing slash", rawRequest("HEAD", "/api/signed/", app, ""), 401, "invalid_signature", ""},
		{"unsigned in lower case", rawRequest("get", "/api/signed", app, ""), 400, "bad_request", ""},
		{"unsigned in mixed case", rawRequest("Get", "/api/signed", app, ""), 400, "bad_request", ""},
		{"unsigned in mixed case with a trailing slash", rawRequest("gET", "/api/signed/", app, ""), 400, "bad_request", ""},
		{"signed, with a trailing slash as signed", rawRequest("GET", "/api/signed/", signedBy(t, "GET", "/api/signed/", ""), ""), 200, "",
			upstreamSaw("GET /api/signed/ HTTP/1.1", "sunshine-housekeeping", "", "Content-Type: application/json")},
		{"signed HEAD goes out as HEAD", rawRequest("HEAD", "/api/signed", signedBy(t, "HEAD", "/api/signed", ""), ""), 200, "",
			upstreamSaw("HEAD /api/signed HTTP/1.1", "sunshine-housekeeping", "", "Content-Type: application/json")},
		{"signed, but in lower case", rawRequest("get", "/api/signed", signedBy(t, "get", "/api/signed", ""), ""), 400, "bad_request", ""},

		// A mask_request route ("POST /api/staff") before "* /api/**".
		{"mask_request", rawRequest("POST", "/api/staff", app, phone), 200, "",
			upstreamSaw("POST /api/staff HTTP/1.1", "property-miniapp", masked, "Content-Length: "+strconv.Itoa(len(masked)))},
		{"mask_request with a trailing slash", rawRequest("POST", "/api/staff/", app, phone), 200, "",
			upstreamSaw("POST /api/staff/ HTTP/1.1", "property-miniapp", masked, "Content-Length: "+strconv.Itoa(len(masked)))},
		{"mask_request in lower case", rawRequest("post", "/api/staff", app, phone), 400, "bad_request", ""},
		{"mask_request in mixed case with a trailing slash", rawRequest("Post", "/api/staff/", app, phone), 400, "bad_request", ""},

		// The provider's role: "GET /api/orders/*", "PUT /api/orders/*/status".
		{"HEAD is allowed as the GET it stands for", rawRequest("HEAD", "/api/orders/42", signedBy(t, "HEAD", "/api/orders/42", ""), ""), 200, "",
			upstreamSaw("HEAD /api/orders/42 HTTP/1.1", "sunshine-housekeeping", "", "Content-Type: application/json")},
		{"a trailing slash is the same resource to RBAC", rawRequest("GET", "/api/orders/42/", signedBy(t, "GET", "/api/orders/42/", ""), ""), 200, "",
			upstreamSaw("GET /api/orders/42/ HTTP/1.1", "sunshine-housekeeping", "", "Content-Type: application/json")},
		{"signed PUT with a trailing slash", rawRequest("PUT", "/api/orders/42/status/", signedBy(t, "PUT", "/api/orders/42/status/", status), status), 200, "",
			upstreamSaw("PUT /api/orders/42/status/ HTTP/1.1", "sunshine-housekeeping", status, "Content-Length: 17", "Content-Type: application/json")},
		{"signed PUT in lower case", rawRequest("put", "/api/orders/42/status", signedBy(t, "put", "/api/orders/42/status", status), status), 400, "bad_request", ""},
		{"a path the role does not list", rawRequest("GET", "/api/orders/42/status/", signedBy(t, "GET", "/api/orders/42/status/", ""), ""), 403, "forbidden", ""},
		{"HEAD on a path the role does not list", rawRequest("HEAD", "/api/orders/42/status", signedBy(t, "HEAD", "/api/orders/42/status", ""), ""), 403, "forbidden", ""},

		// Methods no route pattern can name.
		{"a method with a hyphen", rawRequest("M-SEARCH", "/api/orders/42", app, ""), 400, "bad_request", ""},
		{"a method with a digit", rawRequest("GET2", "/api/orders/42", app, ""), 400, "bad_request", ""},
		{"a method with an underscore", rawRequest("GET_", "/api/orders/42", app, ""), 400, "bad_request", ""},

		// Servlet path parameters.
		{"dot-dot with a path parameter", rawRequest("GET", "/api/orders/..;/admin", app, ""), 400, "bad_request", ""},
		{"session id as a path parameter", rawRequest("GET", "/api/x;jsessionid=1", app, ""), 400, "bad_request", ""},
		{"encoded semicolon", rawRequest("GET", "/api/x%3Bjsessionid=1", app, ""), 400, "bad_request", ""},
		{"encoded semicolon in lower case", rawRequest("GET", "/api/x%3bjsessionid=1", app, ""), 400, "bad_request", ""},
		{"empty path parameter before a slash", rawRequest("GET", "/api/orders/42;/", app, ""), 400, "bad_request", ""},

		// A query is not a path: the proxy leaves out a parameter it cannot read
		// (";", a malformed escape), so the upstream sees fewer, never others.
		{"a semicolon in the query", rawRequest("GET", "/api/x?a=1;b=2&c=3", app, ""), 200, "",
			upstreamSaw("GET /api/x?c=3 HTTP/1.1", "property-miniapp", "")},
		{"a query forwarded as sent", rawRequest("GET", "/api/x?b=%3B&a=1&a=%E4%B8%AD", app, ""), 200, "",
			upstreamSaw("GET /api/x?b=%3B&a=1&a=%E4%B8%AD HTTP/1.1", "property-miniapp", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.take()
			a := sendRaw(t, addr, tt.req)
			// An answer to HEAD has no body to hold the code.
			if a.closed || a.status != tt.wantStatus || tt.wantCode != "" && len(a.body) > 0 && code(t, a.body) != tt.wantCode {
				t.Fatalf("status %d (closed %v) %s, want %d %s", a.status, a.closed, a.body, tt.wantStatus, tt.wantCode)
			}
			got := up.take()
			switch {
			case tt.want == "" && len(got) != 0:
				t.Fatalf("a refused request reached the upstream:\n%s", strings.Join(got, "\n----\n"))
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Fatalf("the upstream received:\n%s\n\nwant:\n%s", strings.Join(got, "\n----\n"), tt.want)
			}
		})
	}
}

// A limit is spent by the request, however it is spelled: once a route's client or
// ip limit is used up, its path with a trailing slash and HEAD for its GET are
// refused too, and the upstream saw only the requests the limit admitted.
func TestSpellingsShareARouteLimit(t *testing.T) {
	up := newWireUpstream(t)
	g := startGateway(t, hygieneConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	app := []string{"X-Api-Key", appKey}
	for _, path := range []string{"/api/limited", "/api/ip-limited"} {
		t.Run(path, func(t *testing.T) {
			up.take()
			steps := []struct {
				method, target string
				want           int
			}{
				{"GET", path, 200},
				{"GET", path + "?page=2", 200}, // the burst is 2
				{"GET", path + "/", 429},
				{"HEAD", path, 429},
				{"HEAD", path + "/", 429},
				{"get", path, 400},
				{"GET", path, 429},
			}
			for i, s := range steps {
				a := sendRaw(t, addr, rawRequest(s.method, s.target, app, ""))
				if a.status != s.want {
					t.Fatalf("step %d, %s %s: %d %s, want %d", i, s.method, s.target, a.status, a.body, s.want)
				}
			}
			want := []string{
				upstreamSaw("GET "+path+" HTTP/1.1", "property-miniapp", ""),
				upstreamSaw("GET "+path+"?page=2 HTTP/1.1", "property-miniapp", ""),
			}
			if got := up.take(); !slices.Equal(got, want) {
				t.Fatalf("the upstream received:\n%s\n\nwant:\n%s", strings.Join(got, "\n----\n"), strings.Join(want, "\n----\n"))
			}
		})
	}
}

// Headers a framework reads as another header, as a method or URL override, as the
// client's address or the public URL, or as an identity the gateway vouches for
// never reach the upstream as the caller sent them: the upstream gets the headers
// the caller may set, and the gateway's own.
func TestCallerHeadersTheUpstreamMustNotTrust(t *testing.T) {
	up := newWireUpstream(t)
	g := startGateway(t, hygieneConfig(up.URL, ""))
	sent := []string{
		"X-Api-Key", appKey,
		// Names CGI-style servers read with "_" as "-".
		"X_Signgate_Client", "ops",
		"X-Signgate_Client", "ops",
		"X_Forwarded_For", "10.0.0.1",
		"X_Real_IP", "10.0.0.1",
		"Accept_Language", "zh-CN",
		// Method and URL overrides.
		"X-HTTP-Method-Override", "DELETE",
		"X-HTTP-Method", "DELETE",
		"X-Method-Override", "DELETE",
		"X-Original-URL", "/admin/users",
		"X-Rewrite-URL", "/admin/users",
		// The client's address.
		"X-Real-IP", "10.0.0.1",
		"True-Client-IP", "10.0.0.1",
		"X-Client-IP", "10.0.0.1",
		"CF-Connecting-IP", "10.0.0.1",
		"X-Cluster-Client-IP", "10.0.0.1",
		"Fastly-Client-IP", "10.0.0.1",
		"X-Original-Forwarded-For", "10.0.0.1",
		"X-Forwarded-For", "10.0.0.1",
		"Forwarded", "for=10.0.0.1;host=admin.internal;proto=https",
		// The public URL.
		"X-Forwarded-Host", "admin.internal",
		"X-Forwarded-Proto", "https",
		"X-Forwarded-Port", "443",
		"X-Forwarded-Prefix", "/admin",
		"X-Forwarded-Ssl", "on",
		"X-Forwarded-Server", "admin.internal",
		"X-Forwarded-Scheme", "https",
		"X-Forwarded-Uri", "/admin/users",
		"X-Forwarded-Url", "https://admin.internal/admin/users",
		"X-Forwarded-Path", "/admin/users",
		"X-Original-Host", "admin.internal",
		// Identities only the gateway may state.
		"X-Signgate-Client", "ops",
		"X-Signgate-Role", "ops",
		"X-Signgate-Unmask", "true",
		"X-WX-OpenID", "o-victim",
		"X-WX-UnionID", "u-victim",
		"X-Forwarded-Client-Cert", "Hash=00;Subject=\"CN=ops\"",
		// httpoxy: CGI makes it HTTP_PROXY.
		"Proxy", "http://attacker.example:3128",
		// What a caller may say.
		"Accept", "application/json",
		"X-Note", "kept",
	}
	a := sendRaw(t, g.srv.Addr().String(), rawRequest("GET", "/api/orders/42", sent, ""))
	if a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	want := upstreamSaw("GET /api/orders/42 HTTP/1.1", "property-miniapp", "",
		"Accept: application/json", "X-Note: kept")
	if got := up.take(); len(got) != 1 || got[0] != want {
		t.Fatalf("the upstream received:\n%s\n\nwant:\n%s", strings.Join(got, "\n----\n"), want)
	}
}

// X-Real-IP is the caller's address, the one X-Forwarded-For ends with: the source
// a PROXY protocol header names when the connection came through a load balancer,
// never what the caller wrote.
func TestRealIPIsTheCallersAddress(t *testing.T) {
	up := newWireUpstream(t)
	g := startGateway(t, hygieneConfig(up.URL, `, proxy_protocol_from: ["127.0.0.1/32"], read_header_timeout: 2s`))
	conn, err := net.DialTimeout("tcp", g.srv.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	h := &proxyproto.Header{
		Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40000},
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 443},
	}
	if _, err := h.WriteTo(conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(rawRequest("GET", "/api/orders/42", []string{"X-Api-Key", appKey, "X-Real-IP", "10.0.0.1", "X-Forwarded-For", "10.0.0.1"}, "")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := strings.NewReplacer("X-Forwarded-For: 127.0.0.1", "X-Forwarded-For: 203.0.113.7", "X-Real-Ip: 127.0.0.1", "X-Real-Ip: 203.0.113.7").
		Replace(upstreamSaw("GET /api/orders/42 HTTP/1.1", "property-miniapp", ""))
	if got := up.take(); len(got) != 1 || got[0] != want {
		t.Fatalf("the upstream received:\n%s\n\nwant:\n%s", strings.Join(got, "\n----\n"), want)
	}
}

// chunked is a raw request whose body comes in chunks, followed by trailers (name,
// value pairs) announced in a Trailer header.
func chunked(method, target string, hdr []string, body string, trailers ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gw\r\n", method, target)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	var names []string
	for i := 0; i+1 < len(trailers); i += 2 {
		names = append(names, trailers[i])
	}
	fmt.Fprintf(&b, "Transfer-Encoding: chunked\r\nTrailer: %s\r\nConnection: close\r\n\r\n", strings.Join(names, ", "))
	half := len(body) / 2
	for _, part := range []string{body[:half], body[half:]} {
		if part != "" {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(part), part)
		}
	}
	b.WriteString("0\r\n")
	for i := 0; i+1 < len(trailers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", trailers[i], trailers[i+1])
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// Request trailers never reach the upstream, whether the body streams through or
// the gateway buffered it (a signature to check, mask_request, a 58到家 callback):
// not as trailers, not announced in a Trailer header.
func TestRequestTrailersNeverReachTheUpstream(t *testing.T) {
	up := newWireUpstream(t)
	g := startGateway(t, hygieneConfig(up.URL, ""))
	forged := []string{
		"X-Signgate-Client", "ops",
		"X-Api-Key", appKey,
		"X-HTTP-Method-Override", "DELETE",
		"X-WX-OpenID", "o-victim",
		"X-Note", "a trailer",
	}
	status := `{"status":"done"}`
	const phone = `{"name":"张三","phone":"13812345678"}`
	const masked = `{"name":"张三","phone":"138****5678"}`
	callback, err := daojia.SignedBody([]byte(`{"orderId":"o1","status":3}`), djKey, "", djSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  []byte
		want string
	}{
		{"streamed body", chunked("POST", "/api/orders", []string{"X-Api-Key", appKey}, status, forged...),
			upstreamSaw("POST /api/orders HTTP/1.1", "property-miniapp", status, "Transfer-Encoding: chunked")},
		{"body buffered to check a signature", chunked("PUT", "/api/orders/42/status", signedBy(t, "PUT", "/api/orders/42/status", status), status, forged...),
			upstreamSaw("PUT /api/orders/42/status HTTP/1.1", "sunshine-housekeeping", status, "Content-Length: 17", "Content-Type: application/json")},
		{"body buffered for mask_request", chunked("POST", "/api/staff", []string{"X-Api-Key", appKey}, phone, forged...),
			upstreamSaw("POST /api/staff HTTP/1.1", "property-miniapp", masked, "Content-Length: "+strconv.Itoa(len(masked)))},
		{"58到家 callback", chunked("POST", "/callbacks/daojia/order/status", []string{"Content-Type", "application/json"}, string(callback), forged...),
			upstreamSaw("POST /callbacks/daojia/order/status HTTP/1.1", "daojia", string(callback), "Content-Length: "+strconv.Itoa(len(callback)), "Content-Type: application/json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.take()
			a := sendRaw(t, g.srv.Addr().String(), tt.req)
			if a.status != 200 {
				t.Fatalf("status %d %s", a.status, a.body)
			}
			if got := up.take(); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("the upstream received:\n%s\n\nwant:\n%s", strings.Join(got, "\n----\n"), tt.want)
			}
		})
	}
}

// A 58到家 callback's upstream receives only what the signature covered: the
// signature is over the body, so a query string (which servlets read as parameters
// before the body) is refused rather than passed on unsigned.
func TestCallbackTakesOnlyWhatTheSignatureCovers(t *testing.T) {
	up := newWireUpstream(t)
	g := startGateway(t, hygieneConfig(up.URL, ""))
	signed := func() string {
		body, err := daojia.SignedBody([]byte(`{"orderId":"o1","status":3}`), djKey, "", djSecret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	ct := []string{"Content-Type", "application/json"}
	for _, target := range []string{
		"/callbacks/daojia/order/status?orderId=o9&status=7",
		"/callbacks/daojia/order/status?",
		"/callbacks/daojia/order/status/?sign=x",
	} {
		t.Run(target, func(t *testing.T) {
			up.take()
			a := sendRaw(t, g.srv.Addr().String(), rawRequest("POST", target, ct, signed()))
			var env envelope
			_ = json.Unmarshal(a.body, &env)
			if a.status != 400 || env.Code != "bad_request" || !strings.Contains(env.Message, "query") {
				t.Fatalf("%d %s, want 400 bad_request saying the query is refused", a.status, a.body)
			}
			if got := up.take(); len(got) != 0 {
				t.Fatalf("the upstream received:\n%s", strings.Join(got, "\n----\n"))
			}
		})
	}
	t.Run("no query", func(t *testing.T) {
		body := signed()
		a := sendRaw(t, g.srv.Addr().String(), rawRequest("POST", "/callbacks/daojia/order/status", ct, body))
		if a.status != 200 {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		want := upstreamSaw("POST /callbacks/daojia/order/status HTTP/1.1", "daojia", body,
			"Content-Length: "+strconv.Itoa(len(body)), "Content-Type: application/json")
		if got := up.take(); len(got) != 1 || got[0] != want {
			t.Fatalf("the upstream received:\n%s\n\nwant:\n%s", strings.Join(got, "\n----\n"), want)
		}
	})
}

// HTTP/2 carries :method and :path as header fields, so a client can send methods
// the HTTP/1.1 parser would refuse and net/http's client will not send on, and a
// query holding a space. They are refused with 400 before routing, never count as the upstream's failure (three
// of them used to eject the only target: 503 for everyone), and another client's
// request afterwards is served.
func TestHTTP2MethodsTheUpstreamCannotTake(t *testing.T) {
	up := newWireUpstream(t)
	yaml := strings.Replace(hygieneConfig(up.URL, ""), `tls: {mode: "off"}`, `tls: {mode: self_signed}`, 1)
	g := startGateway(t, yaml)
	conn, err := tls.Dial("tcp", g.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	stream := uint32(1)
	// send sends one request on a new stream and returns its :status, or
	// "reset" when the server reset the stream instead.
	send := func(method, path string) string {
		t.Helper()
		hbuf.Reset()
		for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "gw"}, {":path", path}, {"x-api-key", appKey}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := stream
		stream += 2
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.MetaHeadersFrame:
				if f.StreamID == id {
					return f.PseudoValue("status")
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					return "reset"
				}
			case *http2.GoAwayFrame:
				t.Fatalf("%s %s: GOAWAY %v", method, path, f.ErrCode)
			}
		}
	}
	for _, m := range []string{"G(T", "GET/", "G,T", "GE{T}", "M-SEARCH", "HE@D", "get", "Get"} {
		for range 2 {
			if got := send(m, "/api/orders/42"); got != "400" && got != "reset" {
				t.Fatalf(":method %q answered %s, want 400 (or the stream reset)", m, got)
			}
		}
	}
	// A :path may hold a space, which would go into the upstream's request line.
	if got := send("GET", "/api/orders/42?a=1 HTTP/1.1"); got != "400" && got != "reset" {
		t.Fatalf("a space in the query answered %s, want 400 (or the stream reset)", got)
	}
	if got := up.take(); len(got) != 0 {
		t.Fatalf("the upstream received:\n%s", strings.Join(got, "\n----\n"))
	}
	// Refused before routing, not by the proxy failing to send them.
	for _, l := range g.logs.lines(t, "request") {
		if l["route"] != "no_route" || l["error"] != "bad_request" {
			t.Fatalf("an invalid method was logged as %v", l)
		}
	}
	// Another client, after all that: the upstream is still in.
	resp, body := g.do(t, "GET", "/api/orders/42", appKey, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("a valid request after the invalid methods: %d %s", resp.StatusCode, body)
	}
	if got := send("GET", "/api/orders/42"); got != "200" {
		t.Fatalf("a valid request on the same connection: %s", got)
	}
}

// A route or role pattern that could never match a decided request is refused at
// load, with the reason: one ending in "/" (requests are decided without the
// trailing slash) and one naming HEAD (decided as GET).
func TestPatternsThatCannotMatchAreRefused(t *testing.T) {
	base := hygieneConfig("http://127.0.0.1:1", "")
	tests := []struct{ name, from, to, want string }{
		{"route with a trailing slash", `match: "GET /api/signed"`, `match: "GET /api/signed/"`, `routes[1].match`},
		{"route for HEAD", `match: "GET /api/signed"`, `match: "HEAD /api/signed"`, `routes[1].match`},
		{"role allowing a trailing slash", `"GET /api/orders/*"`, `"GET /api/orders/"`, `roles.provider.allow[1]`},
		{"role allowing HEAD", `"GET /api/orders/*"`, `"HEAD /api/orders/*"`, `roles.provider.allow[1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(strings.Replace(base, tt.from, tt.to, 1))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one at %s", err, tt.want)
			}
			t.Log(err)
		})
	}
	if _, err := parseConfig(strings.Replace(base, `match: "GET /api/signed"`, `match: "GET /"`, 1)); err != nil {
		t.Fatalf(`"GET /" refused: %v`, err)
	}
}

// A request already in canonical form passes hygiene without an allocation: it is
// on every request's path (load-test rows 5-7).
func TestHygieneAllocatesNothingOnACanonicalRequest(t *testing.T) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := chain(next, cleanPath(apierror.Write), hygiene)
	r := httptest.NewRequest("GET", "http://gw/api/orders/42?page=2", nil)
	for _, k := range []string{"Accept", "Accept-Encoding", "User-Agent", "X-Api-Key", "X-Request-Id", "Content-Type", "Referer"} {
		r.Header.Set(k, "v")
	}
	info := &reqinfo.Info{}
	r = r.WithContext(reqinfo.With(r.Context(), info))
	w := httptest.NewRecorder()
	if n := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("hygiene allocated %v times on a canonical request", n)
	}
	if info.DecidedMethod != "GET" || info.DecidedPath != "/api/orders/42" || len(r.Header) != 7 {
		t.Errorf("decided %q %q, headers %v", info.DecidedMethod, info.DecidedPath, r.Header)
	}
}

// hygieneRoutes are the patterns FuzzRequestCanonical routes on, those of
// hygieneConfig and a few more shapes.
var hygieneRoutes = []string{
	"POST /callbacks/daojia/**",
	"GET /api/signed",
	"POST /api/staff",
	"GET /api/orders/*",
	"PUT /api/orders/*/status",
	"* /api/**",
	"GET /",
}

// FuzzRequestCanonical: whatever the method, target and header a caller sends, the
// request routed is the request forwarded. A request the gateway accepts reaches the
// upstream (through the real proxy, read back from the bytes it would send) with the
// method, path and query as sent (less any query parameter the proxy cannot read); read there and decided again, it goes to the same route;
// its decided form is canonical (no HEAD, no trailing slash, an upper-case method);
// and no header the hygiene strips survives. Nothing panics.
func FuzzRequestCanonical(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/api/signed/", "X_Signgate_Client"},
		{"HEAD", "/api/signed", "X-Http-Method-Override"},
		{"get", "/api/staff", "X-Real-Ip"},
		{"POST", "/api/orders/..;/admin", "X-Forwarded-Port"},
		{"PUT", "/api/orders/42/status/", "X-Signgate-Role"},
		{"GET", "/api/%2e%2e/", "Trailer"},
		{"GET", "//", "X-Wx-Openid"},
		{"GET", "/", "Forwarded"},
		{"G(T", "/api/x", "Te"},
		{"GET", "/api/x%3B", "Proxy"},
		{"GET", "/api/orders/%34%32/", "X-Note"},
		{"OPTIONS", "*", "Accept"},
		{"GET", "http://elsewhere/api/orders/1/?a=b", "Host"},
		{"GET", "/api/x?a=1 HTTP/1.1", "X-Note"}, // HTTP/2 lets a :path hold a space
	} {
		f.Add(s[0], s[1], s[2], "v")
	}
	var mu sync.Mutex
	var out *http.Request // what the proxy sent, by the in-memory transport
	pool, err := proxy.New(proxy.Options{
		Name:    "backend",
		Targets: []string{"http://upstream.test"},
		Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			// What http.Transport refuses to send, refused as it does.
			if _, err := http.NewRequest(req.Method, "http://upstream.test/", nil); err != nil {
				return nil, err
			}
			for k, vv := range req.Header {
				for _, v := range vv {
					if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
						return nil, fmt.Errorf("invalid header %q: %q", k, v)
					}
				}
			}
			var raw bytes.Buffer
			if err := req.Write(&raw); err != nil {
				return nil, err
			}
			back, err := http.ReadRequest(bufio.NewReader(&raw))
			if err != nil {
				return nil, fmt.Errorf("the upstream cannot read what the proxy sent: %w", err)
			}
			mu.Lock()
			out = back
			mu.Unlock()
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
		}),
		MaxFails: -1,
	})
	if err != nil {
		f.Fatal(err)
	}
	var table route.Table[*routeEntry]
	for _, p := range hygieneRoutes {
		table.Add(route.MustParse(p), &routeEntry{name: p, handler: pool})
	}
	// The request side of buildGateway's chain, in its order.
	h := chain(routeTo(&table, apierror.Write), cleanPath(apierror.Write), hygiene)
	serve := func(method, target string, hdr http.Header) (routed string, status int) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return "", 0
		}
		info := &reqinfo.Info{RequestID: "01J0000000000000000000000"}
		r := (&http.Request{
			Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr, Host: "gw", RemoteAddr: "192.0.2.1:1234", Body: http.NoBody,
		}).WithContext(reqinfo.With(context.Background(), info))
		rec := &statusRecorder{}
		h.ServeHTTP(rec, r)
		return info.Route, rec.code()
	}
	f.Fuzz(func(t *testing.T, method, target, name, value string) {
		// What net/http's servers hand a handler: valid names, canonical; valid values.
		hdr := http.Header{}
		if httpguts.ValidHeaderFieldName(name) && httpguts.ValidHeaderFieldValue(value) {
			hdr[http.CanonicalHeaderKey(name)] = []string{value}
		}
		mu.Lock()
		out = nil
		mu.Unlock()
		routed, status := serve(method, target, hdr)
		mu.Lock()
		sent := out
		mu.Unlock()
		if routed == "" {
			if sent != nil {
				t.Fatalf("%q %q was refused (%d), and the upstream received %s %s", method, target, status, sent.Method, sent.RequestURI)
			}
			return
		}
		// A routed request is one the gateway can send: a failure to send it would
		// count against the upstream (the upstream here always answers 200).
		if status != 200 || sent == nil {
			t.Fatalf("%q %q was routed to %q but not sent: %d", method, target, routed, status)
		}
		u, _ := url.ParseRequestURI(target)
		if sent.Method != method || sent.URL.EscapedPath() != u.EscapedPath() || !sameOrFewerParams(sent.URL.RawQuery, u.RawQuery) {
			t.Fatalf("%q %q reached the upstream as %q %q", method, target, sent.Method, sent.RequestURI)
		}
		m, p := route.Decide(sent.Method, sent.URL.Path)
		if !route.ValidMethod(m) || m == http.MethodHead || p == "" || p != "/" && strings.HasSuffix(p, "/") {
			t.Fatalf("%q %q decided as %q %q", method, target, m, p)
		}
		if want, _ := table.Lookup(m, p); want == nil || want.name != routed {
			t.Fatalf("%q %q was routed to %q; its decided form %q %q is %v's", method, target, routed, m, p, want)
		}
		if again, st := serve(sent.Method, sent.RequestURI, sent.Header.Clone()); st != 200 || again != routed {
			t.Fatalf("%q %q was routed to %q; as the upstream read it (%q %q) it goes to %q (%d)", method, target, routed, sent.Method, sent.RequestURI, again, st)
		}
		// The headers the gateway sets are the gateway's; no other header hygiene
		// drops got through.
		gateway := http.Header{
			"X-Real-Ip":         {"192.0.2.1"},
			"X-Forwarded-For":   {"192.0.2.1"},
			"X-Forwarded-Host":  {"gw"},
			"X-Forwarded-Proto": {"http"},
			"X-Request-Id":      {"01J0000000000000000000000"},
		}
		for k, want := range gateway {
			if !slices.Equal(sent.Header[k], want) {
				t.Fatalf("the upstream received %s %q, want %q", k, sent.Header[k], want)
			}
		}
		for k := range sent.Header {
			if _, ours := gateway[k]; !ours && droppedHeader(k) {
				t.Fatalf("the upstream received %s: %q", k, sent.Header[k])
			}
		}
		if len(sent.Trailer) != 0 {
			t.Fatalf("the upstream received trailers %v", sent.Trailer)
		}
	})
}

// sameOrFewerParams reports whether the upstream's query got is the caller's sent,
// or holds only parameters sent has: httputil.ReverseProxy re-encodes a query it
// cannot parse whole, leaving out what it cannot read.
func sameOrFewerParams(got, sent string) bool {
	if got == sent {
		return true
	}
	have, _ := url.ParseQuery(sent)
	want, err := url.ParseQuery(got)
	if err != nil {
		return false
	}
	for k, vv := range want {
		for _, v := range vv {
			if !slices.Contains(have[k], v) {
				return false
			}
		}
	}
	return true
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// statusRecorder keeps the status a handler wrote and discards the rest.
type statusRecorder struct {
	hdr    http.Header
	status int
}

func (s *statusRecorder) Header() http.Header {
	if s.hdr == nil {
		s.hdr = http.Header{}
	}
	return s.hdr
}
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
func (s *statusRecorder) Write(p []byte) (int, error) {
	s.WriteHeader(200)
	return len(p), nil
}
func (s *statusRecorder) code() int {
	if s.status == 0 {
		return 200
	}
	return s.status
}

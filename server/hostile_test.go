package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
)

// hostileConfig is a plain-HTTP gateway (tls off, so raw request bytes reach the HTTP
// parser exactly as written) with an admin route only the ops role may call, so a path
// trick that reached it under the app's rights would show as a backend hit. extraServer
// is added to the server section.
func hostileConfig(upstreamURL, extraServer string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", max_body_bytes: 4096%s}
tls: {mode: "off"}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, roles: [provider]}
roles:
  resident_app: {allow: ["GET /api/services", "GET /api/orders/*", "POST /api/orders"]}
  provider:     {allow: ["PUT /api/orders/*/status"]}
  ops:          {allow: ["* /admin/**"]}
upstreams: {backend: {targets: [%q], response_timeout: 2s}}
routes:
  - {name: admin, match: "* /admin/**", upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
`, extraServer, auth.HashKey(appKey), auth.HashKey(providerKey), upstreamURL)
}

// recordingUpstream answers 200 with the request target and headers it received,
// and remembers every request target, so a test can tell whether a refused request
// reached it. A request whose body broke off is remembered with " (body cut)". It
// would accept any protocol upgrade (101, then echo), so a refused upgrade shows the
// gateway's decision, not the backend's.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			u.record(r.RequestURI + " (upgraded)")
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", r.Header.Get("Upgrade"))
			_ = brw.Flush()
			_, _ = io.Copy(conn, brw)
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			u.record(r.RequestURI + " (body cut)")
			return
		}
		u.record(r.RequestURI)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"uri": r.RequestURI, "path": r.URL.Path, "headers": r.Header, "trailers": r.Trailer,
		})
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) record(s string) {
	u.mu.Lock()
	u.seen = append(u.seen, s)
	u.mu.Unlock()
}

// hits returns the request targets the upstream has seen so far and forgets them.
func (u *recordingUpstream) hits() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// rawAnswer is what a raw exchange produced: a parsed response, or closed when the
// gateway shut the connection without one.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
	closed bool
}

// sendRaw writes req to addr over a fresh TCP connection exactly as given and reads
// one response; the connection is closed afterwards.
func sendRaw(t *testing.T, addr string, req []byte) rawAnswer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(req); err != nil {
		// The gateway may answer and close before it has read all of a huge request.
		t.Logf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawAnswer{closed: true}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	noteLeaks("a raw answer", append([]byte(fmt.Sprint(resp.Header)), b...))
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// The gateway decides on one path and the upstream serves that path: a trick either
// gets an envelope (and the backend never hears of it) or reaches the backend as the
// very path routing and RBAC saw.
func TestPathTricks(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	tests := []struct {
		name, method, target, key string
		wantStatus                int
		wantCode                  string
		wantUpstream              string // the request target the backend must see, for a 200
	}{
		{"dot-dot segment", "GET", "/api/../admin/users", appKey, 400, "bad_request", ""},
		{"encoded dot-dot", "GET", "/api/%2e%2e/admin/users", appKey, 400, "bad_request", ""},
		{"encoded dot-dot in upper case", "GET", "/api/%2E%2E/admin/users", appKey, 400, "bad_request", ""},
		{"one encoded dot of two", "GET", "/api/.%2e/admin/users", appKey, 400, "bad_request", ""},
		{"encoded dot in a name", "GET", "/api/services%2ejson", appKey, 400, "bad_request", ""},
		{"encoded slash joining two segments for the backend", "PUT", "/api/orders/42%2Fstatus", providerKey, 400, "bad_request", ""},
		{"encoded slash in lower case", "PUT", "/api/orders/42%2fstatus", providerKey, 400, "bad_request", ""},
		{"encoded slash inside a segment", "GET", "/api/orders%2F42/status", appKey, 400, "bad_request", ""},
		{"double-encoded dot-dot", "GET", "/api/orders/%252e%252e", appKey, 400, "bad_request", ""},
		{"double-encoded slash", "GET", "/api/orders/1%252Fcancel", appKey, 400, "bad_request", ""},
		{"double slash at the start", "GET", "//api/services", appKey, 400, "bad_request", ""},
		{"double slash inside", "GET", "/api//services", appKey, 400, "bad_request", ""},
		{"trailing dot segment", "GET", "/api/services/.", appKey, 400, "bad_request", ""},
		{"trailing dot-dot segment", "GET", "/api/services/..", appKey, 400, "bad_request", ""},
		{"trailing dot is another name", "GET", "/api/services.", appKey, 403, "forbidden", ""},
		{"mixed case is another route", "GET", "/API/services", appKey, 404, "no_route", ""},
		{"mixed case inside a route is another path", "GET", "/api/Services", appKey, 403, "forbidden", ""},
		{"encoded NUL", "GET", "/api/orders/42%00", appKey, 400, "bad_request", ""},
		{"encoded NUL before an extension", "GET", "/api/orders/42%00.json", appKey, 400, "bad_request", ""},
		{"encoded line feed", "GET", "/api/orders/42%0Ax", appKey, 400, "bad_request", ""},
		{"backslashes", "GET", `/api\..\admin`, appKey, 400, "bad_request", ""},
		{"backslash traversal inside an allowed segment", "GET", `/api/orders/x\..\..\admin`, appKey, 400, "bad_request", ""},
		{"encoded backslash", "GET", "/api/orders/x%5C..%5Cadmin", appKey, 400, "bad_request", ""},
		{"overlong UTF-8 dots", "GET", "/api/orders/%c0%ae%c0%ae", appKey, 400, "bad_request", ""},
		{"invalid UTF-8", "GET", "/api/orders/%ff", appKey, 400, "bad_request", ""},
		{"fullwidth solidus that NFKC makes a slash", "GET", "/api/orders/%EF%BC%8F..", appKey, 400, "bad_request", ""},
		{"fullwidth full stops sent raw", "GET", "/api/orders/．．", appKey, 400, "bad_request", ""},
		// net/http cannot parse it and answers a plain 400 itself.
		{"bad percent-encoding", "GET", "/api/orders/%zz", appKey, 400, "", ""},
		{"10 KB path", "GET", "/api/orders/" + strings.Repeat("a", 10<<10), appKey, 200, "", "/api/orders/" + strings.Repeat("a", 10<<10)},
		{"plain allowed path", "GET", "/api/orders/42", appKey, 200, "", "/api/orders/42"},
		{"encoded letters pass as sent", "GET", "/api/orders/%34%32", appKey, 200, "", "/api/orders/%34%32"},
		{"encoded UTF-8 passes as sent", "GET", "/api/orders/%e8%ae%a2%e5%8d%95", appKey, 200, "", "/api/orders/%e8%ae%a2%e5%8d%95"},
		{"absolute-form target", "GET", "http://elsewhere.example/api/orders/42", appKey, 200, "", "/api/orders/42"},
		// net/http answers "OPTIONS *" itself, with an empty 200; no handler runs.
		{"asterisk-form target", "OPTIONS", "*", appKey, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.hits()
			a := sendRaw(t, addr, request(tt.method, tt.target, tt.key))
			if a.closed || a.status != tt.wantStatus {
				t.Fatalf("%s %.60s: status %d (closed %v) %s, want %d", tt.method, tt.target, a.status, a.closed, a.body, tt.wantStatus)
			}
			hits := up.hits()
			if tt.wantUpstream == "" {
				if len(hits) != 0 {
					t.Fatalf("refused request reached the backend as %q", hits)
				}
				if tt.wantCode != "" && code(t, a.body) != tt.wantCode {
					t.Fatalf("body %s, want code %q", a.body, tt.wantCode)
				}
				return
			}
			if len(hits) != 1 || hits[0] != tt.wantUpstream {
				t.Fatalf("backend saw %.80q, want %.80q", hits, tt.wantUpstream)
			}
			// The backend's reading of the path is the one RBAC checked.
			var seen struct{ Path string }
			_ = json.Unmarshal(a.body, &seen)
			logged := g.logs.lines(t, "request")
			if decided := logged[len(logged)-1]["path"]; seen.Path != decided {
				t.Fatalf("backend decoded %.80q, the gateway decided on %.80q", seen.Path, decided)
			}
		})
	}
}

// request builds a raw HTTP/1.1 request with the API key key and extra headers.
func request(method, target, key string, hdr ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gw\r\n", method, target)
	if key != "" {
		fmt.Fprintf(&b, "X-Api-Key: %s\r\n", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("Connection: close\r\n\r\n")
	return []byte(b.String())
}

// readAll reads every response the gateway sends on conn until it closes the
// connection or stays quiet for two seconds.
func readAll(t *testing.T, conn net.Conn) []rawAnswer {
	t.Helper()
	br := bufio.NewReader(conn)
	var out []rawAnswer
	for {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		noteLeaks("a raw answer", append([]byte(fmt.Sprint(resp.Header)), b...))
		out = append(out, rawAnswer{status: resp.StatusCode, header: resp.Header, body: b})
	}
}

// cutOrNothing stands for "the backend saw nothing, or a request whose body broke
// off": the proxy streams bodies, so a body that breaks off may reach the backend as
// a request cut short, which it must discard; never as a whole request.
var cutOrNothing = []string{"(nothing, or /api/orders cut short)"}

// settle gives a backend that may still be reading a cut body time to record it.
func settle() { time.Sleep(100 * time.Millisecond) }

// Framing and header abuse over raw HTTP/1.1. net/http parses the request; the proxy
// writes a fresh one to the backend, so whatever the caller's framing was, the
// backend sees one well-formed request per request the gateway judged. Answers from
// net/http itself (400, 431, 501) are plain text, written before any signgate code
// runs; everything else is the envelope.
func TestSmugglingAndFraming(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	key := "X-Api-Key: " + appKey + "\r\n"
	post := "POST /api/orders HTTP/1.1\r\nHost: gw\r\n" + key
	get := "GET /api/services HTTP/1.1\r\nHost: gw\r\n" + key
	tests := []struct {
		name    string
		raw     string
		want    int      // the status of the first answer
		wantEnv string   // the envelope code, "" for net/http's plain answers and for 200
		backend []string // what the backend must have seen, in order
	}{
		{"Content-Length and Transfer-Encoding: chunked wins, Content-Length is dropped",
			post + "Content-Length: 40\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			200, "", []string{"/api/orders"}},
		{"two differing Content-Lengths",
			post + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400, "", nil},
		{"two equal Content-Lengths are one",
			post + "Content-Length: 4\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd", 200, "", []string{"/api/orders"}},
		{"Content-Length with a list",
			post + "Content-Length: 4, 5\r\n\r\nabcde", 400, "", nil},
		{"negative Content-Length",
			post + "Content-Length: -1\r\n\r\n", 400, "", nil},
		{"Content-Length with a plus sign",
			post + "Content-Length: +3\r\n\r\nabc", 400, "", nil},
		{"Content-Length past int64",
			post + "Content-Length: 99999999999999999999\r\n\r\nabc", 400, "", nil},
		{"Content-Length over max_body_bytes",
			post + "Content-Length: 5000\r\n\r\nabc", 413, "body_too_large", nil},
		{"chunk size that is not hex",
			post + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "bad_request", cutOrNothing},
		{"chunk size past int64",
			post + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400, "bad_request", cutOrNothing},
		{"chunk shorter than its size, then the next chunk line",
			post + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nab\r\n0\r\n\r\n", 400, "bad_request", cutOrNothing},
		{"chunked body over max_body_bytes",
			post + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n1388\r\n" + strings.Repeat("x", 5000) + "\r\n0\r\n\r\n", 413, "body_too_large", cutOrNothing},
		{"Transfer-Encoding other than chunked",
			post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "", nil},
		{"Transfer-Encoding identity",
			post + "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", 501, "", nil},
		{"space before the colon of Transfer-Encoding",
			post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "", nil},
		{"obs-fold is joined with a space, not a new header",
			get + "X-Note: a\r\n X-Signgate-Client: ops\r\nConnection: close\r\n\r\n", 200, "", []string{"/api/services"}},
		{"header value with NUL",
			get + "X-Note: a\x00b\r\n\r\n", 400, "", nil},
		{"header name with a space",
			get + "X Note: a\r\n\r\n", 400, "", nil},
		{"no Host",
			"GET /api/services HTTP/1.1\r\n" + key + "\r\n", 400, "", nil},
		{"two Hosts",
			get + "Host: other\r\n\r\n", 400, "", nil},
		{"headers of 80 KB, over max_header_bytes (64 KB)",
			get + "X-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, "", nil},
		{"8,000 small headers, under max_header_bytes",
			get + strings.Repeat("X-H: v\r\n", 8000) + "Connection: close\r\n\r\n", 200, "", []string{"/api/services"}},
		{"20,000 small headers, over max_header_bytes",
			get + strings.Repeat("X-H: v\r\n", 20000) + "\r\n", 431, "", nil},
		{"query string of 100 KB",
			"GET /api/services?q=" + strings.Repeat("a", 100<<10) + " HTTP/1.1\r\nHost: gw\r\n" + key + "\r\n", 431, "", nil},
		{"bad percent-encoding and invalid UTF-8 in the query",
			"GET /api/services?q=%zz&r=%ff%fe&s=%C0%AE HTTP/1.1\r\nHost: gw\r\n" + key + "Connection: close\r\n\r\n",
			200, "", []string{"/api/services?r=%FF%FE&s=%C0%AE"}},
		{"invalid UTF-8 in a header value",
			get + "X-Note: \xff\xfe\r\nConnection: close\r\n\r\n", 200, "", []string{"/api/services"}},
		{"HTTP/2 preface on the HTTP/1.1 port",
			"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request", nil},
		{"HTTP/0.9 request line",
			"GET /api/services\r\n\r\n", 400, "", nil},
		{"unknown Expect",
			post + "Expect: 200-ok\r\nContent-Length: 3\r\n\r\nabc", 417, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.hits()
			a := sendRaw(t, addr, []byte(tt.raw))
			if strings.Contains(tt.raw, "Content-Length") || strings.Contains(tt.raw, "Transfer-Encoding") {
				settle()
			}
			hits := up.hits()
			if a.closed || a.status != tt.want {
				t.Fatalf("status %d (closed %v) %.200s, want %d", a.status, a.closed, a.body, tt.want)
			}
			if tt.wantEnv != "" && code(t, a.body) != tt.wantEnv {
				t.Fatalf("body %.200s, want envelope %q", a.body, tt.wantEnv)
			}
			if len(tt.backend) == 1 && tt.backend[0] == cutOrNothing[0] && (len(hits) == 0 || len(hits) == 1 && hits[0] == "/api/orders (body cut)") {
				hits = tt.backend
			}
			if strings.Join(hits, " ") != strings.Join(tt.backend, " ") {
				t.Fatalf("backend saw %q, want %q", hits, tt.backend)
			}
		})
	}
	if p := g.logs.lines(t, "panic"); len(p) != 0 {
		t.Fatalf("panics: %v", p)
	}
}

// An obs-fold continuation line is part of the header before it (net/http joins it
// with a space, as RFC 9112 allows): it cannot add a header of its own.
func TestObsFoldCannotAddAHeader(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	a := sendRaw(t, g.srv.Addr().String(), request("GET", "/api/services", appKey,
		"X-Note", "a\r\n X-Signgate-Client: ops"))
	var seen struct{ Headers http.Header }
	_ = json.Unmarshal(a.body, &seen)
	if a.status != 200 || seen.Headers.Get("X-Signgate-Client") != "property-miniapp" || seen.Headers.Get("X-Note") != "a X-Signgate-Client: ops" {
		t.Fatalf("status %d; backend saw X-Signgate-Client %q, X-Note %q", a.status,
			seen.Headers.Get("X-Signgate-Client"), seen.Headers.Get("X-Note"))
	}
}

// A request smuggled after a chunked body that also claims a Content-Length is not
// hidden inside the first request: the gateway reads it as a request of its own,
// judges it with the same routing and RBAC, and the backend never sees it.
func TestSmuggledRequestIsJudgedByTheGateway(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	conn, err := net.Dial("tcp", g.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	smuggled := "GET /admin/users HTTP/1.1\r\nHost: gw\r\nX-Api-Key: " + appKey + "\r\nConnection: close\r\n\r\n"
	fmt.Fprintf(conn, "POST /api/orders HTTP/1.1\r\nHost: gw\r\nX-Api-Key: %s\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s",
		appKey, 5+len(smuggled), smuggled)
	answers := readAll(t, conn)
	settle()
	if len(answers) != 2 || answers[0].status != 200 || answers[1].status != 403 || code(t, answers[1].body) != "forbidden" {
		t.Fatalf("answers %+v, want 200 then 403 forbidden", answers)
	}
	if hits := up.hits(); len(hits) != 1 || hits[0] != "/api/orders" {
		t.Fatalf("backend saw %q, want only /api/orders", hits)
	}
}

// Connection: may name headers to drop as hop-by-hop. The proxy drops them before it
// sets its own, so a caller can neither remove the identity the gateway vouches for
// nor keep a credential: X-Api-Key is read by the gateway and stripped anyway.
func TestConnectionHeaderCannotStripIdentity(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	a := sendRaw(t, g.srv.Addr().String(), request("GET", "/api/services", appKey,
		"Connection", "X-Signgate-Client, X-Request-Id, X-Forwarded-For, X-Api-Key, Host",
		"X-Signgate-Client", "ops"))
	if a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	var seen struct{ Headers http.Header }
	if err := json.Unmarshal(a.body, &seen); err != nil {
		t.Fatal(err)
	}
	h := seen.Headers
	for k, want := range map[string]string{
		"X-Signgate-Client": "property-miniapp",
		"X-Request-Id":      a.header.Get("X-Request-Id"),
		"X-Forwarded-For":   "127.0.0.1",
		"X-Api-Key":         "",
		"Connection":        "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("backend saw %s = %q, want %q", k, got, want)
		}
	}
}

// Upgrades are refused with an envelope, though this backend would accept them: once
// spliced, an h2c connection or a WebSocket carries requests the gateway never
// routes, authorises, limits or masks (h2c smuggling).
func TestUpgradesAndConnectRefused(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	tests := []struct {
		name string
		raw  []byte
	}{
		{"WebSocket", request("GET", "/api/services", appKey, "Connection", "Upgrade", "Upgrade", "websocket",
			"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")},
		{"h2c", request("GET", "/api/services", appKey, "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c",
			"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")},
		{"upgrade token in lower case among others", request("GET", "/api/services", appKey, "Connection", "keep-alive, upgrade", "Upgrade", "websocket")},
		{"upgrade without an API key", request("GET", "/api/services", "", "Connection", "Upgrade", "Upgrade", "websocket")},
		{"CONNECT to a host", []byte("CONNECT backend:80 HTTP/1.1\r\nHost: backend:80\r\nX-Api-Key: " + appKey + "\r\n\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sendRaw(t, addr, tt.raw)
			if a.status != 400 || code(t, a.body) != "bad_request" {
				t.Fatalf("status %d %s, want 400 bad_request", a.status, a.body)
			}
			if hits := up.hits(); len(hits) != 0 {
				t.Fatalf("backend saw %q", hits)
			}
		})
	}
	t.Run("Upgrade header without Connection: upgrade is dropped, not tunnelled", func(t *testing.T) {
		a := sendRaw(t, addr, request("GET", "/api/services", appKey, "Upgrade", "websocket"))
		if a.status != 200 || strings.Contains(string(a.body), "Upgrade") {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		if hits := up.hits(); len(hits) != 1 || hits[0] != "/api/services" {
			t.Fatalf("backend saw %q", hits)
		}
	})
}

// Headers trickled slower than server.read_header_timeout: the connection is closed,
// after at most net/http's own plain 400, and the backend never hears of it.
func TestSlowlorisHeadersCutOff(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ", read_header_timeout: 500ms"))
	conn, err := net.Dial("tcp", g.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /api/services HTTP/1.1\r\nHost: gw\r\n"); err != nil {
		t.Fatal(err)
	}
	// One header byte every 100 ms would keep a naive server waiting forever.
	for _, c := range []byte("X-Slow: " + strings.Repeat("a", 30)) {
		if _, err := conn.Write([]byte{c}); err != nil {
			break // closed by the gateway
		}
		time.Sleep(100 * time.Millisecond)
	}
	// net/http may say a plain 400 for the half-read request before it closes.
	answers := readAll(t, conn)
	took := time.Since(start)
	if len(answers) > 1 || len(answers) == 1 && (answers[0].status != 400 && answers[0].status != 408 ||
		!strings.HasPrefix(answers[0].header.Get("Content-Type"), "text/plain")) {
		t.Fatalf("answers %+v, want at most net/http's own 400 or 408 and the connection closed", answers)
	}
	if _, err := conn.Write([]byte("more\r\n\r\n")); err == nil {
		if n, _ := conn.Read(make([]byte, 1)); n != 0 {
			t.Fatal("the connection is still open")
		}
	}
	if took > 4*time.Second {
		t.Fatalf("the connection stayed open %v", took)
	}
	if hits := up.hits(); len(hits) != 0 {
		t.Fatalf("backend saw %q", hits)
	}
}

// A body trickled slower than server.read_timeout allows is cut: the caller is told
// 400 (not net/http's empty 200, not a 502 blamed on the upstream), the connection
// is closed, the backend never gets a whole request, and the target is not ejected.
func TestSlowBodyCutByReadTimeout(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ", read_header_timeout: 500ms, read_timeout: 1s"))
	// More than passive.max_fails (3), at once, so the test takes one read_timeout.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			conn, err := net.Dial("tcp", g.srv.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /api/orders HTTP/1.1\r\nHost: gw\r\nX-Api-Key: %s\r\nContent-Length: 100\r\n\r\n", appKey)
			go func() {
				for range 100 {
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			answers := readAll(t, conn)
			if len(answers) != 1 || answers[0].status != 400 || code(t, answers[0].body) != "bad_request" {
				t.Errorf("slow body %d: answers %+v, want one 400 bad_request and the connection closed", i, answers)
			}
		})
	}
	wg.Wait()
	settle()
	for _, h := range up.hits() {
		if h != "/api/orders (body cut)" {
			t.Fatalf("backend saw %q whole", h)
		}
	}
	resp := sendRaw(t, g.srv.Addr().String(), request("GET", "/api/services", appKey))
	if resp.status != 200 {
		t.Fatalf("after slow bodies, a good request got %d %s: the target was blamed", resp.status, resp.body)
	}
	for _, l := range g.logs.lines(t, "request") {
		if l["path"] == "/api/orders" && (l["status"] != float64(400) || l["error"] != "bad_request") {
			t.Errorf("slow body logged %v", l)
		}
	}
}

// A caller's broken chunked body is the caller's fault: 400, and no passive failure
// counted against the target, however many arrive (passive.max_fails is 3).
func TestBrokenBodiesDoNotEjectTheUpstream(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	addr := g.srv.Addr().String()
	for i := range 6 {
		a := sendRaw(t, addr, []byte("POST /api/orders HTTP/1.1\r\nHost: gw\r\nX-Api-Key: "+appKey+
			"\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n"))
		if a.status != 400 || code(t, a.body) != "bad_request" {
			t.Fatalf("broken body %d: %d %s, want 400 bad_request", i, a.status, a.body)
		}
	}
	a := sendRaw(t, addr, request("GET", "/api/services", appKey))
	if a.status != 200 {
		t.Fatalf("after broken bodies, a good request got %d %s", a.status, a.body)
	}
}

// Every hmac-sha256 header missing, empty, doubled, overlong or malformed, and every
// way a timestamp or nonce can be wrong: each answers its DESIGN.md code and none
// reaches the backend. Only the well-formed, correctly signed, fresh request does.
func TestSignatureInputs(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, signedConfig(up.URL, "http://127.0.0.1:1", ""))
	const path, body = "/api/orders/42/status", `{"status":"done"}`
	now := time.Now()
	nonces := 0
	// signed returns the headers of a correct signature at time at, with a fresh
	// nonce unless one is given.
	signed := func(at time.Time, nonce string) http.Header {
		if nonce == "" {
			nonces++
			nonce = fmt.Sprintf("table-nonce-%04d", nonces)
		}
		h, err := auth.SignRequest("PUT", path, []byte(body), []byte(partnerSecret), at, nonce)
		if err != nil {
			t.Fatal(err)
		}
		out := http.Header{}
		for k, v := range h {
			out.Set(k, v)
		}
		return out
	}
	with := func(h http.Header, kv ...string) http.Header {
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	without := func(h http.Header, k string) http.Header { h.Del(k); return h }
	upperSignature := func(h http.Header) http.Header { return with(h, "X-Signature", strings.ToUpper(h.Get("X-Signature"))) }
	twice := func(h http.Header, k string) http.Header { h.Add(k, h.Get(k)); return h }
	long := strings.Repeat("1", 10<<10)
	ts := func(at time.Time) string { return fmt.Sprint(at.Unix()) }

	tests := []struct {
		name       string
		h          http.Header
		wantStatus int
		wantCode   string
	}{
		{"X-Timestamp missing", without(signed(now, ""), "X-Timestamp"), 401, "missing_credentials"},
		{"X-Nonce missing", without(signed(now, ""), "X-Nonce"), 401, "missing_credentials"},
		{"X-Signature missing", without(signed(now, ""), "X-Signature"), 401, "missing_credentials"},
		{"X-Timestamp empty", with(signed(now, ""), "X-Timestamp", ""), 401, "missing_credentials"},
		{"X-Nonce empty", with(signed(now, ""), "X-Nonce", ""), 401, "missing_credentials"},
		{"X-Signature empty", with(signed(now, ""), "X-Signature", ""), 401, "missing_credentials"},
		{"X-Timestamp sent twice", twice(signed(now, ""), "X-Timestamp"), 400, "bad_request"},
		{"X-Nonce sent twice", twice(signed(now, ""), "X-Nonce"), 400, "bad_request"},
		{"X-Signature sent twice", twice(signed(now, ""), "X-Signature"), 400, "bad_request"},
		{"X-Timestamp of 10 KB", with(signed(now, ""), "X-Timestamp", long), 400, "bad_request"},
		{"X-Nonce of 10 KB", with(signed(now, ""), "X-Nonce", strings.Repeat("n", 10<<10)), 400, "bad_request"},
		{"X-Signature of 10 KB", with(signed(now, ""), "X-Signature", strings.Repeat("a", 10<<10)), 400, "bad_request"},
		{"X-Signature not hex", with(signed(now, ""), "X-Signature", strings.Repeat("z", 64)), 400, "bad_request"},
		{"X-Signature in upper-case hex", upperSignature(signed(now, "")), 400, "bad_request"},
		{"X-Signature one digit short", with(signed(now, ""), "X-Signature", strings.Repeat("a", 63)), 400, "bad_request"},
		{"X-Signature base64 instead of hex", with(signed(now, ""), "X-Signature", "lVKCuxL+eVHnzJq4KaF5oFN35/d7dFJx6su3oUs0PqI="), 400, "bad_request"},
		{"X-Signature well formed but wrong", with(signed(now, ""), "X-Signature", strings.Repeat("a", 64)), 401, "invalid_signature"},
		{"timestamp at the epoch", signed(time.Unix(0, 0), ""), 401, "timestamp_skew"},
		{"timestamp a year ahead", signed(now.AddDate(1, 0, 0), ""), 401, "timestamp_skew"},
		{"timestamp 11 minutes ahead", signed(now.Add(11*time.Minute), ""), 401, "timestamp_skew"},
		{"timestamp in milliseconds", with(signed(now, ""), "X-Timestamp", fmt.Sprint(now.UnixMilli())), 401, "timestamp_skew"},
		{"timestamp at the end of int64", with(signed(now, ""), "X-Timestamp", "9223372036854775807"), 401, "timestamp_skew"},
		{"timestamp past int64", with(signed(now, ""), "X-Timestamp", "9223372036854775808"), 400, "bad_request"},
		{"negative timestamp", with(signed(now, ""), "X-Timestamp", "-"+ts(now)), 400, "bad_request"},
		{"timestamp with a plus sign", with(signed(now, ""), "X-Timestamp", "+"+ts(now)), 400, "bad_request"},
		{"fractional timestamp", with(signed(now, ""), "X-Timestamp", ts(now)+".5"), 400, "bad_request"},
		{"timestamp with a space inside", with(signed(now, ""), "X-Timestamp", ts(now)[:5]+" "+ts(now)[5:]), 400, "bad_request"},
		{"hex timestamp", with(signed(now, ""), "X-Timestamp", fmt.Sprintf("0x%x", now.Unix())), 400, "bad_request"},
		{"RFC 3339 timestamp", with(signed(now, ""), "X-Timestamp", now.UTC().Format(time.RFC3339)), 400, "bad_request"},
		{"nonce of 7 characters", with(signed(now, ""), "X-Nonce", "abcdefg"), 400, "bad_request"},
		{"nonce of 65 characters", with(signed(now, ""), "X-Nonce", strings.Repeat("n", 65)), 400, "bad_request"},
		{"nonce with a space", with(signed(now, ""), "X-Nonce", "nonce 12345"), 400, "bad_request"},
		{"nonce with a dot", with(signed(now, ""), "X-Nonce", "nonce.12345"), 400, "bad_request"},
		{"nonce with a slash", with(signed(now, ""), "X-Nonce", "nonce/12345"), 400, "bad_request"},
		{"nonce with Chinese characters", with(signed(now, ""), "X-Nonce", "随机数随机数随机数"), 400, "bad_request"},
		{"nonce of exactly 8 characters passes", signed(now, "abcdefgh"), 200, ""},
		{"nonce of exactly 64 characters passes", signed(now, strings.Repeat("N", 64)), 200, ""},
		{"a bad signature does not burn the nonce", with(signed(now, "kept-nonce-01"), "X-Signature", strings.Repeat("b", 64)), 401, "invalid_signature"},
		{"so the genuine request with it passes", signed(now, "kept-nonce-01"), 200, ""},
		{"nonce reused", signed(now, "kept-nonce-01"), 401, "replayed"},
		{"nonce reused with another timestamp", signed(now.Add(-time.Second), "kept-nonce-01"), 401, "replayed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("PUT", g.url+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.h
			req.Header.Set("X-Api-Key", partnerKey)
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || code(t, b) != tt.wantCode {
				t.Fatalf("%d %s, want %d %q", resp.StatusCode, b, tt.wantStatus, tt.wantCode)
			}
			hits := up.hits()
			if want := map[bool]int{true: 1, false: 0}[tt.wantStatus == 200]; len(hits) != want {
				t.Fatalf("backend saw %q", hits)
			}
		})
	}
	t.Run("the API key is still required", func(t *testing.T) {
		resp, b := g.do(t, "PUT", path, "", strings.NewReader(body), headerList(signed(now, ""))...)
		if resp.StatusCode != 401 || code(t, b) != "missing_credentials" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("a signature covers the query: bad percent-encoding in it is refused", func(t *testing.T) {
		resp, b := g.do(t, "PUT", path+"?a=%zz", partnerKey, strings.NewReader(body), headerList(signed(now, ""))...)
		if resp.StatusCode != 400 || code(t, b) != "bad_request" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	if len(up.hits()) != 0 {
		t.Error("a refused request reached the backend")
	}
}

func headerList(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k, v)
		}
	}
	return out
}

// corpusRecord is one request of testdata/malformed, as gen_malformed.go wrote it.
type corpusRecord struct {
	family, name string
	raw          []byte
}

// loadCorpus reads every record of testdata/malformed/*.reqs (see gen_malformed.go
// for the format).
func loadCorpus(t *testing.T) []corpusRecord {
	t.Helper()
	files, err := filepath.Glob("testdata/malformed/*.reqs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	var out []corpusRecord
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		family := strings.TrimSuffix(filepath.Base(file), ".reqs")
		for len(data) > 0 {
			line, rest, ok := bytes.Cut(data, []byte("\n"))
			if !ok {
				t.Fatalf("%s: unterminated line %.40q", file, data)
			}
			data = rest
			if len(line) == 0 || line[0] == '#' {
				continue
			}
			var n int
			head, name, _ := strings.Cut(strings.TrimPrefix(string(line), "=== "), " ")
			if !strings.HasPrefix(string(line), "=== ") {
				t.Fatalf("%s: want a record line, got %.60q", file, line)
			}
			if _, err := fmt.Sscanf(head, "%d", &n); err != nil || n > len(data) || n < len(data) && data[n] != '\n' {
				t.Fatalf("%s: bad record %q", file, line)
			}
			out = append(out, corpusRecord{family: family, name: name, raw: data[:n]})
			data = data[min(n+1, len(data)):]
		}
	}
	return out
}

// withClock replaces the corpus placeholders with the current time, so requests
// frozen in the corpus reach the checks that come after the clock ones.
func withClock(raw []byte, now time.Time) []byte {
	raw = bytes.ReplaceAll(raw, []byte("{{unix-now}}"), []byte(strconv.FormatInt(now.Unix(), 10)))
	return bytes.ReplaceAll(raw, []byte("{{gmt8-now:19byte}}"), []byte(daojia.Timestamp(now)))
}

// corpusConfig has every kind of route the corpus aims at: upstream routes, an
// hmac-sha256 partner (whose responses are masked), a signed-only route, a public
// route, the 58到家 relay and the daojia-md5 callback. Timeouts are short so the
// requests that never finish cost a second.
func corpusConfig(upstreamURL, daojiaURL string) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0", max_body_bytes: 4096, read_header_timeout: 1s, read_timeout: 1s}
tls: {mode: "off"}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [app]}
  - {id: sunshine-housekeeping, api_key_sha256: %q, secret: %q, signature: hmac-sha256, roles: [provider]}
roles:
  app: {allow: ["GET /api/services", "GET /api/orders/*", "POST /api/orders", "POST /daojia/**"]}
  provider: {allow: ["PUT /api/orders/*/status", "GET /api/**"], mask: true}
upstreams: {backend: {targets: [%q], response_timeout: 2s}}
daojia: {base_url: %q, service_key: %q, service_secret: %q, timeout: 2s}
routes:
  - {name: relay, match: "POST /daojia/**", daojia: relay}
  - {name: callback, match: "POST /callbacks/daojia/**", verify: daojia-md5, upstream: backend}
  - {name: signed-only, match: "* /api/signed/**", verify: hmac-sha256, upstream: backend}
  - {name: public, match: "GET /public/**", upstream: backend, public: true}
  - {name: admin, match: "* /admin/**", upstream: backend}
  - {name: api, match: "* /api/**", upstream: backend}
cors: {allow_origins: ["https://admin.example.com"]}
`, auth.HashKey(appKey), auth.HashKey(partnerKey), partnerSecret, upstreamURL, daojiaURL, djKey, djSecret)
}

// netHTTPOwn reports whether a is one of the answers net/http writes itself, in
// plain text, before any signgate code runs: 501 for a transfer coding it does not
// implement and 505 for an HTTP version it does not speak, as RFC 9112 asks.
func netHTTPOwn(a rawAnswer) bool {
	return (a.status == http.StatusNotImplemented || a.status == http.StatusHTTPVersionNotSupported) &&
		strings.HasPrefix(a.header.Get("Content-Type"), "text/plain")
}

// The checked-in corpus of malformed requests, replayed over raw TCP against a live
// gateway whose backend always answers 200: no 5xx from signgate, no panic, no
// protocol switch, the gateway still serves afterwards, and memory and goroutines
// come back to where they were.
func TestMalformedCorpus(t *testing.T) {
	recs := loadCorpus(t)
	if len(recs) < 500 {
		t.Fatalf("the corpus holds %d requests, want at least 500", len(recs))
	}
	up := newRecordingUpstream(t)
	sb := daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})
	platform := httptest.NewServer(sb)
	defer platform.Close()
	g := startGateway(t, corpusConfig(up.URL, platform.URL))
	addr := g.srv.Addr().String()
	good := request("GET", "/api/services", appKey)
	if a := sendRaw(t, addr, good); a.status != 200 {
		t.Fatalf("a good request before the corpus: %d %s", a.status, a.body)
	}
	// Idle pooled connections to the backends hold goroutines on both ends; closing
	// them from the backends' side before each count leaves only what a leak holds.
	dropIdle := func() {
		up.CloseClientConnections()
		platform.CloseClientConnections()
		time.Sleep(100 * time.Millisecond)
	}
	dropIdle()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	type outcome struct {
		rec     corpusRecord
		answers []rawAnswer
	}
	results := make([]outcome, len(recs))
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for i := range next {
				conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Errorf("%s/%s: dial: %v", recs[i].family, recs[i].name, err)
					continue
				}
				// The gateway may answer and close before a huge request is written.
				_, _ = conn.Write(withClock(recs[i].raw, time.Now()))
				results[i] = outcome{recs[i], readAll(t, conn)}
				conn.Close()
			}
		})
	}
	for i := range recs {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)

	byStatus := map[string]int{}
	for _, o := range results {
		if len(o.answers) == 0 {
			byStatus[o.rec.family+" closed"]++
		}
		for _, a := range o.answers {
			byStatus[fmt.Sprintf("%s %d", o.rec.family, a.status)]++
			switch {
			case a.status == http.StatusSwitchingProtocols:
				t.Errorf("%s/%s: the gateway switched protocols", o.rec.family, o.rec.name)
			case a.status >= 500 && !netHTTPOwn(a):
				t.Errorf("%s/%s: %d %.200s", o.rec.family, o.rec.name, a.status, a.body)
			}
			if err := backendSawNoForgery(a.body); err != nil {
				t.Errorf("%s/%s: %v", o.rec.family, o.rec.name, err)
			}
		}
	}
	keys := make([]string, 0, len(byStatus))
	for k := range byStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var summary strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&summary, "%s: %d; ", k, byStatus[k])
	}
	t.Logf("%d requests in %v: %s", len(recs), took.Round(time.Millisecond), summary.String())

	if p := g.logs.lines(t, "panic"); len(p) != 0 {
		t.Errorf("%d panics, first %v", len(p), p[0])
	}
	if strings.Contains(logText(g.logs), "panic serving") {
		t.Error("net/http recovered a panic")
	}
	if a := sendRaw(t, addr, good); a.status != 200 {
		t.Fatalf("a good request after the corpus: %d %s", a.status, a.body)
	}
	resp, err := http.Get(g.admin + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz after the corpus: %v %v", resp, err)
	}
	resp.Body.Close()

	// Let the connections the corpus left wind down, then compare.
	deadline := time.Now().Add(5 * time.Second)
	for dropIdle(); runtime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline); dropIdle() {
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use %d KB before, %d KB after; goroutines %d before, %d after",
		before.HeapInuse>>10, after.HeapInuse>>10, goroutines, runtime.NumGoroutine())
	if grew > 8<<20 {
		t.Errorf("heap in use grew by %d MB over the corpus", grew>>20)
	}
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		t.Errorf("%d goroutines after the corpus, %d before", n, goroutines)

	}
}

// backendSawNoForgery checks an answer of recordingUpstream (other answers pass):
// the backend saw no caller credential, in headers or trailers, and no identity but
// one the gateway vouches for.
func backendSawNoForgery(body []byte) error {
	var seen struct {
		Headers  http.Header
		Trailers http.Header
	}
	if json.Unmarshal(body, &seen) != nil || seen.Headers == nil {
		return nil
	}
	for _, k := range []string{"X-Api-Key", "X-Signature", "X-Nonce", "X-Timestamp"} {
		if seen.Headers.Get(k) != "" || seen.Trailers.Get(k) != "" {
			return fmt.Errorf("the backend saw the caller's %s", k)
		}
	}
	switch c := seen.Headers.Values("X-Signgate-Client"); {
	case len(c) > 1:
		return fmt.Errorf("the backend saw X-Signgate-Client %q", c)
	case len(c) == 1 && c[0] != "property-miniapp" && c[0] != "sunshine-housekeeping" && c[0] != "daojia":
		return fmt.Errorf("the backend saw a forged X-Signgate-Client %q", c[0])
	}
	if seen.Trailers.Get("X-Signgate-Client") != "" {
		return fmt.Errorf("the backend saw X-Signgate-Client %q as a trailer", seen.Trailers.Get("X-Signgate-Client"))
	}
	return nil
}

// logText is everything logged to b so far.
func logText(b *syncBuffer) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Trailers a caller sends after a chunked body are not a way around the credential
// stripping: the backend may see the announced names, never the values.
func TestTrailersCarryNoCredentials(t *testing.T) {
	up := newRecordingUpstream(t)
	g := startGateway(t, hostileConfig(up.URL, ""))
	a := sendRaw(t, g.srv.Addr().String(), []byte("POST /api/orders HTTP/1.1\r\nHost: gw\r\nX-Api-Key: "+appKey+
		"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Api-Key, X-Signgate-Client\r\nConnection: close\r\n\r\n"+
		"2\r\n{}\r\n0\r\nX-Api-Key: "+appKey+"\r\nX-Signgate-Client: ops\r\n\r\n"))
	if a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	if err := backendSawNoForgery(a.body); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
}

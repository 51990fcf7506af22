package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/route"
)

// middleware wraps a handler; chain applies them outermost first.
type middleware func(http.Handler) http.Handler

func chain(h http.Handler, mws ...middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// recoverPanic turns a handler panic into a 500 internal envelope and logs the
// stack; the caller never sees it. http.ErrAbortHandler is net/http's own signal to
// abort a response and passes through.
func recoverPanic(logger *slog.Logger) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic",
					slog.String("request_id", reqinfo.Of(r).RequestID),
					slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
				apierror.Write(w, r, apierror.ErrInternal)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// bodyReadIdle is how long a request body may go without a byte arriving: nginx's
// client_body_timeout (60s). It bounds each read, not the whole body, so a large
// upload on a slow link goes on as long as it keeps moving, while a caller that
// opens a body and stops holds a connection and a goroutine for a minute at most.
// Responses are not bounded by it: server-sent events stream as long as they like.
// When server.read_timeout is set, net/http's whole-request deadline governs instead.
const bodyReadIdle = 60 * time.Second

// limitBody refuses bodies over max: at once when Content-Length says so, and as
// soon as a reader crosses the limit otherwise; and bounds each body read by
// bodyReadIdle (see limitBodyIdle).
func limitBody(max int64) middleware { return limitBodyIdle(max, bodyReadIdle) }

// limitBodyIdle is limitBody with idle as the longest wait for the next bytes of a
// body (0: no bound of its own).
//
// It also answers for a body the caller fails to deliver: a malformed chunk, or one
// stalled past idle or server.read_timeout. The request's context is cancelled at the first
// such read error, so the layers below stop, and the proxy, which treats a
// cancelled request as the caller's doing, neither retries it nor counts it against
// the upstream: otherwise three bad chunks from any caller would eject a healthy
// target (passive max_fails) and answer 502 upstream_error for the caller's fault.
// The caller then gets 400 bad_request, when no response has started, instead of
// the empty 200 net/http sends for a handler that wrote nothing; a caller that hung
// up mid-body gets nothing, as before.
func limitBodyIdle(max int64, idle time.Duration) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				// Closing spares reading a body already refused: net/http would
				// otherwise read up to 256 KB of it before answering, waiting as
				// long as the caller cares to trickle it.
				w.Header().Set("Connection", "close")
				apierror.Write(w, r, apierror.ErrBodyTooLarge)
				return
			}
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			conn := r.Context() // net/http cancels it when the caller's connection fails
			ctx, cancel := context.WithCancelCause(conn)
			defer cancel(nil)
			body := &callerBody{ReadCloser: http.MaxBytesReader(w, r.Body, max), cancel: cancel}
			if srv, _ := conn.Value(http.ServerContextKey).(*http.Server); idle > 0 && (srv == nil || srv.ReadTimeout <= 0) {
				body.idle, body.rc = idle, http.NewResponseController(w)
			}
			r = r.WithContext(ctx)
			r.Body = body
			next.ServeHTTP(w, r)
			body.handlerDone()
			// A caller that hung up gets nothing (logged 499); one that stalled past
			// the read timeout is still there to be told.
			e := body.failed.Load()
			if e != nil && !responseStarted(w) && (e == errBodyTooSlow || conn.Err() == nil) {
				apierror.Write(w, r, e)
			}
		})
	}
}

// Answers for a body the caller failed to deliver.
var (
	errBodyTooSlow = apierror.BadRequest("the request body stopped arriving: no bytes within the server's read timeout")
	errBodyBroken  = apierror.BadRequest("the request body could not be read: it is cut short or its chunked encoding is malformed")
)

// callerBody notes the first read error that is the caller's fault and cancels the
// request with it. The proxy's transport reads the body on its own goroutine, hence
// the atomic.
type callerBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
	failed atomic.Pointer[apierror.Error]

	// idle, when not 0, is set as the connection's (HTTP/2: the stream's) read
	// deadline before each read. mu and done keep that from touching the connection
	// once the handler has returned: a transport goroutine may still be reading,
	// and the connection may be serving the next request by then.
	idle time.Duration
	rc   *http.ResponseController
	mu   sync.Mutex
	done bool
}

// setDeadline sets the read deadline to t while the handler runs.
func (b *callerBody) setDeadline(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		_ = b.rc.SetReadDeadline(t)
	}
}

func (b *callerBody) handlerDone() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

func (b *callerBody) Read(p []byte) (int, error) {
	if b.idle > 0 {
		b.setDeadline(time.Now().Add(b.idle))
	}
	// No need to clear the deadline when the body is over: net/http does, as it
	// starts reading the connection in the background (HTTP/1.1) to notice the
	// caller leaving, so a response that streams on is never cut by it
	// (TestBodyReadIdleBound).
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.failed.Load() == nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			// Every reader already answers this one with 413 body_too_large.
		case errors.Is(err, http.ErrBodyReadAfterClose):
			// One of ours read on after the body was closed: not the caller.
		case errors.Is(err, os.ErrDeadlineExceeded):
			b.failed.Store(errBodyTooSlow)
			b.cancel(err)
		default:
			b.failed.Store(errBodyBroken)
			b.cancel(err)
		}
	}
	return n, err
}

// responseStarted reports whether a response has begun on w, as far as the access
// log's recorder knows; without the recorder it assumes so, so nothing is written
// twice.
func responseStarted(w http.ResponseWriter) bool {
	rw, ok := w.(*recordingWriter)
	return !ok || rw.status != 0
}

// cleanPath refuses requests a backend could read differently from the route matcher
// and RBAC, so the path roles are checked against is the path served, and every
// request served is one the gateway has seen.
//
// Routing and RBAC see the decoded path; the upstream gets the escaped form as sent
// (the hmac-sha256 signature covers that form), so both must mean the same thing to
// any reasonable backend:
//
//   - no dot segments or empty segments ("/api/x/../admin", "//", "/./");
//   - no %2F or %2E: an encoded slash is one segment to a backend that routes on the
//     escaped path but two to RBAC ("PUT /api/orders/42%2Fstatus" would pass as
//     "PUT /api/orders/*/status"), and no client has a reason to encode a dot;
//   - no backslash, NUL or other control character, once decoded: Windows-minded
//     backends read "\" as "/", C code stops at NUL;
//   - no "%" once decoded, i.e. no "%25": double encoding ("%252e%252e") is ".." to
//     a backend or a second proxy that decodes again;
//   - valid UTF-8 once decoded: overlong forms ("%c0%ae" for ".") are dots to lax
//     decoders; and no rune that NFKC folds into path syntax ("／", "．");
//   - no ";", once decoded: servlet containers read a segment's ";..." as path
//     parameters and drop it, so "/api/orders/..;/admin" is "/api/orders/../admin"
//     to Tomcat and one odd segment to RBAC, and "/api/x;jsessionid=1" is "/api/x".
//
// Other escapes (%41, lower-case hex, UTF-8) decode to the same path everywhere and
// pass as sent.
//
// The method must be one a route pattern can name, upper-case letters
// (route.ValidMethod): "get" or "Get" is GET to many backends and another method to
// the route table, and HTTP/2 lets a caller send a :method net/http's client then
// refuses to send, which would count as the upstream's failure.
//
// The query must fit the upstream's request line (see queryFitsRequestLine). A query
// httputil.ReverseProxy cannot parse (";", a malformed escape) it re-encodes, leaving
// out what it cannot read: the upstream sees fewer parameters, never others, and a
// signed query holding ";" is refused by auth.CanonicalQuery.
//
// Protocol upgrades and CONNECT are refused too: httputil.ReverseProxy would splice
// the caller to the backend once it answered 101, and what then flows through the
// tunnel (an h2c connection's requests, WebSocket messages) is never routed,
// authorised, rate limited or masked. h2c smuggling is exactly this. A WebSocket
// handshake passes here; its route refuses it unless it has websocket: true (see
// websocket.go).
//
// refuse writes the answer (see refusals).
func cleanPath(refuse refusal) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if e := refusedPath(r); e != nil {
				refuse(w, r, e)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// refusedPath is cleanPath's decision: the answer for r, or nil when r may go on.
func refusedPath(r *http.Request) *apierror.Error {
	if r.Method == http.MethodConnect ||
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") && !isWebSocketUpgrade(r) {
		return errTunnel
	}
	if !route.ValidMethod(r.Method) {
		return errMethod
	}
	p := r.URL.Path
	if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.Contains(p, "/./") ||
		strings.Contains(p, "/../") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") ||
		!cleanChars(p) || hasEncodedSlashOrDot(r.URL.RawPath) {
		return errNotCanonical
	}
	if strings.IndexByte(p, ';') >= 0 {
		return errPathParameters
	}
	if !queryFitsRequestLine(r.URL.RawQuery) {
		return errQuery
	}
	return nil
}

// Answers for a request line cleanPath refuses.
var (
	errNotCanonical   = apierror.BadRequest("the request path is not in canonical form")
	errPathParameters = apierror.BadRequest(`the request path is not in canonical form: ";" (path parameters) is not accepted in a path`)
	errMethod         = apierror.BadRequest("the request method must be upper-case letters, such as GET")
	errQuery          = apierror.BadRequest("the query string holds a space or a control character: percent-encode it")
)

// queryFitsRequestLine reports whether the raw query q can go into the upstream's
// HTTP/1.1 request line as it is: no space or control character. The HTTP/1.1
// parser never lets one through, but an HTTP/2 :path may hold a space, which the
// proxy would write into the request line unescaped, and an upstream would split the
// line at it: "GET /api/x?a=1 HTTP/1.1 HTTP/1.1".
func queryFitsRequestLine(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// errTunnel answers requests that would turn the exchange into a tunnel.
var errTunnel = apierror.BadRequest("protocol upgrades (Connection: upgrade, e.g. WebSocket or h2c) and CONNECT are not proxied")

// cleanChars reports whether the decoded path p is valid UTF-8 without control
// characters, backslashes, percent signs, or runes that fold into path syntax.
func cleanChars(p string) bool {
	for i := 0; i < len(p); {
		if c := p[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' || c == '%' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && size == 1 || foldsToPathSyntax(r) {
			return false
		}
		i += size
	}
	return true
}

// foldsToPathSyntax reports whether compatibility normalisation (NFKC), which some
// frameworks apply to paths, turns r into text holding '.', '/', '\' or '%': the
// fullwidth "／" (U+FF0F) and "．" (U+FF0E), the one-dot leader "․" (U+2024) and the
// rest of what NFKC gives for Unicode 14. "/api/orders/／.." is one segment to RBAC
// and "/api/orders/.." to such a backend.
func foldsToPathSyntax(r rune) bool {
	switch {
	case 0x2024 <= r && r <= 0x2026, 0x2488 <= r && r <= 0x249b:
		return true
	}
	switch r {
	case 0x2100, 0x2101, 0x2105, 0x2106, 0x33c2, 0x33c7, 0x33d8, 0xfe19, 0xfe30,
		0xfe52, 0xfe68, 0xfe6a, 0xff05, 0xff0e, 0xff0f, 0xff3c, 0x1f100:
		return true
	}
	return false
}

// hasEncodedSlashOrDot reports whether the escaped path holds %2F or %2E in either
// case. RawPath is empty when the path was sent in Go's default escaping, which never
// encodes "/" or ".".
func hasEncodedSlashOrDot(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] == '%' && raw[i+1] == '2' {
			if c := raw[i+2] | 0x20; c == 'f' || c == 'e' {
				return true
			}
		}
	}
	return false
}

// errMisdirected answers a request for a host this gateway does not serve.
var errMisdirected = apierror.New(http.StatusMisdirectedRequest, "misdirected_request",
	"this gateway does not serve that host (server.hosts)")

// checkHost refuses, before routing, a request whose Host (HTTP/2's :authority) is
// none of hosts: exact names, or "*.example.com" for any name under example.com.
// The upstream receives the host as X-Forwarded-Host and may build absolute links
// from it, so a caller must not choose it. With no hosts, any host passes.
func checkHost(hosts []string, refuse refusal) middleware {
	return func(next http.Handler) http.Handler {
		if len(hosts) == 0 {
			return next
		}
		exact := make(map[string]bool, len(hosts))
		var suffixes []string
		for _, h := range hosts {
			if rest, ok := strings.CutPrefix(h, "*"); ok {
				suffixes = append(suffixes, rest) // ".example.com"
			} else {
				exact[h] = true
			}
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			host = strings.TrimSuffix(lowerASCII(host), ".")
			ok := exact[host]
			for _, s := range suffixes {
				if !ok && len(host) > len(s) && strings.HasSuffix(host, s) {
					ok = true
				}
			}
			if !ok {
				refuse(w, r, errMisdirected)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

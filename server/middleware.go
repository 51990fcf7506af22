package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/reqinfo"
)

// middleware wraps a handler; chain applies them outermost first.
type middleware func(http.Handler) http.Handler

func chain(h http.Handler, mws ...middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// requestID gives every request its id and the reqinfo record the layers below fill
// in. An incoming X-Request-Id is kept when it is safe to echo and log.
func requestID(now func() time.Time) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get("X-Request-Id")
			if !validRequestID(id) {
				id = newRequestID(now())
				r.Header.Set("X-Request-Id", id)
			}
			w.Header().Set("X-Request-Id", id)
			info := &reqinfo.Info{RequestID: id}
			next.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
		})
	}
}

// recordingWriter remembers the status and counts the bytes written for the access
// log. Unwrap lets http.ResponseController reach Flush and friends underneath, which
// server-sent events through the proxy depend on.
type recordingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rw *recordingWriter) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recordingWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(p)
	rw.bytes += int64(n)
	return n, err
}

func (rw *recordingWriter) Flush() {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

func (rw *recordingWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// countingBody counts the request bytes the handlers actually read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// accessLog writes one JSON line per request and records its metrics.
func accessLog(logger *slog.Logger, m *metrics, now func() time.Time) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := now()
			m.inFlight.Inc()
			defer m.inFlight.Dec()
			rw := &recordingWriter{ResponseWriter: w}
			var body *countingBody
			if r.Body != nil && r.Body != http.NoBody {
				body = &countingBody{ReadCloser: r.Body}
				r.Body = body
			}
			next.ServeHTTP(rw, r)
			took := now().Sub(start)
			status := rw.status
			if status == 0 {
				// The handler wrote nothing: the caller went away or the handler
				// returned silently; net/http answers 200 with an empty body.
				status = http.StatusOK
				if r.Context().Err() != nil {
					status = 499 // nginx's "client closed request"
				}
			}
			info := reqinfo.Of(r)
			var bytesIn int64
			if body != nil {
				bytesIn = body.n
			}
			m.observe(info.Route, status, info.ErrCode, took)
			attrs := []slog.Attr{
				slog.String("request_id", info.RequestID),
				slog.String("client", info.Client),
				slog.String("route", routeLabel(info.Route)),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(took.Microseconds())/1000),
				slog.Int64("bytes_in", bytesIn),
				slog.Int64("bytes_out", rw.bytes),
				slog.String("remote_ip", remoteIP(r)),
				slog.String("proto", r.Proto),
			}
			if r.URL.RawQuery != "" {
				// Decoded, so the log masker sees "+86 138…" rather than "%2B86%20138…",
				// whose digits run into the escape's and would hide the number from it.
				q, err := url.QueryUnescape(r.URL.RawQuery)
				if err != nil {
					q = r.URL.RawQuery
				}
				attrs = append(attrs, slog.String("query", q))
			}
			if info.ErrCode != "" {
				attrs = append(attrs, slog.String("error", info.ErrCode))
			}
			logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		})
	}
}

func routeLabel(name string) string {
	if name == "" {
		return "no_route"
	}
	return name
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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

// limitBody refuses bodies over max: at once when Content-Length says so, and as
// soon as a reader crosses the limit otherwise.
//
// It also answers for a body the caller fails to deliver: a malformed chunk, or one
// stalled past server.read_timeout. The request's context is cancelled at the first
// such read error, so the layers below stop, and the proxy, which treats a
// cancelled request as the caller's doing, neither retries it nor counts it against
// the upstream: otherwise three bad chunks from any caller would eject a healthy
// target (passive max_fails) and answer 502 upstream_error for the caller's fault.
// The caller then gets 400 bad_request, when no response has started, instead of
// the empty 200 net/http sends for a handler that wrote nothing; a caller that hung
// up mid-body gets nothing, as before.
func limitBody(max int64) middleware {
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
			r = r.WithContext(ctx)
			r.Body = body
			next.ServeHTTP(w, r)
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
	errBodyTooSlow = apierror.BadRequest("the request body did not arrive within the server's read timeout")
	errBodyBroken  = apierror.BadRequest("the request body could not be read: it is cut short or its chunked encoding is malformed")
)

// callerBody notes the first read error that is the caller's fault and cancels the
// request with it. The proxy's transport reads the body on its own goroutine, hence
// the atomic.
type callerBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
	failed atomic.Pointer[apierror.Error]
}

func (b *callerBody) Read(p []byte) (int, error) {
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
//   - no dot segments or empty segments ("/api/x/../admin", "//", "/./");
//   - no %2F or %2E: an encoded slash is one segment to a backend that routes on the
//     escaped path but two to RBAC ("PUT /api/orders/42%2Fstatus" would pass as
//     "PUT /api/orders/*/status"), and no client has a reason to encode a dot;
//   - no backslash, NUL or other control character, once decoded: Windows-minded
//     backends read "\" as "/", C code stops at NUL;
//   - no "%" once decoded, i.e. no "%25": double encoding ("%252e%252e") is ".." to
//     a backend or a second proxy that decodes again;
//   - valid UTF-8 once decoded: overlong forms ("%c0%ae" for ".") are dots to lax
//     decoders; and no rune that NFKC folds into path syntax ("／", "．").
//
// Other escapes (%41, lower-case hex, UTF-8) decode to the same path everywhere and
// pass as sent.
//
// Protocol upgrades and CONNECT are refused too: httputil.ReverseProxy would splice
// the caller to the backend once it answered 101, and what then flows through the
// tunnel (an h2c connection's requests, WebSocket messages) is never routed,
// authorised, rate limited or masked. h2c smuggling is exactly this. No route needs
// a tunnel yet; one that does should get an explicit route option.
func cleanPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect || httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
			apierror.Write(w, r, errTunnel)
			return
		}
		p := r.URL.Path
		if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.Contains(p, "/./") ||
			strings.Contains(p, "/../") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") ||
			!cleanChars(p) || hasEncodedSlashOrDot(r.URL.RawPath) {
			apierror.Write(w, r, apierror.BadRequest("the request path is not in canonical form"))
			return
		}
		next.ServeHTTP(w, r)
	})
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

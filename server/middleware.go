package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

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
func limitBody(max int64) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				apierror.Write(w, r, apierror.ErrBodyTooLarge)
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// cleanPath refuses paths whose meaning a backend could read differently from the
// route matcher ("/api/x/../admin", "//", "/./"), so RBAC decides on what is served.
func cleanPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.Contains(p, "/./") ||
			strings.Contains(p, "/../") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
			apierror.Write(w, r, apierror.BadRequest("the request path is not in canonical form"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

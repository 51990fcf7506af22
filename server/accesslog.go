package server

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/signgate/signgate/reqinfo"
)

// recordingWriter remembers the status and counts the bytes written for the access
// log. Unwrap lets http.ResponseController reach Flush and friends underneath, which
// server-sent events through the proxy depend on.
type recordingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	// cache is the response cache's result for the request ("hit", "miss",
	// "stale", "bypass"), set by the cache (noteCache); "" on routes without one.
	cache string
	// traceID is the request's trace id when its span records (traceRequests);
	// "" with tracing off or the trace not sampled.
	traceID string
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

// Hijack takes the connection over for a WebSocket tunnel (the only hijack in the
// gateway); ReverseProxy writes the 101 on the raw connection, so it is recorded here.
func (rw *recordingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rw.ResponseWriter).Hijack()
	if err == nil && rw.status == 0 {
		rw.status = http.StatusSwitchingProtocols
	}
	return conn, brw, err
}

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

// exchange is what the outermost layer keeps for one request: its reqinfo record,
// the response recorder and the request-body counter, in one allocation.
type exchange struct {
	info reqinfo.Info
	rw   recordingWriter
	body countingBody
}

// accessLog is the outermost layer: it gives every request its id (an incoming
// X-Request-Id is kept when it is safe to echo and log) and the reqinfo record the
// layers below fill in, then writes one log line per request and records its
// metrics.
//
// With aw set the line goes straight to its writer; otherwise through logger.
func accessLog(logger *slog.Logger, m *metrics, now func() time.Time, aw *accessWriter) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := now()
			m.inFlight.Inc()
			defer m.inFlight.Dec()
			ex := &exchange{rw: recordingWriter{ResponseWriter: w}}
			id := r.Header.Get("X-Request-Id")
			if !validRequestID(id) {
				id = newRequestID(start)
			}
			// One slice for the request's header (the upstream sees the id) and the
			// response's; neither is changed in place afterwards.
			ids := []string{id}
			r.Header["X-Request-Id"] = ids
			w.Header()["X-Request-Id"] = ids
			ex.info.RequestID = id
			if r.Body != nil && r.Body != http.NoBody {
				ex.body.ReadCloser = r.Body
				r.Body = &ex.body
			}
			r = r.WithContext(reqinfo.With(r.Context(), &ex.info))

			// A response aborted mid-stream (http.ErrAbortHandler: the upstream
			// broke off after the headers) unwinds past this layer; it is logged
			// and counted on the way, with error "aborted", and the unwinding goes on.
			done := false
			defer func() {
				if done {
					return
				}
				v := recover()
				if ex.info.ErrCode == "" {
					ex.info.ErrCode = "aborted"
				}
				logRequest(logger, m, aw, r, ex, start, now())
				if v != nil {
					panic(v)
				}
			}()
			next.ServeHTTP(&ex.rw, r)
			done = true
			logRequest(logger, m, aw, r, ex, start, now())
		})
	}
}

// logRequest writes the access line of a finished request and records its metrics.
func logRequest(logger *slog.Logger, m *metrics, aw *accessWriter, r *http.Request, ex *exchange, start, end time.Time) {
	took := end.Sub(start)
	status := ex.rw.status
	if status == 0 {
		// The handler wrote nothing: the caller went away or the handler
		// returned silently; net/http answers 200 with an empty body.
		status = http.StatusOK
		if r.Context().Err() != nil {
			status = 499 // nginx's "client closed request"
		}
	}
	info := &ex.info
	m.observe(info.Route, status, info.ErrCode, took)
	rec := accessRecord{
		requestID:  info.RequestID,
		client:     info.Client,
		user:       info.User,
		route:      routeLabel(info.Route),
		method:     r.Method,
		path:       r.URL.Path,
		status:     status,
		durationMS: float64(took.Microseconds()) / 1000,
		bytesIn:    ex.body.n,
		bytesOut:   ex.rw.bytes,
		remoteIP:   remoteIP(r),
		proto:      r.Proto,
		errCode:    info.ErrCode,
		cache:      ex.rw.cache,
		traceID:    ex.rw.traceID,
	}
	if r.URL.RawQuery != "" {
		// Decoded, so the log masker sees "+86 138…" rather than "%2B86%20138…",
		// whose digits run into the escape's and would hide the number from it.
		q, err := url.QueryUnescape(r.URL.RawQuery)
		if err != nil {
			// One bad escape ("%zz") must not leave the rest encoded.
			q = unescapeLenient(r.URL.RawQuery)
		}
		rec.query = q
	}
	if aw != nil {
		if err := aw.write(end, &rec); err != nil {
			logger.LogAttrs(r.Context(), slog.LevelError, "writing the access log", slog.Any("error", err))
		}
		return
	}
	var attrs [15]slog.Attr
	logger.LogAttrs(r.Context(), slog.LevelInfo, "request", rec.attrs(attrs[:0])...)
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

// unescapeLenient decodes a query as url.QueryUnescape does ('+' is a space, %XX a
// byte), leaving any escape that does not decode as it is.
func unescapeLenient(q string) string {
	b := make([]byte, 0, len(q))
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(q) && isHexByte(q[i+1]) && isHexByte(q[i+2]):
			b = append(b, unhexByte(q[i+1])<<4|unhexByte(q[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhexByte(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"golang.org/x/net/http/httpguts"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/reqinfo"
)

// handleError is the ReverseProxy's ErrorHandler: it answers a failed exchange with
// the gateway's envelope, or with nothing when the caller has gone.
func (p *Pool) handleError(w http.ResponseWriter, r *http.Request, err error) {
	info := reqinfo.Of(r)
	attrs := []slog.Attr{
		slog.String("upstream", p.name),
		slog.String("request_id", info.RequestID),
		slog.Any("error", err),
	}
	if ex := exchangeFrom(r.Context()); ex != nil {
		attrs = append(attrs, slog.String("target", ex.target.label))
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The caller hung up: there is no one to answer, and it is not an upstream
		// problem worth a warning.
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "caller left before the upstream answered", attrs...)
		return
	}
	e := p.classify(err)
	var re *requestError
	if errors.As(err, &re) {
		// The caller's fault, answered 400: the access log has the line an operator
		// needs, and a warning per request would let any caller flood the log.
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "request cannot be sent upstream as it stands", append(attrs, slog.String("code", e.Code))...)
		apierror.Write(w, r, e)
		return
	}
	p.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream request failed", append(attrs, slog.String("code", e.Code))...)
	apierror.Write(w, r, e)
}

// classify maps a proxying error to the answer the caller gets. Timeouts of any kind
// (response headers, dial, TLS handshake, a deadline on the caller's context) are 504,
// as nginx and Caddy answer them; everything else went wrong talking to the upstream
// and is 502. The messages name the upstream, never a target address.
func (p *Pool) classify(err error) *apierror.Error {
	var rt *responseTimeoutError
	var st *bodyStalledError
	var ne net.Error
	var tooLarge *http.MaxBytesError
	var re *requestError
	switch {
	case errors.As(err, &tooLarge):
		// The caller's body crossed the gateway's limit while streaming upstream:
		// the caller's fault, not the upstream's.
		return apierror.ErrBodyTooLarge
	case errors.As(err, &re):
		return apierror.BadRequest(re.msg)
	case errors.As(err, &rt), errors.As(err, &st), errors.Is(err, context.DeadlineExceeded):
		return p.errTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return p.errTimeout
	default:
		return p.errBadGateway
	}
}

// requestError is a request the gateway accepted but cannot send upstream as it
// stands: a method that is not a token (HTTP/2 lets a caller put anything in
// :method), a header or trailer net/http will not write. It is the caller's fault:
// answered 400 bad_request, never retried, and never counted against a target, or a
// few such requests would eject healthy targets and answer everyone else 503.
type requestError struct {
	msg string // for the caller; it names what is wrong, never echoes the caller's bytes
	err error  // what the Transport said
}

func (e *requestError) Error() string {
	return "request cannot be sent: " + e.msg + ": " + e.err.Error()
}

func (e *requestError) Unwrap() error { return e.err }

// requestFault returns a *requestError when the failed exchange req → err was the
// request's own fault rather than the upstream's, and nil otherwise. It runs only
// after a failure, so a request that goes through pays nothing for it.
//
// The checks are, first, the ones net/http's Transport makes of a request before it
// dials (a method that is a token, header and trailer names that are tokens, values
// without control bytes), each with a message that says what is wrong; then, for any
// failure that did not come from the network, whether net/http refuses the request
// before touching the network at all (refusedBeforeDialing), so that a check a later
// Go release adds cannot turn callers' mistakes into ejections either.
func requestFault(req *http.Request, err error) *requestError {
	if msg := unsendable(req); msg != "" {
		return &requestError{msg: msg, err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return nil // a dial, read or write on a connection failed: the upstream's side
	}
	if refusedBeforeDialing(req) {
		return &requestError{msg: "the request cannot be forwarded as sent", err: err}
	}
	return nil
}

// unsendable says what in req net/http's Transport refuses to send, or "" when
// nothing is. A method is a token exactly as a header name is (RFC 9110 §9.1, §5.1).
func unsendable(req *http.Request) string {
	if !httpguts.ValidHeaderFieldName(req.Method) {
		return "the request method is not a valid HTTP method: one token of letters, digits and !#$%&'*+-.^_`|~"
	}
	if msg := badFields(req.Header, "header"); msg != "" {
		return msg
	}
	return badFields(req.Trailer, "trailer")
}

func badFields(h http.Header, kind string) string {
	for name, values := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			return "a request " + kind + " has an invalid name: field names are tokens"
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				// The name is a token, so safe to repeat; the value is not.
				return "request " + kind + " " + name + " has an invalid value: control characters are not allowed"
			}
		}
	}
	return ""
}

// errProbeDialed is what refusedBeforeDialing's dialer answers: a request that gets
// that far is one net/http was willing to send.
var errProbeDialed = errors.New("proxy: probe reached the dialer")

// refusedBeforeDialing reports whether net/http's Transport refuses req by itself,
// before it would touch the network: it sends a bodiless copy of req through a
// Transport whose dialer never connects and sees whether the dialer was reached.
// Only failures take this path, and it costs no network round trip.
func refusedBeforeDialing(req *http.Request) bool {
	probe := &http.Transport{
		Proxy: nil,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errProbeDialed
		},
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errProbeDialed
		},
		DisableKeepAlives: true,
		// A non-nil empty map spares setting up HTTP/2 for a Transport that never
		// connects.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	// Without the caller's cancellation or deadline: those would end the probe
	// before the dialer, and read as a refusal.
	out := req.WithContext(context.WithoutCancel(req.Context()))
	out.Body, out.GetBody, out.ContentLength = nil, nil, 0
	resp, err := probe.RoundTrip(out)
	if err == nil { // cannot happen: nothing was dialed
		resp.Body.Close()
		return false
	}
	return !errors.Is(err, errProbeDialed)
}

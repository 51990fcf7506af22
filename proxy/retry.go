package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
)

// poolTransport is the ReverseProxy's Transport. It sends a request to the exchange's
// target under the pool's response timeout, keeps passive health up to date, and moves
// an idempotent request to another target when the connection could not be made.
type poolTransport struct{ p *Pool }

var _ http.RoundTripper = poolTransport{}

func (pt poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := pt.p
	ex := exchangeFrom(req.Context())
	if ex == nil {
		return nil, errors.New("proxy: request has no target") // only a bug gets here
	}
	var tried []bool // allocated on the first retry only
	req, body := trackBody(req)
	for attempt := 0; ; attempt++ {
		resp, err := p.roundTripOnce(req)
		if err == nil {
			p.recordSuccess(ex.target)
			return resp, nil
		}
		var tooLarge *http.MaxBytesError
		if req.Context().Err() != nil || errors.As(err, &tooLarge) {
			// The caller left, its own deadline passed, or its body crossed the
			// gateway's limit: not the target's fault, and not worth another attempt.
			// Counting these would let one caller eject healthy targets.
			return nil, err
		}
		if rerr := requestFault(req, err); rerr != nil {
			// The request itself cannot be sent (say, an HTTP/2 :method that is not
			// a token): every target would refuse it alike, and none is to blame.
			return nil, rerr
		}
		var rt *responseTimeoutError
		if body != nil && !body.ended.Load() && errors.As(err, &rt) {
			// The wait for the answer ran out while the caller was still sending its
			// body: the upstream never had the whole request, so nothing says it was
			// slow. Counting it would let anyone who uploads slowly (a stranger, on
			// a public route) eject healthy targets. Such a body cannot be retried.
			return nil, err
		}
		p.recordFailure(ex.target)
		if attempt >= p.retries || !isDialError(err) || !canRetry(req) {
			return nil, err
		}
		if tried == nil {
			tried = make([]bool, len(p.targets))
		}
		tried[ex.target.index] = true
		next := p.pick(tried)
		if next == nil {
			return nil, err
		}
		retry, rerr := retarget(req, ex, next)
		if rerr != nil {
			return nil, err
		}
		p.log.LogAttrs(req.Context(), slog.LevelDebug, "retrying on another target",
			slog.String("upstream", p.name), slog.String("failed", ex.target.label),
			slog.String("target", next.label), slog.Any("error", err))
		ex.target = next
		req = retry
	}
}

// trackedBody is a caller's body on its way upstream, noting when it has been read
// to its end. The Transport reads it on a goroutine of its own, hence the atomic.
type trackedBody struct {
	io.ReadCloser
	ended atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.ended.Store(true)
	}
	return n, err
}

// trackBody returns req with its body tracked, when that body streams from the
// caller (no GetBody: one the gateway holds in memory cannot be slow), and the
// tracker; otherwise req itself and nil. Requests without a body pay nothing.
func trackBody(req *http.Request) (*http.Request, *trackedBody) {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return req, nil
	}
	b := &trackedBody{ReadCloser: req.Body}
	out := req.WithContext(req.Context()) // a shallow copy: a RoundTripper must not change its request
	out.Body = b
	return out, b
}

// isDialError reports whether err means no connection was made, so the upstream cannot
// have seen the request.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// canRetry reports whether req may be sent again: its method is idempotent and its
// body, if any, can be produced again.
func canRetry(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// retarget returns req aimed at t, with a fresh body when it has one.
func retarget(req *http.Request, ex *exchange, t *target) (*http.Request, error) {
	out := req.WithContext(req.Context()) // a shallow copy; the headers are not changed
	u := ex.outURL
	out.URL = &u
	(&httputil.ProxyRequest{Out: out}).SetURL(t.url)
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.Body = body
	}
	return out, nil
}

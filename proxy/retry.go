package proxy

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
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

package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

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
	switch {
	case errors.As(err, &tooLarge):
		// The caller's body crossed the gateway's limit while streaming upstream:
		// the caller's fault, not the upstream's.
		return apierror.ErrBodyTooLarge
	case errors.As(err, &rt), errors.As(err, &st), errors.Is(err, context.DeadlineExceeded):
		return p.errTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return p.errTimeout
	default:
		return p.errBadGateway
	}
}

package proxy

import (
	"context"
	"io"
	"net/http"
	"time"
)

// responseTimeoutError is the cause put on a request's context when its response
// headers did not arrive within the pool's ResponseTimeout.
type responseTimeoutError struct{ after time.Duration }

func (e *responseTimeoutError) Error() string {
	return "no response headers within " + e.after.String()
}

// Timeout marks the error as a timeout for code that asks net.Error-style.
func (e *responseTimeoutError) Timeout() bool { return true }

// roundTripOnce sends req through the shared Transport, giving up when the response
// headers take longer than the pool's ResponseTimeout. The Transport's own
// ResponseHeaderTimeout cannot serve here: it is shared by upstreams with different
// limits. A body that keeps streaming after the headers is never cut: the timer stops
// when the headers arrive and the context lives until the body is closed.
func (p *Pool) roundTripOnce(req *http.Request) (*http.Response, error) {
	if p.responseTimeout < 0 {
		return p.transport.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(p.responseTimeout, func() { cancel(p.timeoutCause) })
	resp, err := p.transport.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() {
		// The timer fired: whatever RoundTrip returned raced with the cancellation.
		if err == nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, p.timeoutCause
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = bodyWithCancel(resp.Body, cancel)
	return resp, nil
}

// bodyWithCancel ties cancel to body.Close. A 101 Switching Protocols body is the
// upgraded connection and must stay writable, or ReverseProxy refuses the upgrade.
func bodyWithCancel(body io.ReadCloser, cancel context.CancelCauseFunc) io.ReadCloser {
	if rw, ok := body.(io.ReadWriteCloser); ok {
		return &cancelOnCloseRW{cancelOnClose{body, cancel}, rw}
	}
	return &cancelOnClose{body, cancel}
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

type cancelOnCloseRW struct {
	cancelOnClose
	w io.Writer
}

func (b *cancelOnCloseRW) Write(p []byte) (int, error) { return b.w.Write(p) }

package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
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

// bodyStalledError is the cause put on a request's context when its response body
// went longer than the pool's ReadTimeout without a byte.
type bodyStalledError struct{ after time.Duration }

func (e *bodyStalledError) Error() string {
	return "no response body bytes for " + e.after.String()
}

func (e *bodyStalledError) Timeout() bool { return true }

// roundTripOnce sends req through the shared Transport, giving up when the response
// headers take longer than the pool's ResponseTimeout, and, once they are in, when
// the body goes longer than ReadTimeout between two reads (nginx's
// proxy_read_timeout): a backend that sends headers and stops would otherwise hold
// the caller until the caller gives up. A body that keeps moving is never cut,
// however long it streams. The Transport's own ResponseHeaderTimeout cannot serve
// here: it is shared by upstreams with different limits.
func (p *Pool) roundTripOnce(req *http.Request) (*http.Response, error) {
	if p.responseTimeout < 0 && p.readTimeout < 0 {
		return p.transport.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	a := &attempt{p: p, cancel: cancel}
	first := p.responseTimeout
	if first < 0 {
		first = 1<<63 - 1
	}
	a.timer = time.AfterFunc(first, a.expired)
	resp, err := p.transport.RoundTrip(req.WithContext(ctx))
	if !a.timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel(nil)
		if p.responseTimeout < 0 {
			return nil, context.Cause(ctx)
		}
		return nil, p.timeoutCause
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if _, tunnel := resp.Body.(io.ReadWriteCloser); tunnel || p.readTimeout < 0 {
		// A switched protocol is a tunnel that may idle for as long as it likes.
		resp.Body = bodyWithCancel(resp.Body, cancel)
		return resp, nil
	}
	a.body = resp.Body
	a.reading.Store(true)
	a.timer.Reset(p.readTimeout)
	resp.Body = a
	return resp, nil
}

// attempt is one round trip's timer and, once the headers are in, its body: the
// timer bounds the wait for headers, then each wait between two body reads.
type attempt struct {
	p       *Pool
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	reading atomic.Bool // the headers are in: the timer now bounds body reads
	body    io.ReadCloser
}

func (a *attempt) expired() {
	if !a.reading.Load() {
		a.cancel(a.p.timeoutCause)
		return
	}
	a.p.log.LogAttrs(context.Background(), slog.LevelWarn, "upstream response body stalled; cutting it",
		slog.String("upstream", a.p.name), slog.Duration("read_timeout", a.p.readTimeout))
	a.cancel(a.p.stallCause)
}

func (a *attempt) Read(b []byte) (int, error) {
	n, err := a.body.Read(b)
	switch {
	case err != nil:
		a.timer.Stop() // the body is over (or broken): nothing more to wait for
	case n > 0:
		a.timer.Reset(a.p.readTimeout)
	}
	return n, err
}

// Close stops the timer and releases the request's context, which the Transport
// holds until then.
func (a *attempt) Close() error {
	a.timer.Stop()
	err := a.body.Close()
	a.cancel(nil)
	return err
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

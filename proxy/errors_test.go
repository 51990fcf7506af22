package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorsMapToTheContract(t *testing.T) {
	p, _ := newTestPool(t, Options{Targets: []string{"http://127.0.0.1:1"}})
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		err      error
		wantCode string
		retry    bool // a dial error: the upstream never saw the request
	}{
		{"connection refused", dialRefused, "upstream_error", true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, "upstream_timeout", true},
		{"connection reset while reading", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, "upstream_error", false},
		{"malformed response", fmt.Errorf("net/http: %w", io.ErrUnexpectedEOF), "upstream_error", false},
		{"no response headers in time", &responseTimeoutError{after: time.Second}, "upstream_timeout", false},
		{"request deadline", fmt.Errorf("proxy: %w", context.DeadlineExceeded), "upstream_timeout", false},
		{"wrapped dial error", fmt.Errorf("round trip: %w", dialRefused), "upstream_error", true},
		{"other", errors.New("boom"), "upstream_error", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.classify(tc.err).Code; got != tc.wantCode {
				t.Errorf("classify = %q, want %q", got, tc.wantCode)
			}
			if got := isDialError(tc.err); got != tc.retry {
				t.Errorf("isDialError = %v, want %v", got, tc.retry)
			}
		})
	}
}

package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/reqinfo"
)

// slowUpstream answers only when released or when the proxy gives up on it.
func slowUpstream(t *testing.T, entered chan<- struct{}) *httptest.Server {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Cleanups run last-in first-out: release the handlers before Close waits for them.
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	return s
}

func TestSlowUpstreamAnswers504(t *testing.T) {
	tests := []struct {
		name            string
		responseTimeout time.Duration
		callerDeadline  time.Duration // a deadline the gateway put on the request; 0 for none
	}{
		{name: "no headers within ResponseTimeout", responseTimeout: 50 * time.Millisecond},
		{name: "request deadline passes first", responseTimeout: -1, callerDeadline: 50 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slow := slowUpstream(t, nil)
			p, logs := newTestPool(t, Options{Targets: []string{slow.URL}, ResponseTimeout: tc.responseTimeout})
			var h http.Handler = p
			if tc.callerDeadline > 0 {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ctx, cancel := context.WithTimeout(r.Context(), tc.callerDeadline)
					defer cancel()
					p.ServeHTTP(w, r.WithContext(ctx))
				})
			}
			front := frontFor(t, h, "")
			wantEnvelope(t, get(t, front.URL+"/slow"), http.StatusGatewayTimeout, "upstream_timeout")
			if n := logs.count("upstream request failed", "upstream_timeout"); n != 1 {
				t.Errorf("failure logged %d times, want once", n)
			}
		})
	}
}

func TestResponseTimeoutDoesNotCutAStreamingBody(t *testing.T) {
	const chunks = 6
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for range chunks {
			// The body takes 6 × 25ms, three times ResponseTimeout, to arrive.
			time.Sleep(25 * time.Millisecond)
			w.Write([]byte("chunk\n"))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(up.Close)
	p, _ := newTestPool(t, Options{Targets: []string{up.URL}, ResponseTimeout: 50 * time.Millisecond})
	front := frontFor(t, p, "")

	resp := get(t, front.URL+"/stream")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != strings.Repeat("chunk\n", chunks) {
		t.Errorf("status %d body %q, want 200 and all %d chunks", resp.StatusCode, body, chunks)
	}
}

func TestCallerThatLeftGetsNoEnvelope(t *testing.T) {
	entered := make(chan struct{}, 1)
	slow := slowUpstream(t, entered)
	p, logs := newTestPool(t, Options{Targets: []string{slow.URL}})

	ctx, cancel := context.WithCancel(context.Background())
	info := &reqinfo.Info{RequestID: testRequestID}
	req := httptest.NewRequest(http.MethodGet, "/slow", nil).WithContext(reqinfo.With(ctx, info))
	rec := httptest.NewRecorder()
	go func() { <-entered; cancel() }()
	p.ServeHTTP(rec, req)

	if rec.Body.Len() != 0 || info.ErrCode != "" {
		t.Errorf("wrote %q with code %q to a caller that left, want nothing", rec.Body.String(), info.ErrCode)
	}
	if n := logs.count("caller left before the upstream answered", "backend"); n != 1 {
		t.Errorf("caller leaving logged %d times, want once at debug", n)
	}
	if !p.Ready() || p.targets[0].fails.Load() != 0 {
		t.Error("a caller leaving counted against the target")
	}
}

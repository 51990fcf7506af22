package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdempotentRequestsFailOverToAnotherTarget(t *testing.T) {
	dead := deadTarget(t)
	alive := newUpstream(t, "alive")
	p, logs := newTestPool(t, Options{
		Targets:  []string{dead, alive.URL},
		Retries:  1,
		MaxFails: 2,
		EjectFor: time.Minute,
	})
	front := frontFor(t, p, "")

	for i := range 6 {
		resp := get(t, front.URL+"/x")
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "alive" {
			t.Fatalf("GET %d: status %d body %q, want 200 from the live target", i, resp.StatusCode, body)
		}
	}
	if p.usable(p.targets[0]) {
		t.Error("the refusing target is still usable after MaxFails dial failures")
	}
	if n := logs.count("upstream target ejected", dead); n != 1 {
		t.Errorf("ejection logged %d times, want once", n)
	}
}

func TestEjectedTargetReturnsAfterEjectFor(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1_700_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	dead := deadTarget(t)
	alive := newUpstream(t, "alive")
	p, logs := newTestPool(t, Options{
		Targets: []string{dead, alive.URL}, Retries: 1, MaxFails: 1, EjectFor: time.Minute, Now: clock,
	})
	front := frontFor(t, p, "")
	readBody(t, get(t, front.URL+"/")) // the first request goes to the dead target and ejects it

	if p.usable(p.targets[0]) {
		t.Fatal("target not ejected after one failure with MaxFails 1")
	}
	now.Add(int64(time.Minute))
	if !p.usable(p.targets[0]) {
		t.Fatal("target still ejected after EjectFor")
	}
	if n := logs.count("upstream target restored", dead); n != 1 {
		t.Errorf("restoration logged %d times, want once", n)
	}
}

func TestRequestsThatMustNotBeRetried(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		// rereadable makes the front end buffer the body and set GetBody, as the
		// signature check does.
		rereadable bool
		wantStatus int
	}{
		{name: "POST is never retried", method: http.MethodPost, body: `{"a":1}`, wantStatus: http.StatusBadGateway},
		{name: "POST without a body is never retried", method: http.MethodPost, wantStatus: http.StatusBadGateway},
		{name: "PUT whose body cannot be read again is not retried", method: http.MethodPut, body: "x", wantStatus: http.StatusBadGateway},
		{name: "PUT with a re-readable body is retried", method: http.MethodPut, body: "x", rereadable: true, wantStatus: http.StatusOK},
		{name: "DELETE without a body is retried", method: http.MethodDelete, wantStatus: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alive := &upstream{}
			gotBody := make(chan string, 1)
			alive.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				alive.hits.Add(1)
				b, _ := io.ReadAll(r.Body)
				gotBody <- string(b)
			}))
			t.Cleanup(alive.Close)
			// A fresh pool starts its round robin at the first target: the dead one.
			p, _ := newTestPool(t, Options{Targets: []string{deadTarget(t), alive.URL}, Retries: 2})
			var h http.Handler = p
			if tc.rereadable {
				h = bufferBody(p)
			}
			front := frontFor(t, h, "")

			req, _ := http.NewRequest(tc.method, front.URL+"/orders", strings.NewReader(tc.body))
			if tc.body == "" {
				req.Body = nil
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantStatus == http.StatusBadGateway {
				wantEnvelope(t, resp, http.StatusBadGateway, "upstream_error")
				if n := alive.hits.Load(); n != 0 {
					t.Errorf("the other target got %d requests, want none", n)
				}
				return
			}
			readBody(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := <-gotBody; got != tc.body {
				t.Errorf("retried body = %q, want %q", got, tc.body)
			}
		})
	}
}

func TestBrokenConnectionAfterSendingIsNotRetried(t *testing.T) {
	// The upstream accepts and reads the request, then drops the connection: it may have
	// acted on it, so even a GET must not go to another target.
	dropper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(dropper.Close)
	other := newUpstream(t, "other")
	p, _ := newTestPool(t, Options{Targets: []string{dropper.URL, other.URL}, Retries: 1})
	front := frontFor(t, p, "")

	wantEnvelope(t, get(t, front.URL+"/"), http.StatusBadGateway, "upstream_error")
	if n := other.hits.Load(); n != 0 {
		t.Errorf("the other target got %d requests, want none", n)
	}
}

// bufferBody reads the body up front and sets GetBody, as a middleware that verifies a
// body digest would.
func bufferBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		next.ServeHTTP(w, r)
	})
}

// A response timeout while the caller's body is still arriving is not the target's
// failure: the upstream never had the whole request. One that runs out after the
// whole body was sent is, so a hung target is still ejected.
func TestResponseTimeoutCountsOnlyOnceTheBodyIsSent(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	reader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(reader.Close)
	p, logs := newTestPool(t, Options{
		Targets: []string{reader.URL}, ResponseTimeout: 100 * time.Millisecond, MaxFails: 1, EjectFor: time.Hour,
	})
	front := frontFor(t, p, "")

	// The caller sends one byte every 50ms: its body takes longer than the timeout.
	for i := range 3 {
		pr, pw := io.Pipe()
		go func() {
			for range 6 {
				time.Sleep(50 * time.Millisecond)
				if _, err := pw.Write([]byte("x")); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/upload", pr)
		req.ContentLength = 6
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("slow upload %d: %v", i, err)
		}
		wantEnvelope(t, resp, http.StatusGatewayTimeout, "upstream_timeout")
		pr.Close()
	}
	if !p.usable(p.targets[0]) || p.targets[0].fails.Load() != 0 {
		t.Fatalf("slow uploads counted against the target (fails %d)", p.targets[0].fails.Load())
	}
	if resp := get(t, front.URL+"/ok"); readBody(t, resp) != "done" {
		t.Fatal("a good request after slow uploads was not served")
	}

	// A whole body, then no answer: the target's failure.
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/hang", strings.NewReader("whole"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantEnvelope(t, resp, http.StatusGatewayTimeout, "upstream_timeout")
	if p.usable(p.targets[0]) {
		t.Fatal("a target that took the whole body and never answered is still usable with MaxFails 1")
	}
	if n := logs.count("upstream target ejected", reader.URL); n != 1 {
		t.Errorf("ejection logged %d times, want once", n)
	}
}

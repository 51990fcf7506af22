package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// healthUpstream is a target whose /healthz answers 200 or 500 as the test says.
type healthUpstream struct {
	*httptest.Server
	name   string
	sick   atomic.Bool
	checks atomic.Int64
}

func newHealthUpstream(t *testing.T, name string) *healthUpstream {
	u := &healthUpstream{name: name}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			u.checks.Add(1)
			if u.sick.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(u.Close)
	return u
}

func TestActiveHealthChecks(t *testing.T) {
	a, b := newHealthUpstream(t, "a"), newHealthUpstream(t, "b")
	p, logs := newTestPool(t, Options{
		Targets:        []string{a.URL, b.URL},
		HealthPath:     "/healthz",
		HealthInterval: 20 * time.Millisecond,
		HealthTimeout:  200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	front := frontFor(t, p, "")

	// answers sends a few requests and returns who answered them.
	answers := func() map[string]int {
		seen := map[string]int{}
		for range 4 {
			seen[readBody(t, get(t, front.URL+"/work"))]++
		}
		return seen
	}

	t.Run("failing target is taken out", func(t *testing.T) {
		a.sick.Store(true)
		eventually(t, 2*time.Second, "target a still gets traffic after its health check fails", func() bool {
			return answers()["b"] == 4
		})
		// Several more rounds of failing checks must not log the same transition again.
		seen := a.checks.Load()
		eventually(t, 2*time.Second, "health checks stopped", func() bool { return a.checks.Load() >= seen+3 })
		if n := logs.count("upstream target failed health check", a.URL); n != 1 {
			t.Errorf("down transition logged %d times, want once", n)
		}
		if !p.Ready() {
			t.Error("Ready() = false with one healthy target")
		}
	})

	t.Run("recovered target comes back", func(t *testing.T) {
		a.sick.Store(false)
		eventually(t, 2*time.Second, "target a gets no traffic after it recovered", func() bool {
			return answers()["a"] > 0
		})
		if n := logs.count("upstream target passed health check", a.URL); n != 1 {
			t.Errorf("up transition logged %d times, want once", n)
		}
	})

	t.Run("all targets down answers 503", func(t *testing.T) {
		a.sick.Store(true)
		b.sick.Store(true)
		eventually(t, 2*time.Second, "Ready() still true with every target failing", func() bool { return !p.Ready() })
		wantEnvelope(t, get(t, front.URL+"/work"), http.StatusServiceUnavailable, "upstream_unavailable")
	})
}

func TestRunStops(t *testing.T) {
	// A health endpoint that never answers: stopping must not wait for HealthTimeout.
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name       string
		healthPath string
		cancelled  bool // ctx is cancelled before Run starts
	}{
		{"cancelled before it starts", "/healthz", true},
		{"cancelled while a check hangs", "/healthz", false},
		{"active checks off", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newTestPool(t, Options{
				Targets:        []string{hang.URL},
				HealthPath:     tc.healthPath,
				HealthInterval: time.Hour, // the first check runs at once and is the only one
				HealthTimeout:  time.Hour,
			})
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancelled {
				cancel()
			}
			done := make(chan struct{})
			go func() { p.Run(ctx); close(done) }()
			if !tc.cancelled && tc.healthPath != "" {
				<-entered
				cancel()
			}
			defer cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("Run did not return after its context was cancelled")
			}
			if !p.Ready() {
				t.Error("a check cut short by stopping marked the target down")
			}
		})
	}
}

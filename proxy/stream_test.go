package proxy

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestServerSentEventsAreFlushedAsWritten(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		// Nothing more until the test has read the first event: if anything between
		// here and the caller buffered, the test would never see it.
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write([]byte("data: second\n\n"))
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) }) // runs first, even when the test fails
	p, _ := newTestPool(t, Options{Targets: []string{up.URL}, ResponseTimeout: time.Second})
	front := frontFor(t, p, "")

	resp := get(t, front.URL+"/events")
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case got := <-lines:
		if got != "data: first" {
			t.Fatalf("first line = %q, want %q", got, "data: first")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive while the upstream held the stream open")
	}
	release <- struct{}{}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) < 2 || rest[1] != "data: second" {
		t.Errorf("after release got %q, want the second event", rest)
	}
}

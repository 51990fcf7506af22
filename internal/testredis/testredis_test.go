package testredis

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	addr := s.Addr

	s.Stop()
	if err := ping(addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // idempotent

	s.Restart()
	if s.Addr != addr {
		t.Fatalf("Restart moved the server: %s, want %s", s.Addr, addr)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}

	s.Pause()
	start := time.Now()
	if err := ping(s.Addr); err == nil {
		t.Fatal("PING answered while paused")
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("paused server failed fast (%v): want a hang until the client's deadline", d)
	}
	s.Resume()
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}

	s.Pause() // Cleanup must still stop a paused server
}

func TestTwoServersGetDistinctPorts(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("both servers on %s", a.Addr)
	}
}

// fatalRecorder catches Start's t.Fatal so the test can inspect the message.
type fatalRecorder struct {
	testing.TB
	msg     string
	skipped bool
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalRecorder) Skip(...any)          { f.skipped = true; runtime.Goexit() }
func (f *fatalRecorder) Skipf(string, ...any) { f.skipped = true; runtime.Goexit() }
func (f *fatalRecorder) SkipNow()             { f.skipped = true; runtime.Goexit() }

func TestMissingServerFailsWithInstallHint(t *testing.T) {
	tests := []struct {
		name string
		env  string
		path string
		want string
	}{
		{"not on PATH", "", t.TempDir(), "redis-server not found: apt-get install redis-server (Debian) or set SIGNGATE_REDIS_SERVER"},
		{"override points nowhere", "/nonexistent/redis-server", "", `redis-server not found: SIGNGATE_REDIS_SERVER="/nonexistent/redis-server"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvServer, tt.env)
			if tt.path != "" {
				t.Setenv("PATH", tt.path)
			}
			rec := &fatalRecorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Start(rec)
			}()
			<-done
			if rec.skipped {
				t.Fatal("Start skipped: a missing redis-server must fail the test")
			}
			if !strings.Contains(rec.msg, tt.want) {
				t.Fatalf("Fatal message %q, want it to contain %q", rec.msg, tt.want)
			}
		})
	}
}

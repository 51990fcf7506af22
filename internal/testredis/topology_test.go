package testredis

import (
	"strings"
	"testing"
	"time"
)

// TestTopologiesFailOver starts the three topologies, writes through each, kills
// the master of the Sentinel group and of one Cluster shard, and checks that the
// replica took over with the data it had replicated.
func TestTopologiesFailOver(t *testing.T) {
	start := time.Now()
	tops := StartTopologies(t)
	t.Logf("single, sentinel and cluster up in %v", time.Since(start).Round(time.Millisecond))
	if len(tops) != 3 || tops[0].Name != "single" || tops[1].Name != "sentinel" || tops[2].Name != "cluster" {
		t.Fatalf("topologies %+v", tops)
	}

	t.Run("sentinel", func(t *testing.T) {
		g := tops[1].Sentinel
		if len(tops[1].Addrs) != 3 || tops[1].MasterName != MasterName {
			t.Fatalf("sentinel topology %+v", tops[1])
		}
		old, err := g.Master()
		if err != nil {
			t.Fatal(err)
		}
		wantOK(t, old, "SET", "before", "1")
		wantOK(t, old, "WAIT", "1", "1000") // on the replica before the kill
		g.KillMaster(t)
		killed := time.Now()
		now := g.WaitForFailover(t, old)
		t.Logf("sentinel failover %s → %s in %v", old, now, time.Since(killed).Round(time.Millisecond))
		if v, err := Do(now, "GET", "before"); err != nil || v != "1" {
			t.Fatalf("GET on the new master = %v, %v; want the replicated value", v, err)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		c := tops[2].Cluster
		if len(tops[2].Addrs) != 6 {
			t.Fatalf("cluster topology %+v", tops[2])
		}
		masters, err := c.Masters()
		if err != nil || len(masters) != 3 {
			t.Fatalf("masters %v, %v; want 3", masters, err)
		}
		const key = "{tag}:before"
		old, err := c.MasterOf(key)
		if err != nil {
			t.Fatal(err)
		}
		wantOK(t, old, "SET", key, "1")
		wantOK(t, old, "WAIT", "1", "1000")
		c.KillMasterOf(t, key)
		killed := time.Now()
		now := c.WaitForFailover(t, key, old)
		t.Logf("cluster failover %s → %s in %v", old, now, time.Since(killed).Round(time.Millisecond))
		if v, err := Do(now, "GET", key); err != nil || v != "1" {
			t.Fatalf("GET on the new master = %v, %v; want the replicated value", v, err)
		}
	})
}

func wantOK(t *testing.T, addr string, args ...string) {
	t.Helper()
	if _, err := Do(addr, args...); err != nil {
		t.Fatalf("%v on %s: %v", args, addr, err)
	}
}

// A Cluster needs redis-cli to join its nodes: without it the test fails, saying what
// to install, and does not skip.
func TestMissingCLIFailsWithInstallHint(t *testing.T) {
	server, err := findServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvServer, server)
	t.Setenv(EnvCLI, "")
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartCluster(rec)
	}()
	<-done
	const want = "redis-cli not found: apt-get install redis-tools (Debian) or set SIGNGATE_REDIS_CLI"
	if rec.skipped || !strings.Contains(rec.msg, want) {
		t.Fatalf("StartCluster without redis-cli: skipped %v, message %q; want a failure containing %q", rec.skipped, rec.msg, want)
	}
}

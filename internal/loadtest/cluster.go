package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startCluster starts, when a selected row needs it, a Redis Cluster on the load core:
// six redis-server nodes joined by `redis-cli --cluster create --cluster-replicas 1`
// into three masters with a replica each, as a production Cluster runs.
func (l *lab) startCluster(rows []row) error {
	need := false
	for _, r := range rows {
		need = need || r.setup.cluster
	}
	if !need {
		return nil
	}
	for i := range 6 {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		bus, err := freeAddr()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("redis-cluster-%d", i)
		dir := filepath.Join(l.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		p, err := startPinned(l.dir, name, loadCore, nil, "redis-server",
			"--port", portOf(addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", portOf(bus),
			"--repl-diskless-sync-delay", "0")
		if err != nil {
			return err
		}
		l.clusterProcs = append(l.clusterProcs, p)
		if err := p.waitListening(addr); err != nil {
			return err
		}
		l.cluster = append(l.cluster, addr)
	}
	args := append([]string{"--cluster", "create"}, l.cluster...)
	if out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range l.cluster {
		for {
			out, _ := exec.Command("redis-cli", "-p", portOf(addr), "cluster", "info").Output()
			if strings.Contains(string(out), "cluster_state:ok") && strings.Contains(string(out), "cluster_known_nodes:6") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the Redis Cluster is not ok after 30s: %s says %s", addr, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func (l *lab) stopCluster() {
	for _, p := range l.clusterProcs {
		p.stop()
	}
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

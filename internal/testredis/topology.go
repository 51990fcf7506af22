package testredis

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testproc"
)

// EnvCLI names the environment variable that overrides where redis-cli is found.
const EnvCLI = "SIGNGATE_REDIS_CLI"

// MasterName is the name the Sentinels of a Sentinel group watch their master by.
const MasterName = "signgate"

// Failover timing for tests: a master is judged down after a second without an
// answer (Sentinel's down-after-milliseconds, Cluster's cluster-node-timeout), the
// production defaults being 30 s and 15 s.
const (
	downAfter   = 1000 * time.Millisecond
	topologyUp  = 30 * time.Second // from the first exec to a topology that serves
	failoverMax = 30 * time.Second // from a master's death to its replica serving
)

// Topology is a way of running Redis, as a gateway's redis section names it: Addrs
// and MasterName are what redis.addrs and redis.master_name would say. The state,
// limiter, cache and storage contracts run against each (see StartTopologies), so a
// consumer that passes on one server passes on Sentinel and Cluster too.
type Topology struct {
	// Name is "single", "sentinel" or "cluster".
	Name string
	// Addrs is the server, the Sentinels, or the cluster's nodes (all six).
	Addrs []string
	// MasterName is set for Sentinel.
	MasterName string
	// Sentinel and Cluster are the group behind the topology, for tests that break it.
	Sentinel *Sentinel
	Cluster  *Cluster
}

// StartTopologies starts one server, a Sentinel group and a Cluster for t, side by
// side, and returns them in that order. They are stopped when t ends. Tests give
// each case its own keys (a prefix per test), since every case shares these.
func StartTopologies(t testing.TB) []Topology {
	t.Helper()
	var (
		wg       sync.WaitGroup
		single   *Server
		sentinel *Sentinel
		cluster  *Cluster
	)
	// Cluster and Sentinel each spend seconds waiting on gossip; started together
	// the waits overlap. t.Fatal must come from the test's goroutine, so the
	// goroutines report errors instead.
	var serr, cerr error
	wg.Go(func() { sentinel, serr = startSentinel(t) })
	wg.Go(func() { cluster, cerr = startCluster(t) })
	single = Start(t)
	wg.Wait()
	if err := errors.Join(serr, cerr); err != nil {
		t.Fatal(err)
	}
	return []Topology{
		{Name: "single", Addrs: []string{single.Addr}},
		{Name: "sentinel", Addrs: sentinel.SentinelAddrs(), MasterName: MasterName, Sentinel: sentinel},
		{Name: "cluster", Addrs: cluster.Addrs(), Cluster: cluster},
	}
}

// Sentinel is a Sentinel group: a master, its replica, and three Sentinels with a
// quorum of two, as the smallest production setup that survives losing the master.
type Sentinel struct {
	// Nodes are the master and the replica as started; after a failover the roles
	// have swapped, which Master reports.
	Nodes     []*Server
	Sentinels []*Server
}

// StartSentinel starts a Sentinel group for t and waits until the Sentinels know the
// master, its replica and each other (so that they can agree on a failover), and the
// replica is in sync. It fails t when redis-server is not installed.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	g, err := startSentinel(t)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func startSentinel(t testing.TB) (*Sentinel, error) {
	// Without a delay, a master syncs a new replica at once rather than wait five
	// seconds for more to join (repl-diskless-sync-delay); set on both, as either
	// may be master.
	master, err := tryStart(t, []string{"--repl-diskless-sync-delay", "0"}, "")
	if err != nil {
		return nil, err
	}
	replica, err := tryStart(t, replicaArgs(master.Addr), "")
	if err != nil {
		return nil, err
	}
	g := &Sentinel{Nodes: []*Server{master, replica}}
	if g.Sentinels, err = startSentinels(t, master, replica); err != nil {
		return nil, err
	}
	// Until the Sentinels know each other and the replica, a failover could not be
	// agreed; they are told in their files, and confirm through the master.
	err = waitUntil(topologyUp, func() error {
		if err := inSync(replica.Addr); err != nil {
			return err
		}
		for _, s := range g.Sentinels {
			others, err := Do(s.Addr, "SENTINEL", "SENTINELS", MasterName)
			if err != nil {
				return err
			}
			if n := len(others.([]any)); n != 2 {
				return fmt.Errorf("sentinel %s knows %d others, want 2", s.Addr, n)
			}
			replicas, err := Do(s.Addr, "SENTINEL", "REPLICAS", MasterName)
			if err != nil {
				return err
			}
			if n := len(replicas.([]any)); n != 1 {
				return fmt.Errorf("sentinel %s knows %d replicas, want 1", s.Addr, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sentinel group not formed: %w%s", err, g.Logs())
	}
	return g, nil
}

// startSentinels starts three Sentinels watching master, each told in its file
// about the replica and the two others (ports and ids chosen ahead), so the group is
// formed at once instead of after rounds of the master's hello channel, two seconds
// each.
func startSentinels(t testing.TB, master, replica *Server) ([]*Server, error) {
	var lastErr error
	for range startAttempts {
		ports, err := testproc.FreePorts(3)
		if err != nil {
			return nil, err
		}
		ids := make([]string, 3)
		for i := range ids {
			var b [20]byte
			_, _ = rand.Read(b[:])
			ids[i] = hex.EncodeToString(b[:])
		}
		var started []*Server
		for i := range 3 {
			var body strings.Builder
			fmt.Fprintf(&body, `sentinel myid %[4]s
sentinel monitor %[1]s 127.0.0.1 %[2]d 2
sentinel down-after-milliseconds %[1]s %[3]d
sentinel failover-timeout %[1]s 3000
sentinel parallel-syncs %[1]s 1
sentinel known-replica %[1]s 127.0.0.1 %[5]d
`, MasterName, master.port, downAfter.Milliseconds(), ids[i], replica.port)
			for j := range 3 {
				if j != i {
					fmt.Fprintf(&body, "sentinel known-sentinel %s 127.0.0.1 %d %s\n", MasterName, ports[j], ids[j])
				}
			}
			conf := filepath.Join(t.TempDir(), "sentinel.conf")
			if err := os.WriteFile(conf, []byte(body.String()), 0o600); err != nil {
				return nil, err
			}
			s, err := startOn(t, ports[i], nil, conf)
			if err != nil {
				lastErr = fmt.Errorf("sentinel %d: %w", i, err)
				break
			}
			started = append(started, s)
		}
		if len(started) == 3 {
			return started, nil
		}
		for _, s := range started {
			s.Stop()
		}
	}
	return nil, lastErr
}

// SentinelAddrs are the Sentinels' addresses, what redis.addrs lists with master_name.
func (g *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr
	}
	return addrs
}

// Master returns the address the Sentinels name as master now.
func (g *Sentinel) Master() (string, error) {
	var lastErr error
	for _, s := range g.Sentinels {
		if !s.Running() {
			continue
		}
		v, err := Do(s.Addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if err != nil {
			lastErr = err
			continue
		}
		if hp, ok := v.([]any); ok && len(hp) == 2 {
			return hp[0].(string) + ":" + hp[1].(string), nil
		}
		lastErr = fmt.Errorf("sentinel %s: master %v", s.Addr, v)
	}
	return "", fmt.Errorf("no sentinel names the master: %v", lastErr)
}

// Node returns the data node at addr.
func (g *Sentinel) Node(addr string) *Server {
	for _, n := range g.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// KillMaster SIGKILLs the master the Sentinels name now and returns it.
func (g *Sentinel) KillMaster(t testing.TB) *Server {
	t.Helper()
	addr, err := g.Master()
	if err != nil {
		t.Fatal(err)
	}
	m := g.Node(addr)
	if m == nil {
		t.Fatalf("the sentinels name %s, which is not a node of this group", addr)
	}
	m.Kill()
	return m
}

// WaitForFailover waits until the Sentinels name another master than old and that
// master accepts writes, and returns its address.
func (g *Sentinel) WaitForFailover(t testing.TB, old string) string {
	t.Helper()
	var now string
	err := waitUntil(failoverMax, func() error {
		addr, err := g.Master()
		if err != nil {
			return err
		}
		if addr == old {
			return fmt.Errorf("the sentinels still name %s", old)
		}
		now = addr
		return isMaster(addr)
	})
	if err != nil {
		t.Fatalf("no failover from %s within %v: %v%s", old, failoverMax, err, g.Logs())
	}
	return now
}

// Logs returns the tail of every node's and Sentinel's log, to explain a failure.
func (g *Sentinel) Logs() string {
	var b strings.Builder
	for _, s := range append(slices.Clone(g.Nodes), g.Sentinels...) {
		b.WriteString(testproc.LogTail(filepath.Join(s.dir, "redis.log"), s.Addr))
	}
	return b.String()
}

// Cluster is a Redis Cluster of three masters, each with one replica, as
// `redis-cli --cluster create --cluster-replicas 1` builds it.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts a Cluster for t and waits until every node sees all sixteen
// thousand slots served and every replica is in sync. It fails t when redis-server
// or redis-cli is not installed.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster(t)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startCluster(t testing.TB) (*Cluster, error) {
	cli, err := testproc.Find("redis-cli", "redis-tools", EnvCLI)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for range 6 {
		// The cluster bus needs a port of its own; left to Redis it would be the
		// data port + 10000, which nothing reserved.
		ports, err := testproc.FreePorts(1)
		if err != nil {
			return nil, err
		}
		n, err := tryStart(t, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(ports[0]),
			"--cluster-node-timeout", strconv.FormatInt(downAfter.Milliseconds(), 10),
			// A replica takes over however stale it thinks it is: on loopback it
			// never is, and a refused failover would leave the test waiting.
			"--cluster-replica-validity-factor", "0",
			// The other masters' slots keep serving while one is failing over:
			// the setting docs/deploy.md recommends.
			"--cluster-require-full-coverage", "no",
			"--repl-diskless-sync-delay", "0",
		}, "")
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	err = waitUntil(topologyUp, func() error {
		for _, n := range c.Nodes {
			ci, err := clusterInfo(n.Addr)
			if err != nil {
				return err
			}
			if ci["cluster_state"] != "ok" || ci["cluster_slots_ok"] != "16384" || ci["cluster_known_nodes"] != "6" {
				return fmt.Errorf("node %s: state %s, %s slots ok, %s nodes known", n.Addr,
					ci["cluster_state"], ci["cluster_slots_ok"], ci["cluster_known_nodes"])
			}
			role, err := info(n.Addr, "replication")
			if err != nil {
				return err
			}
			if role["role"] == "slave" {
				if err := inSync(n.Addr); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster not formed: %w%s", err, c.Logs())
	}
	return c, nil
}

// Addrs are the addresses of all six nodes, what redis.addrs lists for a Cluster.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Node returns the node at addr.
func (c *Cluster) Node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// MasterOf returns the address of the master serving key's slot now, as a running
// node sees it.
func (c *Cluster) MasterOf(key string) (string, error) {
	var lastErr error
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		slot, err := Do(n.Addr, "CLUSTER", "KEYSLOT", key)
		if err != nil {
			lastErr = err
			continue
		}
		addr, err := slotMaster(n.Addr, slot.(int64))
		if err != nil {
			lastErr = err
			continue
		}
		return addr, nil
	}
	return "", fmt.Errorf("no node names the master of %q: %v", key, lastErr)
}

// Masters returns the addresses of the masters serving slots now, sorted.
func (c *Cluster) Masters() ([]string, error) {
	var lastErr error
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, err := Do(n.Addr, "CLUSTER", "SLOTS")
		if err != nil {
			lastErr = err
			continue
		}
		var masters []string
		for _, r := range v.([]any) {
			masters = append(masters, nodeAddr(r.([]any)[2]))
		}
		slices.Sort(masters)
		return slices.Compact(masters), nil
	}
	return nil, fmt.Errorf("no node answers CLUSTER SLOTS: %v", lastErr)
}

// KillMasterOf SIGKILLs the master serving key's slot and returns it.
func (c *Cluster) KillMasterOf(t testing.TB, key string) *Server {
	t.Helper()
	addr, err := c.MasterOf(key)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Node(addr)
	if n == nil {
		t.Fatalf("%s serves %q but is not a node of this cluster", addr, key)
	}
	n.Kill()
	return n
}

// WaitForFailover waits until key's slot is served by a master other than old,
// that master takes writes, and every running node says the cluster is ok; it
// returns the new master's address.
func (c *Cluster) WaitForFailover(t testing.TB, key, old string) string {
	t.Helper()
	var now string
	err := waitUntil(failoverMax, func() error {
		addr, err := c.MasterOf(key)
		if err != nil {
			return err
		}
		if addr == old {
			return fmt.Errorf("%s still serves %q", old, key)
		}
		if err := isMaster(addr); err != nil {
			return err
		}
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			ci, err := clusterInfo(n.Addr)
			if err != nil {
				return err
			}
			if ci["cluster_state"] != "ok" {
				return fmt.Errorf("node %s: cluster_state %s", n.Addr, ci["cluster_state"])
			}
		}
		now = addr
		return nil
	})
	if err != nil {
		t.Fatalf("no failover from %s within %v: %v%s", old, failoverMax, err, c.Logs())
	}
	return now
}

// Logs returns the tail of every node's log, to explain a failure.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		b.WriteString(testproc.LogTail(filepath.Join(n.dir, "redis.log"), n.Addr))
	}
	return b.String()
}

// replicaArgs make a server a replica of master, syncing at once (diskless, with no
// delay waiting for more replicas).
func replicaArgs(master string) []string {
	host, port, _ := strings.Cut(master, ":")
	return []string{"--replicaof", host, port, "--repl-diskless-sync-delay", "0"}
}

// inSync reports whether the replica at addr is linked to its master and loaded.
func inSync(addr string) error {
	r, err := info(addr, "replication")
	if err != nil {
		return err
	}
	if r["role"] != "slave" || r["master_link_status"] != "up" || r["master_sync_in_progress"] != "0" {
		return fmt.Errorf("replica %s: role %s, link %s, sync in progress %s", addr, r["role"], r["master_link_status"], r["master_sync_in_progress"])
	}
	return nil
}

// isMaster reports whether addr is a master that takes writes.
func isMaster(addr string) error {
	r, err := info(addr, "replication")
	if err != nil {
		return err
	}
	if r["role"] != "master" {
		return fmt.Errorf("%s is a %s", addr, r["role"])
	}
	return nil
}

func clusterInfo(addr string) (map[string]string, error) {
	v, err := Do(addr, "CLUSTER", "INFO")
	if err != nil {
		return nil, err
	}
	fields := make(map[string]string)
	for line := range strings.SplitSeq(v.(string), "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok {
			fields[k] = val
		}
	}
	return fields, nil
}

// slotMaster asks the node at addr which master serves slot.
func slotMaster(addr string, slot int64) (string, error) {
	v, err := Do(addr, "CLUSTER", "SLOTS")
	if err != nil {
		return "", err
	}
	for _, r := range v.([]any) {
		rng := r.([]any)
		if rng[0].(int64) <= slot && slot <= rng[1].(int64) {
			return nodeAddr(rng[2]), nil
		}
	}
	return "", fmt.Errorf("node %s: no master serves slot %d", addr, slot)
}

// nodeAddr reads host:port from a CLUSTER SLOTS node entry.
func nodeAddr(v any) string {
	n := v.([]any)
	return n[0].(string) + ":" + strconv.FormatInt(n[1].(int64), 10)
}

// waitUntil calls check every 50ms until it returns nil or timeout passes, and
// then returns its last error.
func waitUntil(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

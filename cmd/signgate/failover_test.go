package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/internal/testredis"
)

// recoverWithin is how long the fleet may take to serve every request again after
// the master was killed: generous, for a loaded CI machine. The figures measured
// are in docs/reliability.md.
const recoverWithin = 30 * time.Second

// TestFailoverUnderLoad runs two gateways on a Sentinel group, then on a Cluster,
// sends them signed (hmac-sha256), rate-limited and relay traffic, and SIGKILLs the
// Redis master under it (on the Cluster, the master of the slot holding the signing
// partner's nonces and budget). Sentinel or the Cluster promotes the replica; the
// gateways must follow by themselves, without a restart: signed requests answer
// 503 state_unavailable while no master takes writes (nonces fail closed), the
// rest keeps answering (limits fall back to local, the relay's token is in hand),
// and every request succeeds again within recoverWithin. It logs what it measured:
// refusals, seconds to the first and to the last failure, and the nonces a replay
// got past because the master died before replicating them.
func TestFailoverUnderLoad(t *testing.T) {
	tops := testredis.StartTopologies(t)
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	upURL := serveOnLoopback(t, &up)
	for _, tp := range tops[1:] {
		t.Run(tp.Name, func(t *testing.T) { failOver(t, tp, upURL) })
	}
}

// load is one request of the mix, as sent and as answered.
type loadResult struct {
	at      time.Time
	took    time.Duration
	kind    string // signed, limited, relay
	status  int
	code    string // the envelope's code, if any
	err     error
	headers map[string]string // a signed request's: to replay it later
}

func failOver(t *testing.T, tp testredis.Topology, upURL string) {
	addrs, release := reserveLoopbackAddrs(t, 3)
	sandboxAddr, adminA, adminB := addrs[0], addrs[1], addrs[2]
	quoted := make([]string, len(tp.Addrs))
	for i, a := range tp.Addrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	cfg := writeFile(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "${ADMIN_LISTEN:-127.0.0.1:0}", shutdown_timeout: 2s}
tls: {mode: "off"}
redis: {addrs: [%s], master_name: %q, key_prefix: "sg:"}
clients:
  - {id: app, api_key_sha256: %q, roles: [app]}
  - {id: partner, api_key_sha256: %q, secret: partner-secret, signature: hmac-sha256, roles: [app]}
roles: {app: {allow: ["* /api/**", "POST /daojia/**"]}}
rate_limits:
  - {key: ip, rate: 100000/s, burst: 100000}
  - {key: client, rate: 100000/s, burst: 100000}
upstreams: {backend: {targets: [%q]}}
daojia: {base_url: "http://%s", service_key: "2801200042", service_secret: fleet-daojia-secret}
routes:
  - {name: api, match: "* /api/**", upstream: backend}
  - {name: daojia-relay, match: "POST /daojia/**", daojia: relay}
`, strings.Join(quoted, ", "), tp.MasterName, auth.HashKey("app-key"), auth.HashKey("partner-key"), upURL, sandboxAddr))
	release()
	startSandbox(t, sandboxAddr, cfg)
	a := startProcess(t, []string{"ADMIN_LISTEN=" + adminA}, "serve", "-config", cfg)
	b := startProcess(t, []string{"ADMIN_LISTEN=" + adminB}, "serve", "-config", cfg)
	gateways := []*gatewayProcess{a, b}
	pids := []int{a.cmd.Process.Pid, b.cmd.Process.Pid}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	waitReadyz(t, client, 30*time.Second, adminA, adminB)

	var seq atomic.Int64
	send := func(kind string, gw *gatewayProcess) loadResult {
		var req *http.Request
		res := loadResult{kind: kind}
		switch kind {
		case "signed":
			h, err := auth.SignRequest("GET", "/api/signed", nil, []byte("partner-secret"), time.Now(),
				fmt.Sprintf("%s-failover-%08d", tp.Name, seq.Add(1)))
			if err != nil {
				t.Error(err)
			}
			res.headers = h
			req, _ = http.NewRequest("GET", "http://"+gw.listen+"/api/signed", nil)
			req.Header.Set("X-Api-Key", "partner-key")
			for k, v := range h {
				req.Header.Set(k, v)
			}
		case "limited":
			req, _ = http.NewRequest("GET", "http://"+gw.listen+"/api/limited", nil)
			req.Header.Set("X-Api-Key", "app-key")
		case "relay":
			req, _ = http.NewRequest("POST", "http://"+gw.listen+"/daojia/serviceUser/getAllServiceUser", strings.NewReader(`{}`))
			req.Header.Set("X-Api-Key", "app-key")
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := client.Do(req)
		res.at = time.Now()
		res.took = res.at.Sub(start)
		if err != nil {
			res.err = err
			return res
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.status = resp.StatusCode
		var env struct {
			Code string `json:"code"`
		}
		if resp.StatusCode != 200 && json.Unmarshal(body, &env) == nil {
			res.code = env.Code
		}
		if kind == "relay" && resp.StatusCode == 200 && !strings.HasPrefix(string(body), `{"code":0`) {
			res.status, res.code = 599, "relay answered "+string(body)
		}
		return res
	}

	var (
		mu      sync.Mutex
		results []loadResult
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	kinds := []string{"signed", "signed", "limited", "relay"}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := send(kinds[(w+i)%len(kinds)], gateways[(w+i/len(kinds))%2])
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	snapshot := func() []loadResult {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(results)
	}

	time.Sleep(time.Second) // load before the kill
	for _, r := range snapshot() {
		if r.err != nil || r.status != 200 {
			t.Fatalf("before the kill: %s answered %d %s %v", r.kind, r.status, r.code, r.err)
		}
	}
	var old string
	switch {
	case tp.Sentinel != nil:
		old = tp.Sentinel.KillMaster(t).Addr
	default:
		// The slot of the partner's nonces and client budget (and so of its
		// signed requests' one script).
		old = tp.Cluster.KillMasterOf(t, "sg:nonce:{partner}:x").Addr
	}
	killed := time.Now()

	// Until every request succeeded for two seconds since the last failure.
	var lastFailure, firstOK time.Time
	for {
		time.Sleep(100 * time.Millisecond)
		failures := false
		for _, r := range snapshot() {
			if r.at.Before(killed) {
				continue
			}
			if r.err != nil || r.status != 200 {
				failures = true
				if r.at.After(lastFailure) {
					lastFailure = r.at
				}
			}
		}
		if failures || !lastFailure.IsZero() {
			if time.Since(lastFailure) > 2*time.Second {
				break
			}
		} else if time.Since(killed) > 5*time.Second {
			break // nothing failed at all
		}
		if time.Since(killed) > recoverWithin {
			close(stop)
			wg.Wait()
			t.Fatalf("still failing %v after the master was killed: %s", recoverWithin, summarize(snapshot(), killed))
		}
	}
	close(stop)
	wg.Wait()
	all := snapshot()
	firstFail := firstFailure(all, killed)
	for _, r := range all {
		if !firstFail.IsZero() && r.at.After(firstFail) && r.kind == "signed" && r.status == 200 && (firstOK.IsZero() || r.at.Before(firstOK)) {
			firstOK = r.at
		}
	}

	// What the requests got meanwhile: only signed ones may fail, and only with
	// 503 state_unavailable; no gateway restarted.
	refused, other := 0, 0
	for _, r := range all {
		if r.at.Before(killed) || r.err == nil && r.status == 200 {
			continue
		}
		if r.kind == "signed" && r.status == 503 && r.code == "state_unavailable" {
			refused++
			continue
		}
		other++
		t.Errorf("%s request %v after the kill: %d %s %v", r.kind, r.at.Sub(killed).Round(time.Millisecond), r.status, r.code, r.err)
	}
	for i, gw := range gateways {
		if gw.cmd.ProcessState != nil || gw.cmd.Process.Pid != pids[i] {
			t.Errorf("gateway %d exited or restarted", i)
		}
	}

	// Both gateways say where the master is now and that they saw one failover.
	var now string
	if tp.Sentinel != nil {
		now = tp.Sentinel.WaitForFailover(t, old)
	} else {
		now = tp.Cluster.WaitForFailover(t, "sg:nonce:{partner}:x", old)
	}
	for _, admin := range []string{adminA, adminB} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			masters, failovers := readyzRedis(t, client, admin)
			if slices.Contains(masters, now) && !slices.Contains(masters, old) && failovers == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz: masters %v, failovers %d; want %s named, %s gone, one failover", admin, masters, failovers, now, old)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Replay protection across the switch: every signed request accepted is
	// sent again. Replication is asynchronous, so a nonce written in the last
	// moments before the kill may not have reached the replica (docs/reliability.md,
	// "Nonces across a failover"); any older one must still be a replay.
	lost, replays := 0, 0
	var lostAge []time.Duration
	for _, r := range all {
		if r.kind != "signed" || r.status != 200 {
			continue
		}
		replays++
		req, _ := http.NewRequest("GET", "http://"+a.listen+"/api/signed", nil)
		req.Header.Set("X-Api-Key", "partner-key")
		for k, v := range r.headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 401 {
			continue
		}
		lost++
		age := killed.Sub(r.at)
		lostAge = append(lostAge, age)
		if age > time.Second {
			t.Errorf("a nonce accepted %v before the master was killed was accepted again after the failover (HTTP %d)", age.Round(time.Millisecond), resp.StatusCode)
		}
	}

	t.Logf("%s: %d requests, master %s SIGKILLed, %s promoted; %d signed requests refused 503 state_unavailable, %d other failures; "+
		"first failure %v after the kill, first signed success after it %v, last failure %v (all succeed from then); "+
		"gateways restarted: none; replays of %d accepted signed requests let through: %d (accepted %v before the kill)",
		tp.Name, len(all), old, now, refused, other,
		since(firstFail, killed), since(firstOK, killed), since(lastFailure, killed), replays, lost, lostAge)
	t.Logf("%s: %s", tp.Name, summarize(all, killed))
	t.Logf("%s: median time taken while the master was down (from the kill to the last failure), by kind: %s", tp.Name, medians(all, killed, lastFailure))
}

// medians is the median time taken by each kind of request answered in [from, to].
func medians(all []loadResult, from, to time.Time) string {
	took := map[string][]time.Duration{}
	for _, r := range all {
		if !r.at.Before(from) && !r.at.After(to) {
			took[r.kind] = append(took[r.kind], r.took)
		}
	}
	var b strings.Builder
	for _, kind := range []string{"signed", "limited", "relay"} {
		d := took[kind]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		fmt.Fprintf(&b, "%s %v (%d); ", kind, d[len(d)/2].Round(time.Millisecond), len(d))
	}
	return b.String()
}

func firstFailure(all []loadResult, killed time.Time) time.Time {
	var first time.Time
	for _, r := range all {
		if r.at.After(killed) && (r.err != nil || r.status != 200) && (first.IsZero() || r.at.Before(first)) {
			first = r.at
		}
	}
	return first
}

func since(at, killed time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return at.Sub(killed).Round(10 * time.Millisecond).String()
}

// summarize counts the answers after the kill by kind and status, per 500ms.
func summarize(all []loadResult, killed time.Time) string {
	type slot struct {
		ok, failed int
	}
	slots := map[int]*slot{}
	last := 0
	for _, r := range all {
		if r.at.Before(killed) {
			continue
		}
		i := int(r.at.Sub(killed) / (500 * time.Millisecond))
		if slots[i] == nil {
			slots[i] = &slot{}
		}
		if r.err == nil && r.status == 200 {
			slots[i].ok++
		} else {
			slots[i].failed++
		}
		last = max(last, i)
	}
	var b strings.Builder
	b.WriteString("ok/failed per 500ms after the kill:")
	for i := 0; i <= last; i++ {
		s := slots[i]
		if s == nil {
			s = &slot{}
		}
		fmt.Fprintf(&b, " %d/%d", s.ok, s.failed)
	}
	return b.String()
}

// readyzRedis reads the masters and failovers /readyz reports.
func readyzRedis(t *testing.T, client *http.Client, admin string) ([]string, int64) {
	t.Helper()
	resp, err := client.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Redis struct {
			Masters   []string `json:"masters"`
			Failovers int64    `json:"failovers"`
		} `json:"redis"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Redis.Masters, body.Redis.Failovers
}

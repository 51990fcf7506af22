package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/testredis"
)

// readyz reads the admin listener's /readyz.
func readyz(t *testing.T, g *testGateway) (int, readyBody) {
	t.Helper()
	resp, err := http.Get(g.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body readyBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz %s: %v", b, err)
	}
	return resp.StatusCode, body
}

type readyBody struct {
	Status string      `json:"status"`
	Redis  *readyRedis `json:"redis"`
}

// seriesValue reads one series of /metrics, or -1 when it is absent.
func seriesValue(t *testing.T, g *testGateway, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(metricsText(t, g))
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// An operator asks /readyz and /metrics where the shared state's master is: before
// and after Sentinel replaced it, with the failover and the errors it caused
// counted, and the gateway serving again without a restart.
func TestReadyzAndMetricsFollowTheRedisMaster(t *testing.T) {
	g0 := testredis.StartSentinel(t)
	up := okUpstream(t)
	cfg := baseConfig(up.URL, fmt.Sprintf("redis: {addrs: [%s], master_name: %q, timeout: 300ms}\nrate_limits: [{key: client, rate: 1000/s}]\n",
		`"`+strings.Join(g0.SentinelAddrs(), `", "`)+`"`, testredis.MasterName))
	g := startGateway(t, cfg)
	old, err := g0.Master()
	if err != nil {
		t.Fatal(err)
	}

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("30s waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("/readyz to name the master", func() bool {
		code, body := readyz(t, g)
		return code == 200 && body.Redis != nil && len(body.Redis.Masters) == 1 && body.Redis.Masters[0] == old
	})
	if _, body := readyz(t, g); body.Status != "ready" || body.Redis.Topology != "sentinel" || body.Redis.Failovers != 0 {
		t.Fatalf("/readyz %+v %+v", body, body.Redis)
	}
	if v := seriesValue(t, g, `signgate_redis_master{addr="`+old+`"}`); v != 1 {
		t.Errorf("signgate_redis_master for %s = %v, want 1", old, v)
	}
	for _, kind := range []string{"timeout", "connection", "readonly", "moved", "clusterdown", "other"} {
		if v := seriesValue(t, g, `signgate_redis_errors_total{kind="`+kind+`"}`); v != 0 {
			t.Errorf("signgate_redis_errors_total{kind=%q} = %v before any trouble, want 0", kind, v)
		}
	}

	g0.KillMaster(t)
	// Requests meanwhile: their limits fall back to local (redis_failure), and the
	// errors behind that are counted.
	for range 3 {
		if resp, body := g.do(t, "GET", "/api/services", appKey, nil); resp.StatusCode != 200 {
			t.Fatalf("with the master down, an API-key request: %d %s", resp.StatusCode, body)
		}
	}
	now := g0.WaitForFailover(t, old)
	waitFor("an API-key request through the new master's rate limit", func() bool {
		resp, _ := g.do(t, "GET", "/api/services", appKey, nil)
		return resp.StatusCode == 200
	})
	waitFor("/readyz to name the new master", func() bool {
		code, body := readyz(t, g)
		return code == 200 && body.Redis != nil && len(body.Redis.Masters) == 1 && body.Redis.Masters[0] == now
	})
	if _, body := readyz(t, g); body.Redis.Failovers != 1 {
		t.Errorf("/readyz failovers %d, want 1", body.Redis.Failovers)
	}
	if v := seriesValue(t, g, `signgate_redis_failovers_total`); v != 1 {
		t.Errorf("signgate_redis_failovers_total = %v, want 1", v)
	}
	if v := seriesValue(t, g, `signgate_redis_master{addr="`+now+`"}`); v != 1 {
		t.Errorf("signgate_redis_master for the new master %s = %v, want 1", now, v)
	}
	if v := seriesValue(t, g, `signgate_redis_master{addr="`+old+`"}`); v != -1 {
		t.Errorf("signgate_redis_master still reports the old master %s: %v", old, v)
	}
	if v := seriesValue(t, g, `signgate_redis_errors_total{kind="connection"}`) + seriesValue(t, g, `signgate_redis_errors_total{kind="timeout"}`); v <= 0 {
		t.Errorf("no connection or timeout error counted while the master was dead")
	}
}

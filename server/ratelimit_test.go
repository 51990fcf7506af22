package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signgate/signgate/internal/testredis"
)

func limitedConfig(upstreamURL, redisAddr, failure string) string {
	extra := fmt.Sprintf(`ratelimit: {redis_failure: %s}
rate_limits:
  - {key: ip, rate: 1/h, burst: 5}
  - {key: client, routes: [orders-create], rate: 1/h, burst: 10}
`, failure)
	if redisAddr != "" {
		extra += fmt.Sprintf("redis: {addrs: [%q], timeout: 300ms}\n", redisAddr)
	}
	return baseConfig(upstreamURL, extra)
}

func okUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(up.Close)
	return up
}

func TestRateLimitPerClientAndPerIP(t *testing.T) {
	up := okUpstream(t)
	// Only the client rule, on orders-create; a generous ip rule.
	g := startGateway(t, baseConfig(up.URL, `rate_limits:
  - {key: ip, rate: 100/s, burst: 100}
  - {key: client, routes: [orders-create], rate: 1/m, burst: 3}
`))
	for i := range 3 {
		resp, body := g.do(t, "POST", "/api/orders", appKey, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d %s", i+1, resp.StatusCode, body)
		}
		if got := resp.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Errorf("request %d: RateLimit-Remaining %q, want %d", i+1, got, 2-i)
		}
	}
	resp, body := g.do(t, "POST", "/api/orders", appKey, nil)
	if resp.StatusCode != 429 || code(t, body) != "rate_limited" {
		t.Fatalf("fourth request: %d %s, want 429 rate_limited", resp.StatusCode, body)
	}
	// 1/m: the next token is 60 s away.
	if ra := resp.Header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After %q, want 60", ra)
	}
	if resp.Header.Get("RateLimit-Limit") != "1" || resp.Header.Get("RateLimit-Remaining") != "0" || resp.Header.Get("RateLimit-Reset") == "" {
		t.Errorf("RateLimit headers %v", resp.Header)
	}
	if resp, _ := g.do(t, "GET", "/api/services", appKey, nil); resp.StatusCode != 200 {
		t.Errorf("a route the rule does not name was limited: %d", resp.StatusCode)
	}
	if !strings.Contains(metricsText(t, g), `signgate_rate_limited_total{route="orders-create"} 1`) {
		t.Error("/metrics does not count the refusal")
	}

	// Key guessing: refused per address before the key is even looked at.
	g2 := startGateway(t, baseConfig(up.URL, "rate_limits:\n  - {key: ip, rate: 1/h, burst: 5}\n"))
	for range 5 {
		if resp, _ := g2.do(t, "GET", "/api/services", "guess", nil); resp.StatusCode != 401 {
			t.Fatalf("guess within the ip burst: %d, want 401", resp.StatusCode)
		}
	}
	if resp, _ := g2.do(t, "GET", "/api/services", "guess", nil); resp.StatusCode != 429 {
		t.Fatalf("sixth guess from one address: %d, want 429", resp.StatusCode)
	}
}

// Two instances sharing a Redis: a burst of 40 spread over both admits the rule's
// burst of 10 once, not once per instance.
func TestRateLimitSharedAcrossInstances(t *testing.T) {
	rs := testredis.Start(t)
	up := okUpstream(t)
	cfg := baseConfig(up.URL, fmt.Sprintf(`redis: {addrs: [%q]}
rate_limits:
  - {key: ip, rate: 1000/s, burst: 1000}
  - {key: client, routes: [orders-create], rate: 1/h, burst: 10}
`, rs.Addr))
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	var admitted, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			req, _ := http.NewRequest("POST", g.url+"/api/orders", nil)
			req.Header.Set("X-Api-Key", appKey)
			resp, err := g.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				admitted.Add(1)
			case 429:
				limited.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 10 || limited.Load() != 30 {
		t.Fatalf("admitted %d, limited %d; want 10 and 30 across both instances", admitted.Load(), limited.Load())
	}
}

// With Redis gone, redis_failure decides: closed refuses, open admits.
func TestRateLimitRedisFailureModes(t *testing.T) {
	for _, tt := range []struct {
		mode string
		want int
	}{{"closed", 429}, {"open", 200}, {"local", 200}} {
		t.Run(tt.mode, func(t *testing.T) {
			rs := testredis.Start(t)
			up := okUpstream(t)
			g := startGateway(t, limitedConfig(up.URL, rs.Addr, tt.mode))
			rs.Stop()
			resp, body := g.do(t, "GET", "/api/services", appKey, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("redis_failure %s with Redis down: %d %s, want %d", tt.mode, resp.StatusCode, body, tt.want)
			}
		})
	}
}

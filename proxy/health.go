package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Run performs active health checks until ctx is done: every HealthInterval it asks
// each target for HealthPath and marks the target down unless it answers 2xx or 3xx
// within HealthTimeout. The first round runs at once. Run returns at once when active
// checks are off, and otherwise only after its checks have stopped.
func (p *Pool) Run(ctx context.Context) {
	if !p.active {
		return
	}
	ticker := time.NewTicker(p.healthInterval)
	defer ticker.Stop()
	for {
		p.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// checkAll checks every target at once, so one slow target does not delay the others,
// and waits for all of them.
func (p *Pool) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range p.targets {
		wg.Go(func() { p.check(ctx, t) })
	}
	wg.Wait()
}

func (p *Pool) check(ctx context.Context, t *target) {
	cctx, cancel := context.WithTimeout(ctx, p.healthTimeout)
	defer cancel()
	cctx = context.WithValue(cctx, exchangeKey{}, &exchange{dialTimeout: p.dialTimeout, target: t})
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, t.healthURL, nil)
	if err != nil {
		p.setDown(t, true, err.Error())
		return
	}
	req.Header.Set("User-Agent", "signgate-health-check")
	// The Transport, not a Client: a 3xx counts as up and is not followed.
	resp, err := p.transport.RoundTrip(req)
	if ctx.Err() != nil {
		return // stopping; a check cut short says nothing about the target
	}
	if err != nil {
		p.setDown(t, true, err.Error())
		return
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	up := resp.StatusCode >= 200 && resp.StatusCode < 400
	p.setDown(t, !up, "status "+strconv.Itoa(resp.StatusCode))
}

// setDown records a check result and logs only changes, not every tick.
func (p *Pool) setDown(t *target, down bool, reason string) {
	if t.down.Swap(down) == down {
		return
	}
	if down {
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "upstream target failed health check",
			slog.String("upstream", p.name), slog.String("target", t.label), slog.String("reason", reason))
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "upstream target passed health check",
		slog.String("upstream", p.name), slog.String("target", t.label))
}

package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
)

// target is one upstream address and what passive and active health know about it.
// Its state is atomic because every request in flight reads it.
type target struct {
	url       *url.URL
	label     string // the URL for logs, any password redacted
	healthURL string // "" when active checks are off
	index     int    // position in Pool.targets

	fails        atomic.Int32 // consecutive failures since the last success
	ejectedUntil atomic.Int64 // Unix nanoseconds; 0 when not ejected
	down         atomic.Bool  // the last active check failed
}

func newTarget(raw string, health *url.URL) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want an absolute http or https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("target %q: a query or fragment is not allowed", raw)
	}
	t := &target{url: u, label: u.Redacted()}
	if health != nil {
		// Resolved as a reference, so "/healthz" is at the target's root and
		// "healthz" is under its path prefix.
		t.healthURL = u.ResolveReference(health).String()
	}
	return t, nil
}

// usable reports whether t may receive requests, and notices when an ejection has run
// out so the restoration is logged once.
func (p *Pool) usable(t *target) bool {
	if t.down.Load() {
		return false
	}
	until := t.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if p.now().UnixNano() < until {
		return false
	}
	if t.ejectedUntil.CompareAndSwap(until, 0) {
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "upstream target restored",
			slog.String("upstream", p.name), slog.String("target", t.label))
	}
	return true
}

// recordSuccess ends a run of failures.
func (p *Pool) recordSuccess(t *target) {
	// Load first: a write on every request would bounce the cache line between cores.
	if t.fails.Load() != 0 {
		t.fails.Store(0)
	}
}

// recordFailure counts a failed exchange with t (no connection, a reset, a broken or
// missing response, a response timeout once the whole request was sent) and ejects t
// once MaxFails happen in a row. What the caller caused is never counted: hanging up,
// a body over the limit or still arriving, a request that cannot be sent at all
// (poolTransport.RoundTrip decides), or a caller could eject healthy targets.
func (p *Pool) recordFailure(t *target) {
	if p.maxFails <= 0 || t.fails.Add(1) < p.maxFails {
		return
	}
	t.fails.Store(0)
	now := p.now()
	prev := t.ejectedUntil.Swap(now.Add(p.ejectFor).UnixNano())
	// Requests already in flight may fail after the ejection; log it once.
	if prev == 0 || now.UnixNano() >= prev {
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "upstream target ejected",
			slog.String("upstream", p.name), slog.String("target", t.label),
			slog.Int("failures", int(p.maxFails)), slog.Duration("for", p.ejectFor))
	}
}

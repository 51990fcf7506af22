package tracing

import (
	"context"
	"log/slog"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// gate stands in front of the SDK's batch processor and counts what it drops. The
// SDK drops spans silently when its queue is full; the gate keeps the number of
// spans handed on and not yet exported (queued or in the batch being sent) at most
// the queue's size, so the SDK's queue never fills, and the spans it turns away
// instead are the drops, counted. One atomic add per ended span.
type gate struct {
	next    sdktrace.SpanProcessor
	limit   int64
	pending atomic.Int64
	dropped atomic.Uint64
	log     *slog.Logger
}

var _ sdktrace.SpanProcessor = (*gate)(nil)

func (g *gate) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { g.next.OnStart(ctx, s) }

func (g *gate) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if g.pending.Add(1) > g.limit {
		g.pending.Add(-1)
		g.dropped.Add(1)
		return
	}
	g.next.OnEnd(s)
}

func (g *gate) Shutdown(ctx context.Context) error   { return g.next.Shutdown(ctx) }
func (g *gate) ForceFlush(ctx context.Context) error { return g.next.ForceFlush(ctx) }

// countingExporter tells the gate when spans have left, and logs failed exports
// (the SDK would send them to a process-wide handler on stderr).
type countingExporter struct {
	sdktrace.SpanExporter
	gate   *gate
	failed atomic.Uint64
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	defer e.gate.pending.Add(-int64(len(spans)))
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		n := e.failed.Add(1)
		e.gate.log.LogAttrs(ctx, slog.LevelWarn, "exporting trace spans failed; they are lost",
			slog.Int("spans", len(spans)), slog.Uint64("failed_exports", n), slog.String("err", err.Error()))
	}
	return nil
}

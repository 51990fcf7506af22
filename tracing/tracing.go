package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options configures a Tracer. Zero fields take the defaults named on each.
type Options struct {
	// Endpoint is the collector's OTLP/HTTP base URL ("http://127.0.0.1:4318");
	// spans are posted to its /v1/traces, or to the URL's own path when it has one.
	// "" turns tracing off: New returns a nil Tracer.
	Endpoint string
	// SampleRatio is the share of new traces recorded, 0 to 1.
	SampleRatio float64
	// ServiceName is the spans' service.name; "" is "signgate".
	ServiceName string
	// Version is the spans' service.version; "" leaves it out.
	Version string
	// QueueSize bounds the spans waiting for export; 0 means 2048. Spans ended while
	// it is full are dropped.
	QueueSize int
	// BatchTimeout is the longest a span waits before its batch is sent; 0 means 5s.
	BatchTimeout time.Duration
	// ExportTimeout bounds one export; 0 means 10s.
	ExportTimeout time.Duration
	// Logger receives failed exports; nil discards.
	Logger *slog.Logger
}

const (
	defaultQueueSize     = 2048
	defaultBatchTimeout  = 5 * time.Second
	defaultExportTimeout = 10 * time.Second
	// maxExportBatch is the SDK's default batch; a smaller queue caps it.
	maxExportBatch = 512
	// instrumentationName names the spans' instrumentation scope.
	instrumentationName = "github.com/signgate/signgate/tracing"
)

// Tracer starts signgate's spans and exports them. A nil *Tracer is tracing off;
// the server does not call one then.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
	gate     *gate
}

// New returns the Tracer for o, or nil when o.Endpoint is "". It connects to
// nothing yet: a collector that is down costs failed exports, logged, never a
// request.
func New(o Options) (*Tracer, error) {
	if o.Endpoint == "" {
		return nil, nil
	}
	endpoint, err := exportURL(o.Endpoint)
	if err != nil {
		return nil, err
	}
	if o.SampleRatio < 0 || o.SampleRatio > 1 || o.SampleRatio != o.SampleRatio {
		return nil, fmt.Errorf("tracing: sample ratio %v is not between 0 and 1", o.SampleRatio)
	}
	if o.ServiceName == "" {
		o.ServiceName = "signgate"
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = defaultBatchTimeout
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = defaultExportTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	exporter, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(endpoint),
		// The export goroutine retries, never a request; a collector that stays
		// away costs one batch per ExportTimeout.
		otlptracehttp.WithTimeout(o.ExportTimeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled: true, InitialInterval: 500 * time.Millisecond,
			MaxInterval: 5 * time.Second, MaxElapsedTime: o.ExportTimeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	g := &gate{limit: int64(o.QueueSize), log: o.Logger}
	bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exporter, gate: g},
		sdktrace.WithMaxQueueSize(o.QueueSize),
		sdktrace.WithMaxExportBatchSize(min(maxExportBatch, o.QueueSize)),
		sdktrace.WithBatchTimeout(o.BatchTimeout),
		sdktrace.WithExportTimeout(o.ExportTimeout),
	)
	g.next = bsp
	attrs := []attribute.KeyValue{attribute.String("service.name", o.ServiceName)}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	provider := sdktrace.NewTracerProvider(
		// A caller's sampled traceparent is continued, its unsampled one is
		// honoured; traces started here are sampled by trace id, so every
		// instance of a fleet decides alike for the same trace.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSpanProcessor(g),
	)
	return &Tracer{provider: provider, tracer: provider.Tracer(instrumentationName), gate: g}, nil
}

// exportURL is where spans are posted: the endpoint's own path, or /v1/traces.
func exportURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("tracing: endpoint %q is not an absolute http or https URL", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Shutdown exports what is queued, within ctx, and stops the exporter. A nil
// Tracer has nothing to do.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// ForceFlush exports every span ended so far, within ctx.
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Dropped is how many sampled spans were dropped because the export queue was full.
func (t *Tracer) Dropped() uint64 {
	if t == nil {
		return 0
	}
	return t.gate.dropped.Load()
}

// Extract returns ctx carrying the remote span context of h's traceparent (and
// tracestate), or ctx itself when h has none or a malformed one.
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	if _, ok := h["Traceparent"]; !ok {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject replaces h's traceparent and tracestate with ctx's span context. A caller's
// own are removed first, so an upstream never sees a trace the gateway did not
// take part in.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	delete(h, "Traceparent")
	delete(h, "Tracestate")
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Start starts a span of kind as a child of ctx's span. A trace that is not
// sampled gets a span that records nothing, cheaply.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// Record adds a span that ran from start to end as a child of ctx's span: for work
// worth a span only once it turns out large (masking a big body), decided after it.
func (t *Tracer) Record(ctx context.Context, name string, start, end time.Time, attrs ...attribute.KeyValue) trace.Span {
	_, span := t.tracer.Start(ctx, name, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	span.End(trace.WithTimestamp(end))
	return span
}

// Recording reports whether ctx's span records: whether work done for ctx's
// request is worth a span.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// TraceID is the trace id of ctx's span when it records, "" otherwise.
func TraceID(ctx context.Context) string {
	s := trace.SpanFromContext(ctx)
	if !s.IsRecording() {
		return ""
	}
	return s.SpanContext().TraceID().String()
}

// ErrorType names err for the error.type attribute without its text, which may
// hold a URL and its query: "timeout", "canceled" or "error".
func ErrorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return "timeout"
	}
	return "error"
}

package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/signgate/signgate/internal/testotlp"
)

func newTracer(t *testing.T, o Options) *Tracer {
	t.Helper()
	if o.BatchTimeout == 0 {
		o.BatchTimeout = 20 * time.Millisecond
	}
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr
}

func TestOffIsNil(t *testing.T) {
	tr, err := New(Options{SampleRatio: 1})
	if err != nil || tr != nil {
		t.Fatalf("New without endpoint = %v, %v; want nil, nil", tr, err)
	}
	// A nil Tracer's lifecycle methods are safe, so the server need not check.
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if tr.Dropped() != 0 {
		t.Error("nil tracer dropped spans")
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"endpoint not a URL", Options{Endpoint: "127.0.0.1:4318"}},
		{"endpoint ftp", Options{Endpoint: "ftp://collector"}},
		{"ratio above 1", Options{Endpoint: "http://127.0.0.1:4318", SampleRatio: 1.5}},
		{"ratio negative", Options{Endpoint: "http://127.0.0.1:4318", SampleRatio: -0.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tr, err := New(tc.o); err == nil {
				tr.Shutdown(context.Background())
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestExportURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":         "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":        "http://127.0.0.1:4318/v1/traces",
		"https://otel.example/custom/x": "https://otel.example/custom/x",
	} {
		if got, err := exportURL(in); err != nil || got != want {
			t.Errorf("exportURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestSpansReachTheReceiver(t *testing.T) {
	rcv := testotlp.Start(t)
	tr := newTracer(t, Options{Endpoint: rcv.URL, SampleRatio: 1, ServiceName: "gw-test"})
	ctx, root := tr.Start(context.Background(), "root", trace.SpanKindServer, attribute.String("k", "v"))
	_, child := tr.Start(ctx, "child", trace.SpanKindInternal)
	child.End()
	start := time.Now().Add(-time.Millisecond)
	tr.Record(ctx, "recorded", start, time.Now())
	root.End()

	spans := rcv.WaitFor(t, 5*time.Second, func(s []testotlp.Span) bool { return len(s) == 3 })
	r := testotlp.Named(spans, "root")[0]
	if r.Service != "gw-test" || r.Kind != tracepb.Span_SPAN_KIND_SERVER || r.Attrs["k"] != "v" || r.ParentSpanID != "" {
		t.Errorf("root span = %+v", r)
	}
	if kids := testotlp.Children(spans, r); len(kids) != 2 {
		t.Errorf("root has %d children, want 2 (child, recorded): %+v", len(kids), spans)
	}
	if rec := testotlp.Named(spans, "recorded")[0]; !rec.Start.Equal(start) {
		t.Errorf("recorded span starts %v, want %v", rec.Start, start)
	}
}

func TestIncomingTraceparent(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name        string
		traceparent string
		ratio       float64
		wantSampled bool
		wantTrace   string
	}{
		{"sampled parent continued at ratio 0", parent, 0, true, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"unsampled parent honoured at ratio 1", strings.TrimSuffix(parent, "01") + "00", 1, false, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"malformed parent starts a trace", "00-zz-00f067aa0ba902b7-01", 1, true, ""},
		{"no parent, ratio 0, not sampled", "", 0, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracer(t, Options{Endpoint: "http://127.0.0.1:1", SampleRatio: tc.ratio})
			h := http.Header{}
			if tc.traceparent != "" {
				h.Set("Traceparent", tc.traceparent)
			}
			ctx, span := tr.Start(tr.Extract(context.Background(), h), "server", trace.SpanKindServer)
			defer span.End()
			sc := span.SpanContext()
			if sc.IsSampled() != tc.wantSampled || span.IsRecording() != tc.wantSampled {
				t.Errorf("sampled %v recording %v, want %v", sc.IsSampled(), span.IsRecording(), tc.wantSampled)
			}
			if tc.wantTrace != "" && sc.TraceID().String() != tc.wantTrace {
				t.Errorf("trace id %s, want %s", sc.TraceID(), tc.wantTrace)
			}
			if got := TraceID(ctx); (got != "") != tc.wantSampled {
				t.Errorf("TraceID = %q with sampled %v", got, tc.wantSampled)
			}
		})
	}
}

func TestTransportInjects(t *testing.T) {
	rcv := testotlp.Start(t)
	tr := newTracer(t, Options{Endpoint: rcv.URL, SampleRatio: 1})
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.WriteHeader(http.StatusTeapot)
	}))
	defer up.Close()
	client := &http.Client{Transport: tr.Transport(http.DefaultTransport, "upstream", func(p string) string { return strings.ReplaceAll(p, "13812345678", "138****5678") })}

	// Without a span on the context (a health check): no span, and the caller's
	// header untouched.
	req, _ := http.NewRequest(http.MethodGet, up.URL+"/health", nil)
	req.Header.Set("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	ctx, root := tr.Start(context.Background(), "server", trace.SpanKindServer)
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, up.URL+"/users/13812345678?token=s3cret", nil)
	req.Header.Set("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := req.Header.Get("Traceparent"); !strings.HasPrefix(got, "00-1111") {
		t.Errorf("the caller's request was changed: traceparent %q", got)
	}
	root.End()

	spans := rcv.WaitFor(t, 5*time.Second, func(s []testotlp.Span) bool { return len(s) == 2 })
	client1 := testotlp.Named(spans, "upstream GET")
	if len(client1) != 1 {
		t.Fatalf("spans %+v", spans)
	}
	c := client1[0]
	if c.Kind != tracepb.Span_SPAN_KIND_CLIENT || c.Attrs["url.path"] != "/users/138****5678" || c.Attrs["http.response.status_code"] != "418" {
		t.Errorf("client span = %+v", c)
	}
	for k, v := range c.Attrs {
		if strings.Contains(v, "s3cret") || strings.Contains(v, "13812345678") {
			t.Errorf("attribute %s = %q leaks", k, v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "00-11111111111111111111111111111111-2222222222222222-01" {
		t.Errorf("untraced request's traceparent = %q, want it passed through", seen[0])
	}
	want := "00-" + c.TraceID + "-" + c.SpanID + "-01"
	if seen[1] != want {
		t.Errorf("traced request's traceparent = %q, want %q", seen[1], want)
	}
}

// blockingExporter holds every export until release is closed.
type blockingExporter struct{ release chan struct{} }

func (e blockingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
	}
	return nil
}
func (blockingExporter) Shutdown(context.Context) error { return nil }

func TestFullQueueDropsAndCounts(t *testing.T) {
	release := make(chan struct{})
	g := &gate{limit: 4}
	g.log = newTracer(t, Options{Endpoint: "http://127.0.0.1:1"}).gate.log
	bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: blockingExporter{release}, gate: g},
		sdktrace.WithMaxQueueSize(4), sdktrace.WithMaxExportBatchSize(4), sdktrace.WithBatchTimeout(time.Millisecond))
	g.next = bsp
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(g))
	tracer := tp.Tracer("test")

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, s := tracer.Start(context.Background(), "s")
			s.End()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ending spans blocked on a stuck exporter")
	}
	if d := g.dropped.Load(); d < 90 {
		t.Errorf("dropped %d of 100 spans with a queue of 4 and a stuck exporter, want at least 90", d)
	}
	close(release)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if p := g.pending.Load(); p != 0 {
		t.Errorf("%d spans still counted as pending after shutdown", p)
	}
}

package testotlp

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func TestReceiverDecodesExport(t *testing.T) {
	r := Start(t)
	traceID := bytes.Repeat([]byte{0xab}, 16)
	msg := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "svc")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			{Name: "root", TraceId: traceID, SpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Kind: tracepb.Span_SPAN_KIND_SERVER},
			{Name: "child", TraceId: traceID, SpanId: []byte{2, 2, 2, 2, 2, 2, 2, 2}, ParentSpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1},
				Attributes: []*commonpb.KeyValue{str("k", "v"), {Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -42}}}}},
		}}},
	}}}
	body, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	spans := r.WaitFor(t, time.Second, func(s []Span) bool { return len(s) == 2 })
	root := Named(spans, "root")[0]
	if root.ParentSpanID != "" || root.Service != "svc" || root.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("root = %+v", root)
	}
	kids := Children(spans, root)
	if len(kids) != 1 || kids[0].Attrs["k"] != "v" || kids[0].Attrs["n"] != "-42" {
		t.Errorf("children of root = %+v", kids)
	}

	resp, err = http.Post(r.URL+"/v1/traces", "application/json", bytes.NewReader([]byte("{}")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("JSON export: status %d, want 415", resp.StatusCode)
	}
}

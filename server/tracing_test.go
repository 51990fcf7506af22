package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/internal/leakcheck"
	"github.com/signgate/signgate/internal/testotlp"
	"github.com/signgate/signgate/internal/testredis"
)

// traceparents records the traceparent of every request a handler receives, by path.
type traceparents struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (tp *traceparents) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		if tp.seen == nil {
			tp.seen = map[string][]string{}
		}
		tp.seen[r.URL.Path] = append(tp.seen[r.URL.Path], r.Header.Get("Traceparent"))
		tp.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (tp *traceparents) of(path string) []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]string(nil), tp.seen[path]...)
}

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerParent = "00f067aa0ba902b7"
	// secretQuery is a token a caller put in a query string: it must reach no span.
	secretQuery = "tok-SECRET-9f8e7d6c"
)

func flushTraces(t *testing.T, g *testGateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.srv.deps.tracer.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
}

func spanOf(t *testing.T, spans []testotlp.Span, pred func(testotlp.Span) bool, what string) testotlp.Span {
	t.Helper()
	for _, s := range spans {
		if pred(s) {
			return s
		}
	}
	t.Fatalf("no %s span among %d: %s", what, len(spans), spanNames(spans))
	return testotlp.Span{}
}

func spanNames(spans []testotlp.Span) string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name+"("+s.SpanID+"<-"+s.ParentSpanID+")")
	}
	return strings.Join(names, " ")
}

func childNames(spans []testotlp.Span, parent testotlp.Span) map[string]int {
	out := map[string]int{}
	for _, c := range testotlp.Children(spans, parent) {
		out[c.Name]++
	}
	return out
}

// Spans of a signed request, a relay call and a refused one, against a real
// OTLP/HTTP receiver, a real Redis, an upstream and the 58到家 sandbox.
func TestTracingSpans(t *testing.T) {
	rcv := testotlp.Start(t)
	rs := testredis.Start(t)
	var tp traceparents
	up := httptest.NewServer(tp.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})))
	t.Cleanup(up.Close)
	platform := httptest.NewServer(tp.wrap(daojia.NewSandbox(daojia.SandboxOptions{ServiceKey: djKey, ServiceSecret: djSecret, Version: "v1"})))
	t.Cleanup(platform.Close)
	g := startGateway(t, signedConfig(up.URL, platform.URL, rs.Addr)+fmt.Sprintf(`
tracing: {otlp_endpoint: %q, sample_ratio: 1, service_name: signgate-test}
rate_limits:
  - {key: ip, rate: "1000/s"}
  - {key: client, rate: "1000/s"}
`, rcv.URL))

	// 1. A signed partner's call carrying a sampled traceparent.
	path := "/api/signed/users/13812345678?access_token=" + secretQuery
	hdr := append(signedHeaders(t, "GET", path, "", "nonce-trace-0001", time.Now()),
		"Traceparent", "00-"+callerTrace+"-"+callerParent+"-01")
	resp, body := g.do(t, "GET", path, partnerKey, nil, hdr...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed call: %d %s", resp.StatusCode, body)
	}
	// 2. A relay call, with no traceparent: a trace is started (ratio 1).
	resp, body = g.do(t, "POST", "/daojia/serviceUser/getAllServiceUser", appKey, strings.NewReader(`{"phone":"13912345678"}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("relay call: %d %s", resp.StatusCode, body)
	}
	// 3. A refused one.
	resp, _ = g.do(t, "GET", "/api/services", "not-a-key-0000000000", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", resp.StatusCode)
	}
	flushTraces(t, g)
	spans := rcv.WaitFor(t, 5*time.Second, func(s []testotlp.Span) bool {
		return len(testotlp.Named(s, "GET signed-only")) == 1 && len(testotlp.Named(s, "POST relay")) == 1 && len(testotlp.Named(s, "GET api")) == 1
	})

	t.Run("signed call continues the caller's trace", func(t *testing.T) {
		srv := testotlp.Named(spans, "GET signed-only")[0]
		if srv.TraceID != callerTrace || srv.ParentSpanID != callerParent || srv.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Fatalf("server span %+v: want trace %s, parent %s, kind server", srv, callerTrace, callerParent)
		}
		if srv.Service != "signgate-test" {
			t.Errorf("service.name %q", srv.Service)
		}
		for k, want := range map[string]string{
			"http.request.method":       "GET",
			"signgate.route":            "signed-only",
			"signgate.client":           "sunshine-housekeeping",
			"http.response.status_code": "200",
		} {
			if srv.Attrs[k] != want {
				t.Errorf("server span %s = %q, want %q", k, srv.Attrs[k], want)
			}
		}
		if p := srv.Attrs["url.path"]; !strings.HasPrefix(p, "/api/signed/users/") || strings.Contains(p, "13812345678") {
			t.Errorf("url.path %q: want the path, masked", p)
		}
		if srv.Attrs["signgate.request_id"] == "" {
			t.Error("no signgate.request_id")
		}
		kids := childNames(spans, srv)
		if kids["auth"] != 1 || kids["ratelimit"] != 2 || kids["upstream GET"] != 1 {
			t.Errorf("server span's children %v: want auth, ratelimit ×2 (ip before auth, client after), upstream GET", kids)
		}
		auth := spanOf(t, spans, func(s testotlp.Span) bool { return s.Name == "auth" && s.ParentSpanID == srv.SpanID }, "auth")
		if auth.Attrs["signgate.decision"] != "allowed" {
			t.Errorf("auth decision %q", auth.Attrs["signgate.decision"])
		}
		// The nonce is checked with the client's limit, one script after auth.
		limits := spanOf(t, spans, func(s testotlp.Span) bool {
			return s.Name == "redis EVALSHA" && s.Attrs["signgate.replay_check"] == "true"
		}, "the nonce's and limits' redis EVALSHA")
		if parent := spanOf(t, spans, func(s testotlp.Span) bool { return s.SpanID == limits.ParentSpanID }, "its parent"); parent.Name != "ratelimit" || parent.ParentSpanID != srv.SpanID {
			t.Errorf("the nonce's redis EVALSHA is under %q, want the ratelimit span after auth", parent.Name)
		}
		upSpan := spanOf(t, spans, func(s testotlp.Span) bool { return s.Name == "upstream GET" && s.ParentSpanID == srv.SpanID }, "upstream")
		if upSpan.Kind != tracepb.Span_SPAN_KIND_CLIENT || upSpan.Attrs["http.response.status_code"] != "200" {
			t.Errorf("upstream span %+v", upSpan)
		}
		got := tp.of("/api/signed/users/13812345678")
		want := "00-" + callerTrace + "-" + upSpan.SpanID + "-01"
		if len(got) != 1 || got[0] != want {
			t.Errorf("upstream received traceparent %q, want %q", got, want)
		}
		// The access line names the trace.
		var line map[string]any
		for _, l := range g.logs.lines(t, "request") {
			if l["route"] == "signed-only" {
				line = l
			}
		}
		if line["trace_id"] != callerTrace {
			t.Errorf("access line trace_id %v, want %s", line["trace_id"], callerTrace)
		}
	})

	t.Run("relay call starts a trace that reaches 58到家", func(t *testing.T) {
		srv := testotlp.Named(spans, "POST relay")[0]
		if srv.ParentSpanID != "" {
			t.Errorf("relay server span has parent %s, want a new trace", srv.ParentSpanID)
		}
		relay := spanOf(t, spans, func(s testotlp.Span) bool { return s.Name == "daojia relay" && s.ParentSpanID == srv.SpanID }, "daojia relay")
		kids := childNames(spans, relay)
		if kids["daojia POST"] != 2 {
			t.Errorf("relay span's children %v: want daojia POST ×2 (token, call)", kids)
		}
		if kids["redis GET"] == 0 {
			t.Errorf("relay span's children %v: want the token lookup in Redis", kids)
		}
		calls := tp.of("/api/v1/serviceUser/getAllServiceUser")
		if len(calls) != 1 || !strings.HasPrefix(calls[0], "00-"+srv.TraceID+"-") {
			t.Errorf("58到家 received traceparent %q, want trace %s", calls, srv.TraceID)
		}
	})

	t.Run("refused call", func(t *testing.T) {
		srv := testotlp.Named(spans, "GET api")[0]
		auth := spanOf(t, spans, func(s testotlp.Span) bool { return s.Name == "auth" && s.ParentSpanID == srv.SpanID }, "auth")
		if auth.Attrs["signgate.decision"] != "refused" || auth.Attrs["error.type"] != "unknown_key" {
			t.Errorf("auth span attrs %v", auth.Attrs)
		}
		if kids := childNames(spans, srv); kids["upstream GET"] != 0 {
			t.Errorf("a refused call reached the upstream: %v", kids)
		}
		if srv.Attrs["http.response.status_code"] != "401" || srv.Attrs["error.type"] != "unknown_key" {
			t.Errorf("server span attrs %v", srv.Attrs)
		}
	})

	t.Run("no secret in any span", func(t *testing.T) {
		secrets := []string{appKey, partnerKey, partnerSecret, djSecret, secretQuery, "nonce-trace-0001"}
		for _, h := range hdr {
			if len(h) == 64 { // X-Signature
				secrets = append(secrets, h)
			}
		}
		for _, s := range spans {
			texts := []string{s.Name}
			for k, v := range s.Attrs {
				texts = append(texts, k, v)
			}
			for _, text := range texts {
				if leaks := leakcheck.FindString(text); len(leaks) > 0 {
					t.Errorf("span %s: %q holds a phone number", s.Name, text)
				}
				for _, sec := range secrets {
					if strings.Contains(text, sec) {
						t.Errorf("span %s: %q holds secret %q", s.Name, text, sec)
					}
				}
			}
		}
	})

	mresp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	mb, _ := io.ReadAll(mresp.Body)
	if !strings.Contains(string(mb), "signgate_trace_spans_dropped_total 0") {
		t.Error("/metrics lacks signgate_trace_spans_dropped_total")
	}
}

// echoedTraceparent is the traceparent seenHeaders' upstream echoes back.
func echoedTraceparent(t *testing.T, body []byte) string {
	t.Helper()
	var got struct {
		Headers http.Header `json:"headers"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return got.Headers.Get("Traceparent")
}

func TestTracingOffPassesTraceparentThrough(t *testing.T) {
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, ""))
	if g.srv.deps.tracer != nil {
		t.Fatal("a tracer with tracing off")
	}
	const sent = "00-" + callerTrace + "-" + callerParent + "-01"
	resp, body := g.do(t, "GET", "/api/services", appKey, nil, "Traceparent", sent)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := echoedTraceparent(t, body); got != sent {
		t.Errorf("upstream got traceparent %q, want the caller's %q untouched", got, sent)
	}
	for _, l := range g.logs.lines(t, "request") {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("access line with tracing off has trace_id: %v", l)
		}
	}
}

func TestTracingUnsampled(t *testing.T) {
	rcv := testotlp.Start(t)
	up := seenHeaders(t)
	g := startGateway(t, baseConfig(up.URL, fmt.Sprintf("tracing: {otlp_endpoint: %q, sample_ratio: 0}\n", rcv.URL)))
	resp, body := g.do(t, "GET", "/api/services", appKey, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// Not sampled, the trace still goes upstream, marked so.
	if got := echoedTraceparent(t, body); !strings.HasPrefix(got, "00-") || !strings.HasSuffix(got, "-00") {
		t.Errorf("upstream got traceparent %q, want an unsampled one", got)
	}
	// A caller's unsampled decision is kept too, and its trace continued.
	const unsampled = "00-" + callerTrace + "-" + callerParent + "-00"
	_, body = g.do(t, "GET", "/api/services", appKey, nil, "Traceparent", unsampled)
	if got := echoedTraceparent(t, body); !strings.HasPrefix(got, "00-"+callerTrace+"-") || !strings.HasSuffix(got, "-00") || got == unsampled {
		t.Errorf("upstream got traceparent %q, want the caller's trace, unsampled, with the gateway's span", got)
	}
	flushTraces(t, g)
	if n := len(rcv.Spans()); n != 0 {
		t.Errorf("%d spans exported at ratio 0", n)
	}
	for _, l := range g.logs.lines(t, "request") {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("access line of an unsampled request has trace_id: %v", l)
		}
	}
}

// benchTracedGateway is benchGateway's gateway with a tracing section.
func benchTracedGateway(b *testing.B, upstream, section string) http.Handler {
	cfg, err := parseConfig(fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: property-miniapp, api_key_sha256: %q, roles: [resident_app]}
roles:
  resident_app: {allow: ["GET /api/services"]}
upstreams:
  backend: {targets: [%q]}
routes:
  - {name: public, match: "GET /public/**", upstream: backend, public: true}
  - {name: api, match: "* /api/**", upstream: backend}
%s`, auth.HashKey(appKey), upstream, section))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), WithJSONAccessLog(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.gw.Load().retire(nil)
		srv.stopTracing()
	})
	return http.HandlerFunc(srv.serveGateway)
}

// BenchmarkGatewayTracing is BenchmarkGateway's apikey row with tracing off, on but
// not sampled (ratio 0), and on with every request sampled and exported to a real
// OTLP/HTTP receiver in the same process.
func BenchmarkGatewayTracing(b *testing.B) {
	up := benchUpstream(b)
	rcv := testotlp.Start(b)
	for _, row := range []struct{ name, section string }{
		{"off", ""},
		{"on-ratio0", fmt.Sprintf("tracing: {otlp_endpoint: %q, sample_ratio: 0}\n", rcv.URL)},
		{"on-ratio1", fmt.Sprintf("tracing: {otlp_endpoint: %q, sample_ratio: 1}\n", rcv.URL)},
	} {
		h := benchTracedGateway(b, up.URL, row.section)
		b.Run(row.name, func(b *testing.B) { benchServe(b, h, "/api/services", appKey) })
	}
}

// Masking an answer larger than 64 KB gets a span; a small one does not.
func TestTracingLargeMasking(t *testing.T) {
	rcv := testotlp.Start(t)
	var big strings.Builder
	big.WriteString(`{"orders":[`)
	for i := 0; big.Len() < 100<<10; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"id":%d,"phone":"13812345678","note":"%s"}`, i, strings.Repeat("x", 64))
	}
	big.WriteString(`]}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/big" {
			io.WriteString(w, big.String())
			return
		}
		io.WriteString(w, `{"phone":"13812345678"}`)
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", http_listen: "", admin_listen: "127.0.0.1:0"}
tls: {mode: self_signed}
clients:
  - {id: provider, api_key_sha256: %q, roles: [masked]}
roles:
  masked: {allow: ["GET /api/**"], mask: true}
upstreams: {backend: {targets: [%q]}}
routes:
  - {name: api, match: "GET /api/**", upstream: backend}
tracing: {otlp_endpoint: %q, sample_ratio: 1}
`, auth.HashKey(providerKey), up.URL, rcv.URL))
	for _, p := range []string{"/api/big", "/api/small"} {
		resp, body := g.do(t, "GET", p, providerKey, nil)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "13812345678") {
			t.Fatalf("%s: %d, masked %v", p, resp.StatusCode, !strings.Contains(string(body), "13812345678"))
		}
	}
	flushTraces(t, g)
	spans := rcv.WaitFor(t, 5*time.Second, func(s []testotlp.Span) bool { return len(testotlp.Named(s, "GET api")) == 2 })
	masks := testotlp.Named(spans, "mask response")
	if len(masks) != 1 {
		t.Fatalf("%d mask spans, want 1 (the large answer's): %s", len(masks), spanNames(spans))
	}
	parent := spanOf(t, spans, func(s testotlp.Span) bool { return s.SpanID == masks[0].ParentSpanID }, "mask's parent")
	if parent.Name != "GET api" || parent.Attrs["url.path"] != "/api/big" {
		t.Errorf("mask span's parent is %s %s, want the large request's server span", parent.Name, parent.Attrs["url.path"])
	}
	if n := masks[0].Attrs["signgate.body_bytes"]; n == "" || len(n) < 6 {
		t.Errorf("signgate.body_bytes = %q, want above 64 KB", n)
	}
}

// The trace id is written alike by the direct access-line writer and through slog.
func TestTracingAccessLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 23, 11, 28, 48, 123456789, time.UTC)
	rec := accessRecord{
		requestID: "01JD5Z6W3B8Q9R7T5V2X4Y6Z8A", client: "property-miniapp", route: "api",
		method: "GET", path: "/api/orders/42", status: 200, durationMS: 1.234,
		bytesOut: 4179, remoteIP: "192.0.2.1", proto: "HTTP/1.1", cache: "hit",
		traceID: callerTrace,
	}
	got, want := direct(t, at, &rec), viaSlog(t, at, &rec)
	if got != want {
		t.Errorf("direct:\n%s\nslog:\n%s", got, want)
	}
	if !strings.Contains(got, `,"trace_id":"`+callerTrace+`"}`) {
		t.Errorf("line without trace_id last: %s", got)
	}
}

// Masking a large 58到家 answer on a relay route gets a span too, under the relay
// request's server span; a small one does not.
func TestTracingLargeRelayMasking(t *testing.T) {
	rcv := testotlp.Start(t)
	var big strings.Builder
	big.WriteString(`{"code":0,"message":"ok","data":[`)
	for i := 0; big.Len() < 100<<10; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"userId":"u%d","userPhone":"15888888888","userRemark":"%s"}`, i, strings.Repeat("x", 64))
	}
	big.WriteString(`]}`)
	g := maskedRelayGateway(t, fmt.Sprintf("tracing: {otlp_endpoint: %q, sample_ratio: 1}\n", rcv.URL), func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/serviceUser/getAllServiceUser" {
			io.WriteString(w, big.String())
			return
		}
		io.WriteString(w, `{"code":0,"message":"ok","data":{"userPhone":"15888888888"}}`)
	})
	for _, p := range []string{"/daojia/serviceUser/getAllServiceUser", "/daojia/serviceUser/getServiceUser"} {
		resp, body := g.do(t, "POST", p, providerKey, strings.NewReader(`{}`), "Content-Type", "application/json")
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "15888888888") || !strings.Contains(string(body), "158****8888") {
			t.Fatalf("%s: %d, want 200 with the phone masked", p, resp.StatusCode)
		}
	}
	flushTraces(t, g)
	spans := rcv.WaitFor(t, 5*time.Second, func(s []testotlp.Span) bool { return len(testotlp.Named(s, "POST relay")) == 2 })
	masks := testotlp.Named(spans, "mask response")
	if len(masks) != 1 {
		t.Fatalf("%d mask spans, want 1 (the large answer's): %s", len(masks), spanNames(spans))
	}
	parent := spanOf(t, spans, func(s testotlp.Span) bool { return s.SpanID == masks[0].ParentSpanID }, "mask's parent")
	if parent.Name != "POST relay" || parent.Attrs["url.path"] != "/daojia/serviceUser/getAllServiceUser" {
		t.Errorf("mask span's parent is %s %s, want the large relay request's server span", parent.Name, parent.Attrs["url.path"])
	}
	if n := masks[0].Attrs["signgate.body_bytes"]; len(n) < 6 {
		t.Errorf("signgate.body_bytes = %q, want above 64 KB", n)
	}
	for _, s := range spans {
		for k, v := range s.Attrs {
			if len(leakcheck.FindString(v)) > 0 || strings.Contains(v, "tok-relay-masked") {
				t.Errorf("span %s attribute %s = %q leaks a phone or the token", s.Name, k, v)
			}
		}
	}
}

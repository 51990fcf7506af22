package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Transport wraps next so that a request made for a traced request (its context
// carries a span) gets a client span, named name and the method ("upstream GET"),
// and carries that span's traceparent. Requests with no span on their context, such
// as health checks, pass through untouched. maskPath, when set, masks the path the
// span records (phone numbers in paths); the query is never recorded.
func (t *Tracer) Transport(next http.RoundTripper, name string, maskPath func(string) string) http.RoundTripper {
	return &transport{t: t, next: next, name: name, maskPath: maskPath}
}

type transport struct {
	t        *Tracer
	next     http.RoundTripper
	name     string
	maskPath func(string) string
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(req.Context()).IsValid() {
		return tr.next.RoundTrip(req)
	}
	path := req.URL.Path
	if tr.maskPath != nil {
		path = tr.maskPath(path)
	}
	ctx, span := tr.t.Start(req.Context(), tr.name+" "+req.Method, trace.SpanKindClient,
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", req.URL.Host),
		attribute.String("url.scheme", req.URL.Scheme),
		attribute.String("url.path", path),
	)
	defer span.End()
	// A RoundTripper must not change the request it is given: the trace headers
	// go on a copy, which a retry on another target makes afresh.
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 1)
	}
	tr.t.Inject(ctx, out.Header)
	resp, err := tr.next.RoundTrip(out)
	if err != nil {
		span.SetAttributes(attribute.String("error.type", ErrorType(err)))
		span.SetStatus(codes.Error, "")
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, "")
	}
	return resp, nil
}

package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/mask"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/ratelimit"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/state"
	"github.com/signgate/signgate/tracing"
)

// Tracing (DESIGN.md "Tracing"). With tracing off deps.tracer is nil and none of
// the layers below is in the chain: a request pays nothing for it. On, the chain
// gains a server span just inside the access log, spans around the auth and
// rate-limit decisions, the relay and large maskings, and the shared transports
// and state store are wrapped so upstream, 58到家 and Redis calls get theirs.
//
// What spans carry: method, masked path, route and client ids, status, error
// codes, the request id. Never header values, query strings, bodies, keys or
// error texts. A caller's traceparent is continued; with tracing off it goes
// upstream untouched, as any other header does.

// maskedBodySpan is the size from which masking an answer gets a span of its own:
// below it masking takes microseconds and a span would cost more than it shows.
const maskedBodySpan = 64 << 10

// newTracer builds the tracer for cfg.Tracing, or nil when it is off, and counts its
// dropped spans in m.
func newTracer(tc config.Tracing, m *metrics, logger *slog.Logger) (*tracing.Tracer, error) {
	t, err := tracing.New(tracing.Options{
		Endpoint:    tc.OTLPEndpoint,
		SampleRatio: tc.SampleRatio,
		ServiceName: tc.ServiceName,
		QueueSize:   tc.QueueSize,
		Logger:      logger,
	})
	if err != nil || t == nil {
		return nil, err
	}
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "signgate_trace_spans_dropped_total",
		Help: "Sampled trace spans dropped because the export queue was full.",
	}, func() float64 { return float64(t.Dropped()) }))
	return t, nil
}

// traceRequests starts each request's server span, continuing the caller's
// traceparent, and notes the trace id for the access line when the span records.
// It runs just inside accessLog, whose recordingWriter it is handed.
func traceRequests(t *tracing.Tracer, masker *mask.Masker) middleware {
	return func(next http.Handler) http.Handler {
		if t == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, span := t.Start(t.Extract(r.Context(), r.Header), "HTTP", trace.SpanKindServer)
			if !span.IsRecording() {
				// Not sampled: the span context still travels upstream.
				next.ServeHTTP(w, r.WithContext(ctx))
				span.End()
				return
			}
			rw, _ := w.(*recordingWriter)
			if rw != nil {
				rw.traceID = span.SpanContext().TraceID().String()
			}
			info := reqinfo.Of(r)
			span.SetAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", masker.String(r.URL.Path)),
				attribute.String("client.address", remoteIP(r)),
				attribute.String("network.protocol.version", r.Proto),
				attribute.String("signgate.request_id", info.RequestID),
			)
			// Ended however the request ends: an aborted response unwinds with a
			// panic that accessLog logs and passes on.
			defer func() {
				status := 0
				if rw != nil {
					status = rw.status
				}
				if status == 0 {
					status = http.StatusOK
				}
				route := routeLabel(info.Route)
				span.SetName(r.Method + " " + route)
				span.SetAttributes(attribute.String("signgate.route", route), attribute.Int("http.response.status_code", status))
				if info.Client != "" {
					span.SetAttributes(attribute.String("signgate.client", info.Client))
				}
				if info.ErrCode != "" {
					span.SetAttributes(attribute.String("error.type", info.ErrCode))
				}
				if status >= 500 {
					span.SetStatus(codes.Error, info.ErrCode)
				}
				span.End()
			}()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// stage is a decision's span while it runs: ended when the decision lets the
// request on, or when the decision's layer returns having refused it.
type stage struct {
	span, parent trace.Span
	ended        bool
}

type stageKey struct{}

// traceStage gives mw, a layer that decides (auth, a rate limit), a span named
// name covering the decision alone: the layers after it are not its children but
// its siblings under the server span. With t nil, mw is returned as it is.
func traceStage(t *tracing.Tracer, name string, mw middleware) middleware {
	if t == nil {
		return mw
	}
	return func(next http.Handler) http.Handler {
		passed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if st, _ := r.Context().Value(stageKey{}).(*stage); st != nil && !st.ended {
				st.ended = true
				st.span.SetAttributes(attribute.String("signgate.decision", "allowed"))
				st.span.End()
				r = r.WithContext(trace.ContextWithSpan(r.Context(), st.parent))
			}
			next.ServeHTTP(w, r)
		})
		decide := mw(passed)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			parent := trace.SpanFromContext(r.Context())
			if !parent.IsRecording() {
				decide.ServeHTTP(w, r)
				return
			}
			ctx, span := t.Start(r.Context(), name, trace.SpanKindInternal)
			st := &stage{span: span, parent: parent}
			defer func() {
				if st.ended {
					return
				}
				st.ended = true
				info := reqinfo.Of(r)
				span.SetAttributes(attribute.String("signgate.decision", "refused"))
				if info.ErrCode != "" {
					span.SetAttributes(attribute.String("error.type", info.ErrCode))
				}
				if info.Client != "" {
					span.SetAttributes(attribute.String("signgate.client", info.Client))
				}
				span.End()
			}()
			decide.ServeHTTP(w, r.WithContext(context.WithValue(ctx, stageKey{}, st)))
		})
	}
}

// traceHandler gives h (the 58到家 relay) a span covering all it does.
func traceHandler(t *tracing.Tracer, name string, h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tracing.Recording(r.Context()) {
			h.ServeHTTP(w, r)
			return
		}
		ctx, span := t.Start(r.Context(), name, trace.SpanKindInternal)
		defer span.End()
		h.ServeHTTP(w, r.WithContext(ctx))
		if code := reqinfo.Of(r).ErrCode; code != "" {
			span.SetAttributes(attribute.String("error.type", code))
			span.SetStatus(codes.Error, code)
		}
	})
}

// traceMasking gives the masking of an upstream answer a span when the answer
// turns out larger than maskedBodySpan. It must run after maskResponses, which
// puts the masking hook on the request.
func traceMasking(t *tracing.Tracer) middleware {
	return func(next http.Handler) http.Handler {
		if t == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			hook := proxy.ResponseHookFrom(ctx)
			if hook == nil || !tracing.Recording(ctx) {
				next.ServeHTTP(w, r)
				return
			}
			traced := func(resp *http.Response) error {
				start := time.Now()
				body := &countedBody{ReadCloser: resp.Body}
				resp.Body = body
				err := hook(resp)
				if body.n > maskedBodySpan {
					attrs := []attribute.KeyValue{attribute.Int64("signgate.body_bytes", body.n)}
					if err != nil {
						attrs = append(attrs, attribute.String("error.type", "refused"))
					}
					t.Record(ctx, "mask response", start, time.Now(), attrs...)
				}
				return err
			}
			next.ServeHTTP(w, r.WithContext(proxy.WithResponseHook(ctx, traced)))
		})
	}
}

// countedBody counts what the masking hook reads of an answer.
type countedBody struct {
	io.ReadCloser
	n int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// tracedState gives the shared state's calls made for a traced request a client
// span each: the nonce check, the 58到家 token and its lock. Keys and values are
// not recorded (nonces, tokens).
type tracedState struct {
	sharedState
	t *tracing.Tracer
}

func (s tracedState) start(ctx context.Context, op string) (context.Context, trace.Span) {
	if !tracing.Recording(ctx) {
		return ctx, nil
	}
	return s.t.Start(ctx, "redis "+op, trace.SpanKindClient,
		attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", op))
}

func endState(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetAttributes(attribute.String("error.type", tracing.ErrorType(err)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

func (s tracedState) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ctx, span := s.start(ctx, "SET")
	ok, err := s.sharedState.SetNX(ctx, key, value, ttl)
	endState(span, err)
	return ok, err
}

func (s tracedState) Get(ctx context.Context, key string) (string, bool, error) {
	ctx, span := s.start(ctx, "GET")
	v, ok, err := s.sharedState.Get(ctx, key)
	endState(span, err)
	return v, ok, err
}

func (s tracedState) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	ctx, span := s.start(ctx, "SET")
	err := s.sharedState.Set(ctx, key, value, ttl)
	endState(span, err)
	return err
}

func (s tracedState) Del(ctx context.Context, key string) error {
	ctx, span := s.start(ctx, "DEL")
	err := s.sharedState.Del(ctx, key)
	endState(span, err)
	return err
}

func (s tracedState) CompareAndDelete(ctx context.Context, key, value string) (bool, error) {
	ctx, span := s.start(ctx, "EVALSHA")
	ok, err := s.sharedState.CompareAndDelete(ctx, key, value)
	endState(span, err)
	return ok, err
}

// traceLimit gives a rate-limit layer a span, when it has rules to apply.
func traceLimit(t *tracing.Tracer, rules []*ratelimit.Rule, mw middleware) middleware {
	if len(rules) == 0 {
		return mw
	}
	return traceStage(t, "ratelimit", mw)
}

// tracedDaojiaTransport is the 58到家 client's Transport with tracing on (a client
// span and a traceparent per call), or nil, the client's own, with it off.
func tracedDaojiaTransport(t *tracing.Tracer, timeout time.Duration, masker *mask.Masker) http.RoundTripper {
	if t == nil {
		return nil
	}
	return t.Transport(daojia.NewTransport(timeout), "daojia", masker.String)
}

// traceWith turns tracing on for s when cfg asks for it: the tracer, the upstream
// transport and (with Redis) the state store wrapped to give their calls spans.
func (s *Server) traceWith(cfg *config.Config, store sharedState) error {
	t, err := newTracer(cfg.Tracing, s.metrics, s.logger)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	if t == nil {
		return nil
	}
	s.deps.tracer = t
	s.deps.transport = t.Transport(s.deps.transport, "upstream", newMasker(cfg.Masking).String)
	if _, ok := store.(*state.Redis); ok {
		s.deps.store = tracedState{sharedState: store, t: t}
	}
	return nil
}

// tracingShutdownTimeout bounds the last export at shutdown: spans are worth a
// moment, not a stuck exit.
const tracingShutdownTimeout = 5 * time.Second

// stopTracing exports the spans still queued and stops the exporter.
func (s *Server) stopTracing() {
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if err := s.deps.tracer.Shutdown(ctx); err != nil {
		s.logger.Warn("exporting the last trace spans", "err", err)
	}
}

// Package tracing is signgate's OpenTelemetry tracing: spans exported over
// OTLP/HTTP, the W3C traceparent read from callers and written to upstreams and to
// 58到家.
//
// Off (no endpoint) there is no Tracer at all: New returns nil, and the server
// builds its chain without the tracing layers, so a request pays nothing. On, a
// request's spans are recorded when its trace is sampled: a caller's sampled
// traceparent is continued, and new traces are sampled at the configured ratio.
// Spans go out through a batch processor with a bounded queue; a request never
// waits for the exporter, and spans that find the queue full are dropped and
// counted (Tracer.Dropped).
//
// What spans carry is chosen so that no secret can reach a collector: methods,
// route and client ids, status codes, masked paths. Never header values, query
// strings, bodies, keys or error texts (a transport error's text holds the URL).
package tracing

// Package proxy forwards requests to upstream pools: one Pool per upstream in config,
// each a set of targets behind net/http/httputil.ReverseProxy.
//
// A Pool picks targets round-robin among those that are usable: not ejected by
// passive health (MaxFails consecutive connection failures or response timeouts put a
// target out for EjectFor) and not marked down by the active health check (Run). An
// idempotent request whose connection to a target cannot be made is tried on another
// target, up to Retries times; nothing is retried once the upstream may have seen the
// request. Only the upstream's own failures count towards an ejection: a request the
// caller made unsendable (an HTTP/2 :method that is not a token, a header net/http
// will not write) is answered 400 bad_request and counts against no target, nor does
// a response timeout while the caller's body was still arriving. Every failure is
// answered with the gateway's JSON envelope through apierror.Write: 502
// upstream_error, 503 upstream_unavailable, 504 upstream_timeout.
//
// A caller that hangs up gets no answer at all, and when an upstream fails after its
// response headers were sent, ReverseProxy aborts the response by panicking with
// http.ErrAbortHandler; the recovery middleware must let that panic through (or drop
// it silently) rather than answer 500.
//
// All pools share one *http.Transport (NewTransport), kept across config reloads so
// idle upstream connections survive them; per-upstream dial and response timeouts
// therefore travel with each request instead of living in the Transport.
package proxy

package proxy

import (
	"context"
	"net/http"
)

// ResponseHook may rewrite an upstream's response before it is copied to the caller
// (masking does). An error answers the caller 502 upstream_error instead.
type ResponseHook func(*http.Response) error

type hookKey struct{}

// WithResponseHook returns a context whose request's response passes through hook.
// The hook travels with the request, not the pool, because what to do depends on
// who is asking (a role that sees masked data), and pools are shared by routes and
// kept across config reloads.
func WithResponseHook(ctx context.Context, hook ResponseHook) context.Context {
	return context.WithValue(ctx, hookKey{}, hook)
}

// modifyResponse is the ReverseProxy's ModifyResponse: it runs the request's hook.
func modifyResponse(resp *http.Response) error {
	if hook, _ := resp.Request.Context().Value(hookKey{}).(ResponseHook); hook != nil {
		return hook(resp)
	}
	return nil
}

// ResponseHookFrom returns the hook WithResponseHook put on ctx, or nil, so a layer
// can wrap it (tracing times the masking of large answers).
func ResponseHookFrom(ctx context.Context) ResponseHook {
	hook, _ := ctx.Value(hookKey{}).(ResponseHook)
	return hook
}

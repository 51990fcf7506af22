// Package reqinfo carries the facts about one request that several layers fill in
// and the access log reads at the end: request id, decided method and path, route
// name, client id, error code.
package reqinfo

import (
	"context"
	"net/http"
)

// Info is the per-request record. It is created once by the outermost middleware and
// filled in by the layers below; a pointer is shared so inner layers can write it.
type Info struct {
	RequestID string
	// DecidedMethod and DecidedPath are the request's decided form (route.Decide:
	// HEAD as GET, no trailing slash), what routing, RBAC, limits and anything else
	// attached to a route decide on. Set once, before routing, by the server's
	// request hygiene; the request itself goes upstream as sent.
	DecidedMethod string
	DecidedPath   string
	Route         string // route name from config; "" until matched
	Client        string // client id; "" until authenticated
	Roles         []string
	// User is the owner calling (a WeChat session's openid, or a JWT's claim); ""
	// when the request carries none. UnionID is the session's unionid when known.
	User    string
	UnionID string
	ErrCode string // the apierror code written, if any
}

type ctxKey struct{}

// With returns a context carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the Info carried by ctx, or nil.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

// Of returns the Info of r, or a throwaway one so callers need not check for nil.
func Of(r *http.Request) *Info {
	if info := From(r.Context()); info != nil {
		return info
	}
	return &Info{}
}

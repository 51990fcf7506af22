package server

import (
	"context"
	"net/http"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/reqinfo"
)

type clientKey struct{}

// clientFrom returns the authenticated client of ctx, or nil.
func clientFrom(ctx context.Context) *auth.Client {
	c, _ := ctx.Value(clientKey{}).(*auth.Client)
	return c
}

// authenticate finds the caller by X-Api-Key and, for a client configured with a
// signature scheme, verifies the request's signature (see verifyClientSignature).
func authenticate(keys *auth.Keys, v *auth.Verifier, routeVerify string) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sent := r.Header.Values("X-Api-Key")
			if len(sent) > 1 {
				// Which copy counts would be a guess, and a proxy in front of us
				// may guess differently: refused, as the signature headers are.
				apierror.Write(w, r, errTwoKeys)
				return
			}
			var key string
			if len(sent) == 1 {
				key = sent[0]
			}
			if key == "" {
				apierror.Write(w, r, apierror.ErrMissingCredentials)
				return
			}
			c, ok := keys.Lookup(key)
			if !ok {
				apierror.Write(w, r, apierror.ErrUnknownKey)
				return
			}
			info := reqinfo.Of(r)
			info.Client = c.ID
			info.Roles = c.Roles
			if !verifyClientSignature(v, routeVerify, w, r, c) {
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
		})
	}
}

// errTwoKeys answers a request carrying X-Api-Key more than once.
var errTwoKeys = apierror.BadRequest("X-Api-Key must be sent once")

// authorize lets the call through only when one of the client's roles allows
// "METHOD /path", in the request's decided form (see hygiene): a role allowing
// "GET /api/orders/*" allows HEAD /api/orders/42 and GET /api/orders/42/.
func authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := clientFrom(r.Context())
		if c == nil || !c.Allowed(decided(r)) {
			apierror.Write(w, r, apierror.ErrForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/signgate/signgate/apierror"
)

// corsPolicy is the cors: section, precomputed into header values once.
type corsPolicy struct {
	anyOrigin   bool
	origins     map[string]bool
	methods     string
	headers     string
	expose      string
	credentials bool
	maxAge      string
}

func newCORSPolicy(origins, methods, headers, expose []string, credentials bool, maxAgeSeconds int) *corsPolicy {
	p := &corsPolicy{
		origins:     make(map[string]bool, len(origins)),
		methods:     strings.Join(methods, ", "),
		headers:     strings.Join(headers, ", "),
		expose:      strings.Join(expose, ", "),
		credentials: credentials,
		maxAge:      strconv.Itoa(maxAgeSeconds),
	}
	for _, o := range origins {
		if o == "*" {
			p.anyOrigin = true
		}
		p.origins[o] = true
	}
	return p
}

func (p *corsPolicy) allowed(origin string) bool {
	return p.anyOrigin || p.origins[origin]
}

// cors answers preflight requests itself, before routing and authentication (a
// browser sends no API key on a preflight), and adds the allow headers to actual
// requests from allowed origins. With no origins configured it does nothing.
func cors(p *corsPolicy) middleware {
	return func(next http.Handler) http.Handler {
		if len(p.origins) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if !p.allowed(origin) {
				if preflight {
					apierror.Write(w, r, apierror.New(http.StatusForbidden, "forbidden", "origin not allowed"))
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			// A credentialed response may not use "*": echo the origin instead.
			h.Set("Access-Control-Allow-Origin", origin)
			if p.credentials {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				h.Set("Access-Control-Allow-Methods", p.methods)
				h.Set("Access-Control-Allow-Headers", p.headers)
				h.Set("Access-Control-Max-Age", p.maxAge)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if p.expose != "" {
				h.Set("Access-Control-Expose-Headers", p.expose)
			}
			next.ServeHTTP(w, r)
		})
	}
}

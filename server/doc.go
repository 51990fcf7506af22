// Package server assembles signgate: it turns a config.Config into listeners (the TLS
// edge, the HTTP redirect, the admin listener) and the middleware chain in front of
// every route. It is the one place that knows the whole request path and its order.
package server

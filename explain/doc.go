// Package explain says what signgate would do with one request, from a config alone:
// which route it takes, what it is sent to, every check it meets in the order the
// gateway runs them, and the answer it would get, for each client that could send
// it. It is `signgate explain`: the operator's answer to "why does the provider get
// 403?" without sending traffic.
//
// The decisions only the gateway's own code makes (refusals before routing, which
// rate limits run before authentication) come from package server, so the
// explanation is the gateway's, not a second reading of the config.
package explain

package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"github.com/signgate/signgate/proxy"
)

// bareMain is `loadtest bare`: a Go reverse proxy served by a plain http.Server, with
// none of signgate's middleware and no access log. Two kinds:
//
//   - stdlib: issue 8's "bare httputil.ReverseProxy", what a Go developer writes
//     first: httputil.NewSingleHostReverseProxy on http.DefaultTransport, defaults
//     throughout (two idle connections per upstream host, no buffer pool);
//   - pool: a proxy.Pool alone (httputil.ReverseProxy with signgate's tuned
//     Transport, buffer pool, rewrite and error mapping), so the table shows what
//     signgate's middleware costs on top of its own proxy.
func bareMain(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := fs.String("upstream", "", "upstream base URL, http://host:port")
	admin := fs.String("admin", "", "address serving /metrics (go_memstats_mallocs_total)")
	kind := fs.String("kind", "stdlib", "stdlib (httputil defaults) or pool (proxy.Pool)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch *kind {
	case "stdlib":
		u, err := url.Parse(*upstream)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bare:", err)
			return 1
		}
		return serveUntilSignal(&http.Server{Handler: httputil.NewSingleHostReverseProxy(u), ReadHeaderTimeout: 10 * time.Second}, *listen, *admin)
	case "pool":
	default:
		fmt.Fprintf(os.Stderr, "bare: -kind %q: want stdlib or pool\n", *kind)
		return 2
	}
	pool, err := proxy.New(proxy.Options{
		Name: "bare", Targets: []string{*upstream}, DialTimeout: 3 * time.Second,
		ResponseTimeout: 15 * time.Second, Transport: proxy.NewTransport(proxy.TransportOptions{}),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	return serveUntilSignal(&http.Server{Handler: pool, ReadHeaderTimeout: 10 * time.Second}, *listen, *admin)
}

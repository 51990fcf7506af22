package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/signgate/signgate/proxy"
)

// bareMain is `loadtest bare`: the baseline, a proxy.Pool (httputil.ReverseProxy with
// the gateway's tuned Transport, rewrite and error mapping) served by a plain
// http.Server, with none of signgate's middleware and no access log.
func bareMain(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := fs.String("upstream", "", "upstream base URL, http://host:port")
	admin := fs.String("admin", "", "address serving /metrics (go_memstats_mallocs_total)")
	if err := fs.Parse(args); err != nil {
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

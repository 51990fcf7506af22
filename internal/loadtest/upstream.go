package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// payload is a typical small JSON answer of the backend (a service list entry).
var payload = []byte(`{"code":0,"data":[{"id":1,"name":"日常保洁","price":"50.00","unit":"hour"},{"id":2,"name":"空调清洗","price":"120.00","unit":"unit"}]}`)

// otlpTracesPath takes the spans of the tracing rows (see upstreamMain).
const otlpTracesPath = "/v1/traces"

// ordersPath serves orders; every other path serves payload.
const ordersPath = "/api/orders"

// orders is a provider's order list: 15 orders with owners' phones in fields and in
// free text, about 4 KB.
var orders = func() []byte {
	var b strings.Builder
	b.WriteString(`{"code":0,"data":[`)
	for i := range 15 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"orderId":"20261123%05d","service":"日常保洁","status":2,"price":"50.00",`+
			`"owner":{"name":"张三","phone":"1381234%04d","address":"上海市浦东新区XX路%d号"},`+
			`"remark":"到了请打 +86 139-1234-%04d 谢谢","staff":[{"name":"王阿姨","userPhone":"1860000%04d"}]}`, i, i, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}()

// upstreamMain is `loadtest upstream`: the backend every row ends at, a plain net/http
// server, with TLS when -cert and -key are given. -admin serves the allocation counter
// the report reads.
func upstreamMain(args []string) int {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	cert := fs.String("cert", "", "PEM certificate: serve TLS")
	key := fs.String("key", "", "PEM private key for -cert")
	admin := fs.String("admin", "", "address serving /metrics (go_memstats_mallocs_total)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == otlpTracesPath {
			// The tracing rows' collector: take the OTLP/HTTP export and answer
			// success (an empty ExportTraceServiceResponse), as a collector would.
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-protobuf")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == ordersPath && r.Method == http.MethodGet {
			_, _ = w.Write(orders)
			return
		}
		_, _ = w.Write(payload)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if *cert != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			return 1
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	}
	return serveUntilSignal(srv, *listen, *admin)
}

// serveUntilSignal serves srv on listen (TLS when srv.TLSConfig is set), and the
// allocation counter and a CPU profile on admin, until SIGTERM or SIGINT.
func serveUntilSignal(srv *http.Server, listen, admin string) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if admin != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(w, "go_memstats_mallocs_total %d\n", ms.Mallocs)
		})
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		adm := &http.Server{Addr: admin, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- adm.ListenAndServe() }()
		defer adm.Close()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, err)
		return 1
	case <-sig:
		_ = srv.Close()
		return 0
	}
}

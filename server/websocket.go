package server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/reqinfo"
)

// WebSocket tunnels. A route with websocket: true lets a handshake through every
// check a request on that route passes (API key, signature, roles, rate limits);
// httputil.ReverseProxy then splices the caller to the upstream once it answers 101.
// What flows through the tunnel afterwards is not routed, authorised, rate limited or
// masked, which is why only routes that opt in take upgrades, and why a caller whose
// answers must be masked cannot open one.

// isWebSocketUpgrade reports whether r is a WebSocket handshake (RFC 6455 §4.1): an
// HTTP/1.1 GET with Connection: upgrade and Upgrade: websocket and no other protocol.
// HTTP/2 has no Connection header; its WebSocket handshake (RFC 8441) is not served.
func isWebSocketUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return false
	}
	if !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		return false
	}
	up := r.Header["Upgrade"]
	return len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket")
}

var (
	errNoWebSocket  = apierror.BadRequest("this route does not take WebSocket upgrades (routes[].websocket)")
	errMaskedTunnel = apierror.New(http.StatusForbidden, "forbidden",
		"WebSocket messages cannot be masked, and this client's role has mask: true")
	// errShuttingDown answers a handshake that lost the race with shutdown: to the
	// caller the route's upstream is out of reach through this instance.
	errShuttingDown = apierror.New(http.StatusServiceUnavailable, "upstream_unavailable",
		"this gateway instance is shutting down; connect again")
)

// refuseUpgrade answers a WebSocket handshake on a route without websocket: true;
// every other request goes on.
func refuseUpgrade(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header["Upgrade"] != nil && isWebSocketUpgrade(r) {
			apierror.Write(w, r, errNoWebSocket)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tunnel runs a WebSocket handshake on a websocket: true route, once the caller has
// passed the route's checks: a client whose role masks answers is refused (frames
// are not masked); otherwise the upgraded connection is registered with ts, so
// shutdown can close it, and closed after idle without a byte either way. Other
// requests go on untouched.
func tunnel(ts *tunnels, idle time.Duration) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header["Upgrade"] == nil || !isWebSocketUpgrade(r) {
				next.ServeHTTP(w, r)
				return
			}
			if c := clientFrom(r.Context()); c != nil && c.Mask {
				apierror.Write(w, r, errMaskedTunnel)
				return
			}
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			done, ok := ts.add(cancel)
			if !ok {
				apierror.Write(w, r, errShuttingDown)
				return
			}
			defer done()
			route := reqinfo.Of(r).Route
			next.ServeHTTP(&tunnelWriter{ResponseWriter: w, idle: idle, ts: ts, route: route}, r.WithContext(ctx))
		})
	}
}

// tunnelWriter hands ReverseProxy an upgraded connection without the server's read
// and write deadlines, which were set for one request, and with an idle timeout.
type tunnelWriter struct {
	http.ResponseWriter
	idle  time.Duration
	ts    *tunnels
	route string
}

func (tw *tunnelWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }

func (tw *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(tw.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	tw.ts.opened(tw.route)
	tc := &idleConn{Conn: conn, idle: tw.idle, onClose: func() { tw.ts.closed(tw.route) }}
	tc.touch()
	// ReverseProxy writes the 101 answer through brw and then copies between the
	// connections it was handed: the caller's side is tc from here on.
	return tc, brw, nil
}

// idleConn closes a tunnel that went idle without a byte either way: each read or
// write moves both deadlines idle ahead (nginx's proxy_read_timeout does the same
// for its WebSocket tunnels). A write stuck behind a caller who stopped reading
// ends at the same deadline.
type idleConn struct {
	net.Conn
	idle    time.Duration
	once    sync.Once
	onClose func()
}

func (c *idleConn) touch() {
	if c.idle > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.touch()
	return c.Conn.Write(p)
}

func (c *idleConn) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

// tunnels are the WebSocket tunnels open on this server, across config reloads (a
// reload leaves them be). http.Server.Shutdown neither closes nor waits for
// hijacked connections, so shutdown closes them here.
type tunnels struct {
	mu       sync.Mutex
	cancels  map[*context.CancelFunc]struct{}
	stopping bool
	wg       sync.WaitGroup
	gauge    *prometheus.GaugeVec
}

func newTunnels(gauge *prometheus.GaugeVec) *tunnels {
	return &tunnels{cancels: map[*context.CancelFunc]struct{}{}, gauge: gauge}
}

// add registers a handshake about to be proxied; cancel ends it. It returns the
// function to call when the tunnel is over, or false once shutdown has begun.
func (ts *tunnels) add(cancel context.CancelFunc) (done func(), ok bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.stopping {
		return nil, false
	}
	key := &cancel
	ts.cancels[key] = struct{}{}
	ts.wg.Add(1)
	return func() {
		ts.mu.Lock()
		delete(ts.cancels, key)
		ts.mu.Unlock()
		ts.wg.Done()
	}, true
}

func (ts *tunnels) opened(route string) { ts.gauge.WithLabelValues(route).Inc() }
func (ts *tunnels) closed(route string) { ts.gauge.WithLabelValues(route).Dec() }

// closeAll refuses new handshakes and ends every open tunnel: the upstream side is
// closed, then the caller's; WebSocket clients reconnect, through the load balancer,
// to an instance that is not going away. It waits for them until ctx is done.
func (ts *tunnels) closeAll(ctx context.Context) error {
	ts.mu.Lock()
	ts.stopping = true
	for cancel := range ts.cancels {
		(*cancel)()
	}
	ts.mu.Unlock()
	done := make(chan struct{})
	go func() {
		ts.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

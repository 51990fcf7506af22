package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxOrders bounds the in-memory store, so a long-running demo cannot grow forever.
const maxOrders = 10000

// maxBody bounds a request body; the largest real one is a few hundred bytes.
const maxBody = 64 << 10

// chinaTime is GMT+8, the time zone the owners and providers live in.
var chinaTime = time.FixedZone("CST", 8*60*60)

// Options configures a Backend. The zero value is ready to use.
type Options struct {
	Now    func() time.Time // the clock that decides "in the future"; default time.Now
	Logger *slog.Logger     // default: discard
}

// Backend is the order API, in memory. It is an http.Handler, safe for concurrent use.
type Backend struct {
	now  func() time.Time
	log  *slog.Logger
	mux  *http.ServeMux
	mu   sync.Mutex
	last int64 // the last id given out
	byID map[int64]*Order
}

var _ http.Handler = (*Backend)(nil)

// New returns an empty Backend.
func New(o Options) *Backend {
	b := &Backend{now: o.Now, log: o.Logger, mux: http.NewServeMux(), byID: make(map[int64]*Order)}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.mux.Handle("GET /healthz", b.handle(b.health))
	b.mux.Handle("GET /api/services", b.handle(b.listServices))
	b.mux.Handle("POST /api/orders", b.handle(b.createOrder))
	b.mux.Handle("GET /api/orders/{id}", b.handle(b.getOrder))
	b.mux.Handle("POST /api/orders/{id}/staff", b.handle(b.assignStaff))
	b.mux.Handle("PUT /api/orders/{id}/status", b.handle(b.setStatus))
	b.mux.Handle("/", b.handle(func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no endpoint %s %s", r.Method, r.URL.Path)
	}))
	return b
}

// ServeHTTP answers one call of the order API.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

func (b *Backend) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (b *Backend) listServices(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"services": services})
	return nil
}

func (b *Backend) createOrder(w http.ResponseWriter, r *http.Request) error {
	var req bookingRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	now := b.now().In(chinaTime).Truncate(time.Second)
	o, err := req.validate(now)
	if err != nil {
		return err
	}
	o.Status = StatusPending
	o.History = []StatusChange{{Status: StatusPending, At: now}}
	o.CreatedAt = now
	o.Owner = r.Header.Get("X-WX-OpenID")

	b.mu.Lock()
	if len(b.byID) >= maxOrders {
		b.mu.Unlock()
		return errFull
	}
	b.last++
	o.ID = b.last
	b.byID[o.ID] = &o
	out := o.clone()
	b.mu.Unlock()

	b.log.InfoContext(r.Context(), "order booked", "order", out.ID, "service_type", out.ServiceType,
		"client", r.Header.Get("X-Signgate-Client"), "request_id", r.Header.Get("X-Request-Id"))
	w.Header().Set("Location", fmt.Sprintf("/api/orders/%d", out.ID))
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// getOrder answers one order. An owner (a request with X-WX-OpenID, which the
// gateway sets from her session and removes from anyone else's request) sees only
// her own orders: another's answers exactly as an order that does not exist, so ids
// cannot be probed. Providers and the ops console carry no openid and see any order.
func (b *Backend) getOrder(w http.ResponseWriter, r *http.Request) error {
	caller := r.Header.Get("X-WX-OpenID")
	return b.withOrder(w, r, func(o *Order) error {
		if caller != "" && o.Owner != caller {
			return notFound("no order %d", o.ID)
		}
		return nil
	})
}

func (b *Backend) assignStaff(w http.ResponseWriter, r *http.Request) error {
	var s Staff
	if err := decode(w, r, &s); err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	return b.withOrder(w, r, func(o *Order) error { return o.assign(s) })
}

func (b *Backend) setStatus(w http.ResponseWriter, r *http.Request) error {
	var req statusRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	now := b.now().In(chinaTime).Truncate(time.Second)
	return b.withOrder(w, r, func(o *Order) error { return o.moveTo(req.Status, now) })
}

// withOrder runs change on the order named by the path's {id} under the lock and
// answers with the order as it then is.
func (b *Backend) withOrder(w http.ResponseWriter, r *http.Request, change func(*Order) error) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return notFound("no order %q: order ids are positive integers", r.PathValue("id"))
	}
	b.mu.Lock()
	o, ok := b.byID[id]
	if !ok {
		b.mu.Unlock()
		return notFound("no order %d", id)
	}
	if err := change(o); err != nil {
		b.mu.Unlock()
		return err
	}
	out := o.clone()
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decode reads one JSON object into v, refusing unknown fields, so a typo in a
// field name is a clear 400 rather than a value silently left empty.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		return badRequest("the body must be a single JSON object")
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return badRequest("the body is empty: send a JSON object")
	case errors.As(err, &tooLarge):
		return badRequest("the body is larger than %d bytes", maxBody)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the body is not valid JSON")
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest("%s must be a JSON %s", typ.Field, jsonKind(typ.Type.String()))
	case errors.As(err, &typ):
		return badRequest("the body must be a JSON object")
	default:
		// DisallowUnknownFields: `json: unknown field "nmae"`.
		return badRequest("%s", trimJSONPrefix(err.Error()))
	}
}

func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "string"
	case "[]string":
		return "array of strings"
	}
	return "value of another type"
}

func trimJSONPrefix(s string) string {
	const p = "json: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// apiError is an answer other than success: its status, a stable code callers can
// branch on, and a message a person can act on.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

func invalidTransition(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_transition", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf(format, args...)}
}

var errFull = &apiError{http.StatusServiceUnavailable, "unavailable",
	fmt.Sprintf("this example backend keeps at most %d orders in memory; restart it", maxOrders)}

// handler is an endpoint: it writes a success itself and returns any failure, which
// one place, writeError, turns into the JSON envelope.
type handler func(w http.ResponseWriter, r *http.Request) error

func (b *Backend) handle(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			b.writeError(w, r, err)
		}
	})
}

// writeError answers with signgate's error envelope. An error that is not an
// *apiError is a bug: it is logged, and the caller gets 500 without its text.
func (b *Backend) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		b.log.ErrorContext(r.Context(), "internal error", "err", err, "path", r.URL.Path)
		e = &apiError{http.StatusInternalServerError, "internal", "internal error"}
	}
	writeJSON(w, e.status, struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}{e.code, e.msg, r.Header.Get("X-Request-Id")})
}

// writeJSON answers with v, indented so that a person reading a curl answer can.
func writeJSON(w http.ResponseWriter, status int, v any) {
	// v is always one of this package's types, of strings, numbers and times, which
	// cannot fail to encode.
	body, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

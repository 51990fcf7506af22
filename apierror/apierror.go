// Package apierror is the one error type the gateway answers with and the one writer
// of DESIGN.md's JSON envelope: {"code":…,"message":…,"request_id":…}, with
// "errors":[{"in":…,"at":…,"message":…}] added when a request breaks the interface
// spec in one or more places.
package apierror

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/signgate/signgate/reqinfo"
)

// Error is an error that knows the HTTP status and stable code it answers with.
type Error struct {
	Status  int
	Code    string
	Message string
	// Header holds extra response headers (Retry-After, RateLimit-*).
	Header http.Header
	// Errors, when set, are the envelope's "errors": every problem found with the
	// request, each where it is and what is wrong (a request the interface spec
	// refuses).
	Errors []FieldError
}

// FieldError is one problem with a request: the part it is in (path, query, header
// or body), where in that part (a JSON Pointer such as "/phone" into a body, a
// parameter's name), and what is wrong.
type FieldError struct {
	In      string `json:"in"`
	At      string `json:"at"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an Error.
func New(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// Common errors. They are values, so callers compare with errors.Is or read Code.
var (
	ErrMissingCredentials = New(http.StatusUnauthorized, "missing_credentials", "an API key is required (X-Api-Key)")
	ErrUnknownKey         = New(http.StatusUnauthorized, "unknown_key", "the API key is not known")
	ErrForbidden          = New(http.StatusForbidden, "forbidden", "this client may not call this route")
	ErrNoRoute            = New(http.StatusNotFound, "no_route", "no route matches this method and path")
	ErrBodyTooLarge       = New(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than the gateway accepts")
	ErrInternal           = New(http.StatusInternalServerError, "internal", "internal error")
)

// BadRequest returns a 400 bad_request error with msg.
func BadRequest(msg string) *Error { return New(http.StatusBadRequest, "bad_request", msg) }

type envelope struct {
	Code      string       `json:"code"`
	Message   string       `json:"message"`
	RequestID string       `json:"request_id"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// Write answers r with err as the JSON envelope. An error that is not an *Error is a
// bug somewhere below and answers 500 internal without its text.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = ErrInternal
	}
	info := reqinfo.Of(r)
	info.ErrCode = e.Code
	body, _ := json.Marshal(envelope{Code: e.Code, Message: e.Message, RequestID: info.RequestID, Errors: e.Errors})
	body = append(body, '\n')
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

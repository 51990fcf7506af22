package server

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/apierror"
)

// conditionalHeaders are the request headers that make an answer depend on the
// representation's bytes or validators (RFC 9110 section 13, and Range).
var conditionalHeaders = [...]string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"}

// conditions are a masked caller's conditional headers, kept back from the upstream
// and decided by the gateway on the masked bytes.
type conditions struct{ header http.Header }

func hasConditions(h http.Header) bool {
	for _, k := range conditionalHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// takeConditions moves r's conditional headers out of r into the conditions the
// gateway decides.
func takeConditions(r *http.Request) *conditions {
	c := &conditions{header: make(http.Header, 2)}
	for _, k := range conditionalHeaders {
		if v, ok := r.Header[k]; ok {
			c.header[k] = v
			delete(r.Header, k)
		}
	}
	return c
}

// Answers the gateway gives for conditions it decides.
var (
	errPreconditionFailed = apierror.New(http.StatusPreconditionFailed, "precondition_failed",
		"the precondition (If-Match or If-Unmodified-Since) does not hold for the representation")
	errRangeNotSatisfiable = apierror.New(http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable",
		"the requested range does not overlap the representation")
)

// answerConditional decides c on resp, a 200 answer whose body is body (the masked
// bytes, in their Content-Encoding), with net/http's own implementation of RFC 9110
// preconditions and ranges (http.ServeContent), and rewrites resp into what it
// answers: 304, 412, 206 (one range or multipart/byteranges) or 416, or leaves it
// a 200. It reports the body to send.
func answerConditional(resp *http.Response, c *conditions, body []byte) []byte {
	rec := &capturingWriter{header: resp.Header}
	// Decided as for GET, also for a HEAD: the body is what a GET would get, and
	// net/http sends none for a HEAD, while its headers (Content-Length) stay GET's.
	req := &http.Request{Method: http.MethodGet, Header: c.header}
	var modTime time.Time
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		modTime, _ = http.ParseTime(lm)
	}
	if _, typed := resp.Header["Content-Type"]; !typed {
		// ServeContent would sniff a type the upstream did not claim.
		resp.Header["Content-Type"] = nil
	}
	http.ServeContent(rec, req, "", modTime, bytes.NewReader(body))
	switch rec.statusOr200() {
	case http.StatusPreconditionFailed:
		return envelopeResponse(resp, errPreconditionFailed)
	case http.StatusRequestedRangeNotSatisfiable:
		return envelopeResponse(resp, errRangeNotSatisfiable)
	}
	status := rec.statusOr200()
	resp.StatusCode = status
	resp.Status = strconv.Itoa(status) + " " + http.StatusText(status)
	out := rec.body.Bytes()
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/byteranges; boundary=") {
		out = letterBoundary(resp.Header, ct, out)
	}
	return out
}

// letterBoundary rewrites the random hex boundary of a multipart/byteranges answer
// in letters: a run of eleven digits in it reads as a phone number to any scanner.
func letterBoundary(h http.Header, ct string, body []byte) []byte {
	old := ct[len("multipart/byteranges; boundary="):]
	nb := []byte(old)
	for i, c := range nb {
		if '0' <= c && c <= '9' {
			nb[i] = 'g' + c - '0' // g-p, beside hex's a-f
		}
	}
	h.Set("Content-Type", "multipart/byteranges; boundary="+string(nb))
	return bytes.ReplaceAll(body, []byte("--"+old), append([]byte("--"), nb...))
}

// envelopeResponse turns resp into the gateway's JSON envelope for e.
func envelopeResponse(resp *http.Response, e *apierror.Error) []byte {
	rec := &capturingWriter{header: make(http.Header)}
	apierror.Write(rec, resp.Request, e)
	for k := range resp.Header {
		delete(resp.Header, k)
	}
	for k, v := range rec.header {
		resp.Header[k] = v
	}
	resp.StatusCode = e.Status
	resp.Status = strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	return rec.body.Bytes()
}

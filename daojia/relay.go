package daojia

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/reqinfo"
)

// The relay's own answers. DESIGN.md's error table has no 405, so a wrong method is a
// malformed request, with Allow saying what would work.
var (
	errRelayMethod = &apierror.Error{
		Status: http.StatusBadRequest, Code: "bad_request", Message: "the 58到家 relay takes POST",
		Header: http.Header{"Allow": {http.MethodPost}},
	}
	errRelayPath    = apierror.BadRequest("the 58到家 path must be segments of A-Z a-z 0-9 _ - after the relay prefix")
	errRelayTimeout = apierror.New(http.StatusGatewayTimeout, "upstream_timeout", "58到家 did not answer in time")
	errRelayFailed  = apierror.New(http.StatusBadGateway, "upstream_error", "the call to 58到家 failed")
	errRelayToken   = apierror.New(http.StatusBadGateway, "upstream_error", "58到家 did not issue an accessToken")
	errRelayGarbage = apierror.New(http.StatusBadGateway, "upstream_error", "58到家 answered something that is not JSON")
)

// Relay returns the handler of a relay route: POST {prefix}<path> with a JSON object
// body becomes Call(<path>, that object), and 58到家's answer goes back to the caller
// as it came (status, Content-Type, body) when it is JSON; anything else is 502
// upstream_error. The server's body limit is expected to be
// in place already.
func (c *Client) Relay(prefix string) http.Handler {
	return &relay{c: c, prefix: prefix}
}

var _ http.Handler = (*relay)(nil)

type relay struct {
	c      *Client
	prefix string
}

func (h *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		apierror.Write(w, r, errRelayMethod)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok {
		apierror.Write(w, r, apierror.ErrNoRoute) // routed here by mistake
		return
	}
	if h.c.guard.isTokenEndpoint(path) {
		// The accessToken is the gateway's to hold: relaying the token endpoint
		// would hand it to any caller allowed on the relay. Checked before the
		// path's form, so every spelling of that endpoint gets the same answer.
		apierror.Write(w, r, apierror.ErrNoRoute)
		return
	}
	if !validPath(path) {
		apierror.Write(w, r, errRelayPath)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			apierror.Write(w, r, apierror.ErrBodyTooLarge)
		} else {
			apierror.Write(w, r, apierror.BadRequest("could not read the request body"))
		}
		return
	}
	var daojiaJSON bytes.Buffer
	daojiaJSON.Grow(len(body))
	if err := compactObject(&daojiaJSON, body); err != nil {
		apierror.Write(w, r, apierror.BadRequest("body must be a JSON object: "+err.Error()))
		return
	}

	resp, err := h.c.send(r.Context(), path, daojiaJSON.Bytes())
	if err != nil {
		h.fail(w, r, path, err)
		return
	}
	if !json.Valid(resp.Body) {
		// An HTML error page from 58到家's edge, a text notice, an empty or cut
		// body: no caller can read it as 58到家's {code, message, data}, and a 200
		// among them would pass for success. JSON of any shape is 58到家's own
		// answer and goes on as it came.
		h.c.log.LogAttrs(r.Context(), slog.LevelWarn, "58到家 answered something that is not JSON",
			slog.String("path", path), slog.String("request_id", reqinfo.Of(r).RequestID),
			slog.Int("status", resp.Status), slog.String("content_type", resp.Header.Get("Content-Type")),
			slog.Int("bytes", len(resp.Body)), slog.String("code", errRelayGarbage.Code))
		apierror.Write(w, r, errRelayGarbage)
		return
	}
	hdr := w.Header()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		hdr.Set("Content-Type", ct)
	}
	hdr.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// fail answers a relay call that got no answer from 58到家. The log line has the
// error's text, which names 58到家's URL and message but never a token or the secret:
// those travel in request bodies, which are never logged.
func (h *relay) fail(w http.ResponseWriter, r *http.Request, path string, err error) {
	attrs := []slog.Attr{
		slog.String("path", path),
		slog.String("request_id", reqinfo.Of(r).RequestID),
		slog.Any("error", err),
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The caller hung up: there is no one to answer, and 58到家 did nothing wrong.
		h.c.log.LogAttrs(r.Context(), slog.LevelDebug, "caller left before 58到家 answered", attrs...)
		return
	}
	e := relayError(err)
	h.c.log.LogAttrs(r.Context(), slog.LevelWarn, "58到家 relay call failed", append(attrs, slog.String("code", e.Code))...)
	apierror.Write(w, r, e)
}

// relayError maps a Call error to the caller's answer: any timeout is 504, as for the
// gateway's upstreams; 58到家 refusing a token or failing otherwise is 502.
func relayError(err error) *apierror.Error {
	var ne net.Error
	var te *TokenError
	switch {
	case errors.Is(err, errBadInput):
		return apierror.BadRequest(err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errRelayTimeout
	case errors.As(err, &te):
		return errRelayToken
	default:
		return errRelayFailed
	}
}

package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/secret"
)

// bufferBody reads the whole request body, already bounded by limitBody, so a
// signature can cover it, and puts an identical replayable copy back for the
// upstream (GetBody also lets the proxy retry the request on another target).
func bufferBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierror.ErrBodyTooLarge
		}
		return nil, apierror.BadRequest("the request body could not be read")
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	// The body is whole now: it goes upstream with its length, not chunked.
	r.TransferEncoding = nil
	return body, nil
}

// verifyClientSignature checks the signature scheme the authenticated client is
// configured with. A route with verify: hmac-sha256 takes signed requests only, so a
// client without a scheme is refused there.
func verifyClientSignature(v *auth.Verifier, routeVerify string, w http.ResponseWriter, r *http.Request, c *auth.Client) bool {
	scheme := c.Signature
	if scheme == "" || scheme == "none" {
		if routeVerify == "hmac-sha256" {
			apierror.Write(w, r, apierror.New(http.StatusUnauthorized, "invalid_signature", "this route takes signed requests only"))
			return false
		}
		return true
	}
	body, err := bufferBody(r)
	if err == nil {
		var rp auth.Replay
		switch scheme {
		case "hmac-sha256":
			rp, err = v.CheckHMAC(r, body, c.ID, c.Secret)
		case "daojia-md5":
			rp, err = v.CheckDaojia(body, r.Header.Get("Content-Type"), c.ID, "", c.Secret)
		default:
			err = apierror.ErrInternal
		}
		if err == nil {
			err = remember(v, r, rp)
		}
	}
	if err != nil {
		apierror.Write(w, r, err)
		return false
	}
	return true
}

// remember records the replay check of a request whose signature matched: in the
// request's batch of limit decisions when it has one (see limitStages), which
// decides it with the client's limits in one round trip; in the nonce store now
// otherwise.
func remember(v *auth.Verifier, r *http.Request, rp auth.Replay) error {
	if p := pendingFrom(r.Context()); p != nil && p.state == pendingOpen {
		p.addReplay(v, rp)
		return nil
	}
	return v.Remember(r.Context(), rp)
}

// verifyDaojiaCallback guards the routes 58到家 calls back on: no API key, the
// platform's MD5 signature made with our service secret, and its serviceKey ours.
// The signature covers the body only, so a callback with a query string is refused:
// servlets and many frameworks read query parameters before (and over) the body's,
// and the upstream must act only on what 58到家 signed.
func verifyDaojiaCallback(v *auth.Verifier, serviceKey string, serviceSecret secret.Secret) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RawQuery != "" || r.URL.ForceQuery {
				apierror.Write(w, r, errCallbackQuery)
				return
			}
			body, err := bufferBody(r)
			var rp auth.Replay
			if err == nil {
				rp, err = v.CheckDaojia(body, r.Header.Get("Content-Type"), "daojia", serviceKey, serviceSecret)
			}
			if err == nil {
				err = remember(v, r, rp)
			}
			if err != nil {
				apierror.Write(w, r, err)
				return
			}
			reqinfo.Of(r).Client = "daojia"
			next.ServeHTTP(w, r)
		})
	}
}

// errCallbackQuery answers a 58到家 callback that carries a query string.
var errCallbackQuery = apierror.BadRequest("a 58到家 callback takes no query string: its parameters travel in the signed body, and the signature does not cover a query")

package jwtauth

import (
	"fmt"
	"io"
	"net/http"
)

// errJWKSTooLarge ends reading a JWKS response past MaxJWKSBytes. jwkset decodes the
// body with a json.Decoder, which returns a reader's error as it is, so this text
// reaches the log and ErrUnavailable.
var errJWKSTooLarge = fmt.Errorf("jwtauth: JWKS response larger than %d bytes", MaxJWKSBytes)

// limitBody is a RoundTripper that caps every response body at max bytes. jwkset has
// no size option and reads the body it is given, so the cap lives in the transport.
type limitBody struct {
	base http.RoundTripper
	max  int64
}

func (t limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

// cappedBody reads up to left bytes and fails, rather than ends, on the byte after:
// a body cut short would look like a truncated JSON document, not like the limit.
type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, errJWKSTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

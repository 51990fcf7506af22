package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/secret"
)

// The hmac-sha256 request headers (DESIGN.md "Inbound signature schemes").
const (
	headerTimestamp = "X-Timestamp"
	headerNonce     = "X-Nonce"
	headerSignature = "X-Signature"
)

// Malformed-header answers; the messages tell a partner exactly what to fix.
var (
	errBadTimestamp = apierror.BadRequest("X-Timestamp must be Unix seconds")
	errBadNonce     = apierror.BadRequest("X-Nonce must be 8-64 characters of A-Z a-z 0-9 _ -")
	errBadSignature = apierror.BadRequest("X-Signature must be 64 lower-case hex characters")
)

// VerifyHMAC checks an hmac-sha256 request from clientID signed with secret. body is
// the whole request body, already read by the caller (under max_body_bytes); r
// supplies the method, r.URL.EscapedPath() (the path as sent), r.URL.RawQuery and the
// X-Timestamp, X-Nonce and X-Signature headers. It returns nil or an *apierror.Error.
//
// Checks run cheapest and least stateful first: headers present (401
// missing_credentials), well formed (400 bad_request), timestamp within Skew (401
// timestamp_skew), signature (401 invalid_signature), and only then the nonce (401
// replayed, 503 state_unavailable), so a request with a bad signature never records
// its nonce and cannot be used to burn a genuine caller's.
func (v *Verifier) VerifyHMAC(ctx context.Context, r *http.Request, body []byte, clientID string, secret secret.Secret) error {
	rp, err := v.CheckHMAC(r, body, clientID, secret)
	if err != nil {
		return err
	}
	return v.Remember(ctx, rp)
}

// CheckHMAC is VerifyHMAC up to the replay check: every check but the nonce store's,
// in the same order. It returns the Replay the caller must record before letting the
// request through (Remember, or Recorded).
func (v *Verifier) CheckHMAC(r *http.Request, body []byte, clientID string, secret secret.Secret) (Replay, error) {
	if secret.IsZero() {
		return Replay{}, errNoSecret
	}
	ts, err := signedHeader(r.Header, headerTimestamp)
	if err != nil {
		return Replay{}, err
	}
	nonce, err := signedHeader(r.Header, headerNonce)
	if err != nil {
		return Replay{}, err
	}
	sig, err := signedHeader(r.Header, headerSignature)
	if err != nil {
		return Replay{}, err
	}
	unix, ok := parseUnixSeconds(ts)
	if !ok {
		return Replay{}, errBadTimestamp
	}
	if !validNonce(nonce) {
		return Replay{}, errBadNonce
	}
	var given [sha256.Size]byte
	if !decodeLowerHex(given[:], sig) {
		return Replay{}, errBadSignature
	}
	query, err := CanonicalQuery(r.URL.RawQuery)
	if err != nil {
		return Replay{}, apierror.BadRequest(err.Error())
	}
	if err := v.checkSkew(time.Unix(unix, 0)); err != nil {
		return Replay{}, err
	}

	path := r.URL.EscapedPath()
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write(appendStringToSign(make([]byte, 0, stringToSignLen(r.Method, path, query, ts, nonce)),
		r.Method, path, query, ts, nonce, body))
	if !hmac.Equal(mac.Sum(nil), given[:]) {
		return Replay{}, errInvalidSignature
	}
	// The key is per client: two partners picking the same nonce do not collide.
	return v.replay("nonce", clientID, nonce, "nonce"), nil
}

// signedHeader returns the one value of a required signature header. An empty value
// counts as absent; a header sent twice is refused, since which copy the sender
// signed would be a guess.
func signedHeader(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0 || len(vs) == 1 && vs[0] == "":
		return "", apierror.New(http.StatusUnauthorized, "missing_credentials",
			"the "+name+" header is required: this client signs its requests with hmac-sha256")
	case len(vs) > 1:
		return "", apierror.BadRequest(name + " must be sent once")
	}
	return vs[0], nil
}

// parseUnixSeconds accepts decimal digits only: no sign, no fraction, no spaces. The
// header's text is signed as sent, so anything looser would only add ways to write
// the same time.
func parseUnixSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func validNonce(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decodeLowerHex decodes s into dst when s is exactly 2×len(dst) lower-case hex
// digits. Decoding the header instead of encoding the expected MAC lets the constant-
// time comparison run over raw bytes with no allocation.
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, lo := s[2*i], s[2*i+1]
		if !isLowerHex(hi) || !isLowerHex(lo) {
			return false
		}
		dst[i] = unhex(hi)<<4 | unhex(lo)
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// StringToSign returns DESIGN.md's hmac-sha256 string to sign:
// METHOD "\n" PATH "\n" CANONICAL_QUERY "\n" TIMESTAMP "\n" NONCE "\n" hex(sha256(BODY)).
// escapedPath is the path as sent (r.URL.EscapedPath()), canonicalQuery comes from
// CanonicalQuery, and timestamp is the X-Timestamp header's text exactly.
func StringToSign(method, escapedPath, canonicalQuery, timestamp, nonce string, body []byte) string {
	n := stringToSignLen(method, escapedPath, canonicalQuery, timestamp, nonce)
	return string(appendStringToSign(make([]byte, 0, n), method, escapedPath, canonicalQuery, timestamp, nonce, body))
}

func stringToSignLen(method, escapedPath, canonicalQuery, timestamp, nonce string) int {
	return len(method) + len(escapedPath) + len(canonicalQuery) + len(timestamp) + len(nonce) + 5 + 2*sha256.Size
}

func appendStringToSign(dst []byte, method, escapedPath, canonicalQuery, timestamp, nonce string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, '\n')
	dst = append(dst, escapedPath...)
	dst = append(dst, '\n')
	dst = append(dst, canonicalQuery...)
	dst = append(dst, '\n')
	dst = append(dst, timestamp...)
	dst = append(dst, '\n')
	dst = append(dst, nonce...)
	dst = append(dst, '\n')
	sum := sha256.Sum256(body)
	return hex.AppendEncode(dst, sum[:])
}

// SignHMAC returns hex(hmac_sha256(secret, stringToSign)) in lower case, the
// X-Signature value.
func SignHMAC(secret []byte, stringToSign string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(stringToSign))
	return hex.EncodeToString(mac.Sum(nil))
}

// SignRequest returns the X-Timestamp, X-Nonce and X-Signature headers a partner
// sends with an hmac-sha256 request, for `signgate sign` and tests. pathAndQuery is
// the request target as it goes on the wire ("/api/orders/42?a=1"; a full URL is
// accepted and its host ignored); it is read with url.ParseRequestURI, as the
// gateway's HTTP server reads it, so the path signed is the one VerifyHMAC sees. An
// empty nonce is replaced by a random one.
func SignRequest(method, pathAndQuery string, body []byte, secret []byte, timestamp time.Time, nonce string) (headers map[string]string, err error) {
	if method == "" {
		return nil, errors.New("sign request: the method is empty")
	}
	if len(secret) == 0 {
		return nil, errors.New("sign request: the secret is empty")
	}
	u, err := url.ParseRequestURI(pathAndQuery)
	if err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	path := u.EscapedPath()
	if path == "" { // "https://host" and "https://host?x" are requested as "/"
		path = "/"
	}
	query, err := CanonicalQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	if nonce == "" {
		nonce = newNonce()
	} else if !validNonce(nonce) {
		return nil, fmt.Errorf("sign request: nonce %q is not 8-64 characters of A-Z a-z 0-9 _ -", nonce)
	}
	ts := strconv.FormatInt(timestamp.Unix(), 10)
	return map[string]string{
		headerTimestamp: ts,
		headerNonce:     nonce,
		headerSignature: SignHMAC(secret, StringToSign(method, path, query, ts, nonce, body)),
	}, nil
}

// newNonce returns 22 random characters of [A-Za-z0-9_-] (128 bits).
func newNonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

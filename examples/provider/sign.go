package provider

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sign adds the headers of signgate's hmac-sha256 scheme to req: X-Timestamp,
// X-Nonce and X-Signature (X-Api-Key is the caller's to set). body must be exactly the
// bytes req will send (nil for none); an empty nonce is replaced by a random one.
//
// The scheme, from signgate's DESIGN.md:
//
//	string_to_sign = METHOD "\n" PATH "\n" CANONICAL_QUERY "\n" TIMESTAMP "\n" NONCE "\n" hex(sha256(BODY))
//	X-Signature    = hex(hmac_sha256(secret, string_to_sign))
//
// It is written out plainly here so that a partner porting it to another language can
// follow it line by line.
func Sign(req *http.Request, body, secret []byte, now time.Time, nonce string) error {
	if len(secret) == 0 {
		return errors.New("sign: the secret is empty")
	}
	if nonce == "" {
		nonce = newNonce()
	}
	// TIMESTAMP: Unix seconds, as decimal digits. signgate refuses a request more
	// than 10 minutes (auth.timestamp_skew) from its clock: keep servers on NTP.
	timestamp := strconv.FormatInt(now.Unix(), 10)

	toSign, err := StringToSign(req.Method, req.URL.EscapedPath(), req.URL.RawQuery, timestamp, nonce, body)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(toSign))

	req.Header.Set("X-Timestamp", timestamp)
	req.Header.Set("X-Nonce", nonce)
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil))) // lower-case hex
	return nil
}

// StringToSign returns the string the hmac-sha256 signature is computed over. Log it
// (never the secret) when a signature does not match, and compare it with what
// `signgate sign` prints for the same request.
//
// escapedPath is the path as it goes on the wire, percent-escapes and all
// ("/api/orders/42"); rawQuery is the query as sent, without the '?'.
func StringToSign(method, escapedPath, rawQuery, timestamp, nonce string, body []byte) (string, error) {
	if escapedPath == "" {
		escapedPath = "/" // a request for "https://host" asks for "/"
	}
	query, err := CanonicalQuery(rawQuery)
	if err != nil {
		return "", err
	}
	bodyHash := sha256.Sum256(body) // of the empty string when there is no body
	return strings.Join([]string{
		method,
		escapedPath,
		query,
		timestamp,
		nonce,
		hex.EncodeToString(bodyHash[:]),
	}, "\n"), nil
}

// CanonicalQuery returns the query in signgate's canonical form: the parameters
// decoded (as any web framework decodes them: '+' is a space), sorted by name and
// then by value, each written name=value with every byte except A-Z a-z 0-9 - . _ ~
// percent-encoded in upper case (a space is %20), joined by '&'. It is "" when there
// is no query.
//
//	b=2&a=1&a=0&name=%E5%BC%A0+%E4%B8%89  →  a=0&a=1&b=2&name=%E5%BC%A0%20%E4%B8%89
func CanonicalQuery(rawQuery string) (string, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", err
	}
	type param struct{ name, value string }
	var params []param
	for name, vs := range values {
		for _, v := range vs {
			params = append(params, param{name, v})
		}
	}
	// Sorted by the decoded bytes, not by their encoded form.
	sort.Slice(params, func(i, j int) bool {
		if params[i].name != params[j].name {
			return params[i].name < params[j].name
		}
		return params[i].value < params[j].value
	})
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = escape(p.name) + "=" + escape(p.value)
	}
	return strings.Join(parts, "&"), nil
}

// escape percent-encodes every byte of s but RFC 3986's unreserved characters.
// url.QueryEscape differs only in writing a space as '+'; the rule is written out
// here so that it is easy to port.
func escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0F])
		}
	}
	return b.String()
}

// newNonce returns 32 random hex characters: signgate accepts 8 to 64 of
// [A-Za-z0-9_-], and refuses a nonce it has seen before (401 replayed).
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

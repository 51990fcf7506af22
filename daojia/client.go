package daojia

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/signgate/signgate/secret"
)

// Options configures a Client. Zero fields take the defaults named beside them.
type Options struct {
	BaseURL       string        // daojia.base_url, e.g. https://sandboxapi.daojia.com
	Version       string        // API version in paths; "v1"
	ServiceKey    string        // the partner's serviceKey
	ServiceSecret secret.Secret // the partner's serviceSecret; signs every call
	Timeout       time.Duration // bound on each call to 58到家; 10s
	TokenPath     string        // token endpoint, "{version}" substituted; "/api/{version}/token/getAccessToken"
	RefreshBefore time.Duration // a token is replaced this long before it expires; 5m
	DefaultTTL    time.Duration // token lifetime when 58到家 gives no expiresIn; 2h, kept within [MinTokenLifetime, MaxTokenLifetime]
	InvalidCodes  []string      // answer codes meaning "accessToken invalid"; ["2"]
	// Store is the state shared by all instances (Redis, or memory for one). Nil keeps
	// the token in this process only.
	Store  TokenStore
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil is time.Now
	// OnTokenFetch, when set, is told the outcome of every token request sent to 58到家.
	OnTokenFetch func(ok bool)
	// OnTokenExpiry, when set, is told when the token this instance holds stops
	// being accepted, each time it takes one into use (fetched, or shared by another
	// instance), and the zero time when it drops one 58到家 refused.
	OnTokenExpiry func(expiresAt time.Time)
	// Transport sends the calls; nil is the Client's own tuned *http.Transport.
	Transport http.RoundTripper
}

// Defaults of Options.
const (
	DefaultVersion       = "v1"
	DefaultTimeout       = 10 * time.Second
	DefaultTokenPath     = "/api/{version}/token/getAccessToken"
	DefaultRefreshBefore = 5 * time.Minute
	DefaultTokenTTL      = 2 * time.Hour
)

// maxAnswerBytes bounds what is read of one 58到家 answer: the relay holds it whole to
// read its code and hand it on, so an endless answer must not exhaust memory.
const maxAnswerBytes = 8 << 20

// Client calls the 58到家 open platform: it signs each call, adds the cached
// accessToken, and fetches a new token when 58到家 refuses the old one. It is safe
// for concurrent use.
type Client struct {
	serviceKey   string
	secret       secret.Secret
	apiBase      string // {base}/api/{version}/
	tokenURL     string
	guard        tokenGuard // keeps calls off the token endpoint
	timeout      time.Duration
	refresh      time.Duration
	defaultTTL   time.Duration
	invalidCodes []string
	store        TokenStore
	log          *slog.Logger
	now          func() time.Time
	onFetch      func(ok bool)
	onExpiry     func(expiresAt time.Time)
	heldMu       sync.Mutex // orders OnTokenExpiry calls
	http         *http.Client

	// local is this instance's copy of the token, read without a lock or a store
	// round trip on every call; nil when there is none.
	local  atomic.Pointer[cachedToken]
	flight singleflight.Group
}

// Response is 58到家's answer to a call.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Code is the answer's top-level "code" as a string ("0", "2"), whether 58到家
	// sent it as a number or a string; "" when absent or the body is not JSON.
	Code string
}

// NewClient checks o and returns a Client.
func NewClient(o Options) (*Client, error) {
	base, err := url.Parse(o.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an absolute http or https URL", o.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("base URL %q must not have a query or fragment", o.BaseURL)
	}
	if o.ServiceKey == "" {
		return nil, errors.New("service key is empty")
	}
	// Every parameter is signed as the string 58到家 decodes from the JSON body; a
	// string that is not UTF-8 cannot survive that trip and could never verify.
	if !utf8.ValidString(o.ServiceKey) {
		return nil, errors.New("service key is not valid UTF-8")
	}
	if o.ServiceSecret.IsZero() {
		return nil, errors.New("service secret is empty")
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if !validPath(o.Version) || strings.Contains(o.Version, "/") {
		return nil, fmt.Errorf("version %q must be one path segment of A-Z a-z 0-9 _ -", o.Version)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.TokenPath == "" {
		o.TokenPath = DefaultTokenPath
	}
	tokenPath := strings.ReplaceAll(o.TokenPath, "{version}", o.Version)
	if !strings.HasPrefix(tokenPath, "/") {
		return nil, fmt.Errorf("token path %q must start with /", o.TokenPath)
	}
	if o.RefreshBefore <= 0 {
		o.RefreshBefore = DefaultRefreshBefore
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultTokenTTL
	}
	o.DefaultTTL = min(max(o.DefaultTTL, MinTokenLifetime), MaxTokenLifetime)
	if len(o.InvalidCodes) == 0 {
		o.InvalidCodes = []string{"2"}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		o.Transport = newTransport(o.Timeout)
	}
	root := strings.TrimSuffix(base.String(), "/")
	return &Client{
		serviceKey:   o.ServiceKey,
		secret:       o.ServiceSecret,
		apiBase:      root + "/api/" + o.Version + "/",
		tokenURL:     root + tokenPath,
		guard:        newTokenGuard(strings.TrimSuffix(base.EscapedPath(), "/"), o.Version, tokenPath),
		timeout:      o.Timeout,
		refresh:      o.RefreshBefore,
		defaultTTL:   o.DefaultTTL,
		invalidCodes: slices.Clone(o.InvalidCodes),
		store:        o.Store,
		log:          o.Logger,
		now:          o.Now,
		onFetch:      o.OnTokenFetch,
		onExpiry:     o.OnTokenExpiry,
		// No Client.Timeout: each call carries its own deadline (post), so a
		// timeout surfaces as context.DeadlineExceeded and maps to 504.
		http: &http.Client{
			Transport: o.Transport,
			// 58到家 answers calls directly; a redirect would resend a signed body
			// somewhere the configuration never named.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// NewTransport is the Transport a Client uses when Options.Transport is nil, for
// callers that wrap it (tracing) and hand it back as Options.Transport.
func NewTransport(timeout time.Duration) *http.Transport {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return newTransport(timeout)
}

// newTransport is the Client's own Transport, tuned for one remote API host.
func newTransport(timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		// 58到家 is on the internet, unlike the gateway's upstreams: where egress goes
		// through an HTTP proxy, HTTPS_PROXY/NO_PROXY are the operator's way to say so.
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    64, // one host: keep enough warm connections for bursts
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// errBadInput marks a Call whose own arguments are wrong, as opposed to 58到家 failing.
var errBadInput = errors.New("bad input")

// Call sends daojiaJSON, a JSON object, to POST {base}/api/{version}/{path}, signed and
// with the cached accessToken. When 58到家 answers that the token is invalid (a code in
// InvalidCodes or HTTP 401), the token is dropped, fetched once more, and the call is
// sent once more; that second answer is returned whatever it says.
func (c *Client) Call(ctx context.Context, path string, daojiaJSON []byte) (*Response, error) {
	if !validPath(path) {
		return nil, fmt.Errorf("%w: path %q must be segments of A-Z a-z 0-9 _ -", errBadInput, path)
	}
	if c.guard.isTokenEndpoint(path) {
		return nil, fmt.Errorf("%w: path %q is the token endpoint, which takes no calls with the accessToken", errBadInput, path)
	}
	var buf bytes.Buffer
	if err := compactObject(&buf, daojiaJSON); err != nil {
		return nil, fmt.Errorf("%w: daojiaJson %v", errBadInput, err)
	}
	return c.send(ctx, path, buf.Bytes())
}

// send is Call once path is checked and daojiaJSON compacted: the same bytes are
// signed and sent on both attempts.
func (c *Client) send(ctx context.Context, path string, daojiaJSON []byte) (*Response, error) {
	target := c.apiBase + path
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, target, c.callBody(tok.token, daojiaJSON))
	if err != nil || !c.tokenRejected(resp) {
		return resp, err
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "58到家 refused the accessToken; fetching a new one",
		slog.String("path", path), slog.Int("status", resp.Status), slog.String("code", resp.Code))
	c.dropToken(ctx, tok)
	if tok, err = c.token(ctx); err != nil {
		return nil, err
	}
	return c.post(ctx, target, c.callBody(tok.token, daojiaJSON))
}

func (c *Client) tokenRejected(r *Response) bool {
	return r.Status == http.StatusUnauthorized || (r.Code != "" && slices.Contains(c.invalidCodes, r.Code))
}

// callBody is the body of a call with token.
func (c *Client) callBody(token string, daojiaJSON []byte) []byte {
	return signedBody(daojiaJSON, c.serviceKey, token, c.secret.Reveal(), Timestamp(c.now()))
}

// SignedBody returns the JSON body of a 58到家 call carrying daojiaJSON, a JSON object,
// for serviceKey with accessToken, signed with secret at now: what the relay sends,
// and what `signgate sign` shows integrators. An empty accessToken is left out, as in
// 58到家's callbacks, which carry none.
func SignedBody(daojiaJSON []byte, serviceKey, accessToken, secret string, now time.Time) ([]byte, error) {
	if !utf8.ValidString(serviceKey) || !utf8.ValidString(accessToken) {
		return nil, errors.New("serviceKey and accessToken must be UTF-8")
	}
	var buf bytes.Buffer
	if err := compactObject(&buf, daojiaJSON); err != nil {
		return nil, fmt.Errorf("daojiaJson %v", err)
	}
	return signedBody(buf.Bytes(), serviceKey, accessToken, secret, Timestamp(now)), nil
}

// signedBody writes the system parameters in the order DESIGN.md shows them, then
// daojiaJson embedded as the exact bytes the signature covers. daojiaJSON must be
// compact JSON already.
func signedBody(daojiaJSON []byte, serviceKey, token, secret, ts string) []byte {
	params := map[string]string{
		"serviceKey": serviceKey,
		"format":     "json",
		"timestamp":  ts,
		"daojiaJson": string(daojiaJSON),
	}
	if token != "" {
		params["accessToken"] = token
	}
	sign := Sign(params, secret)
	b := make([]byte, 0, 160+len(token)+len(serviceKey)+len(daojiaJSON))
	b = append(b, '{')
	if token != "" {
		b = append(b, `"accessToken":`...)
		b = appendJSONString(b, token)
		b = append(b, ',')
	}
	b = append(b, `"serviceKey":`...)
	b = appendJSONString(b, serviceKey)
	b = append(b, `,"format":"json","timestamp":`...)
	b = appendJSONString(b, ts)
	b = append(b, `,"sign":`...)
	b = appendJSONString(b, sign)
	b = append(b, `,"daojiaJson":`...)
	b = append(b, daojiaJSON...)
	return append(b, '}')
}

// tokenBody is the body of a token request: the system parameters without accessToken.
func (c *Client) tokenBody() []byte {
	ts := Timestamp(c.now())
	sign := Sign(map[string]string{
		"serviceKey": c.serviceKey,
		"format":     "json",
		"timestamp":  ts,
	}, c.secret.Reveal())
	b := make([]byte, 0, 128+len(c.serviceKey))
	b = append(b, `{"serviceKey":`...)
	b = appendJSONString(b, c.serviceKey)
	b = append(b, `,"format":"json","timestamp":`...)
	b = appendJSONString(b, ts)
	b = append(b, `,"sign":`...)
	b = appendJSONString(b, sign)
	return append(b, '}')
}

// post sends body to target under the per-call timeout and reads the whole answer.
// Errors name the URL, which holds no secret: the token and sign travel in the body.
func (c *Client) post(ctx context.Context, target string, body []byte) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "signgate")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of POST %s: %w", target, err)
	}
	if len(data) > maxAnswerBytes {
		return nil, fmt.Errorf("the answer of POST %s is larger than %d bytes", target, maxAnswerBytes)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data, Code: answerCode(data)}, nil
}

// answerCode reads the top-level "code" of a 58到家 answer as a string.
func answerCode(body []byte) string {
	var a struct {
		Code json.RawMessage `json:"code"`
	}
	if json.Unmarshal(body, &a) != nil {
		return ""
	}
	return scalarText(a.Code)
}

// scalarText is a JSON string's content or a number's text; "" for anything else.
func scalarText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw)
	}
	return ""
}

// compactObject writes src, which must be one JSON object, compactly to dst.
func compactObject(dst *bytes.Buffer, src []byte) error {
	trimmed := bytes.TrimLeft(src, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if !json.Valid(src) {
			return errors.New("is not valid JSON")
		}
		return errors.New("is not a JSON object")
	}
	if err := json.Compact(dst, src); err != nil {
		return err
	}
	return nil
}

// validPath reports whether p is one or more non-empty segments of [A-Za-z0-9_-]
// joined by "/": nothing that could climb out of /api/{version}/ or smuggle a query.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	prev := byte('/')
	for i := 0; i < len(p); i++ {
		ch := p[i]
		switch {
		case ch == '/':
			if prev == '/' {
				return false
			}
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '_', ch == '-':
		default:
			return false
		}
		prev = ch
	}
	return prev != '/'
}

// appendJSONString appends s as a JSON string. s must be valid UTF-8, which every
// value here is (checked in NewClient, or decoded from JSON), so only quotes,
// backslashes and control characters need escaping.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			dst = append(dst, '\\', ch)
		case ch < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xf])
		default:
			dst = append(dst, ch)
		}
	}
	return append(dst, '"')
}

package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/signgate/signgate/secret"
)

// ClientOptions configures a Client. Zero fields take the defaults named beside them.
type ClientOptions struct {
	AppID   string        // the mini-program's AppID
	Secret  secret.Secret // its AppSecret
	APIBase string        // WeChat's API origin; DefaultAPIBase
	// Timeout bounds one call, from dialing to the last byte of the answer;
	// DefaultTimeout.
	Timeout time.Duration
	// Transport sends the calls; nil is the Client's own, tuned for one host.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil discards
}

// Defaults of ClientOptions.
const (
	DefaultAPIBase = "https://api.weixin.qq.com"
	DefaultTimeout = 5 * time.Second
)

const (
	// maxAnswerBytes bounds what is read of an answer: a real one is under 200
	// bytes, so anything near this is not WeChat's.
	maxAnswerBytes = 64 << 10
	// maxCodeBytes bounds a login code (wx.login's are 32 characters).
	maxCodeBytes = 128
	// maxIDBytes bounds an openid or unionid (WeChat's are 28 or 29 characters):
	// they go into headers and logs.
	maxIDBytes = 128
	// maxSessionKeyBytes bounds a session_key (WeChat's are 24 characters).
	maxSessionKeyBytes = 256
	// maxErrmsgBytes bounds the errmsg carried into an error.
	maxErrmsgBytes = 200
)

// Client exchanges wx.login codes at WeChat's jscode2session. It is safe for
// concurrent use.
type Client struct {
	appID    string
	secret   secret.Secret
	endpoint string // {api_base}/sns/jscode2session
	timeout  time.Duration
	http     *http.Client
	log      *slog.Logger
}

// NewClient checks o and returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	if o.AppID == "" {
		return nil, errors.New("wechat: appid is empty")
	}
	if !printable(o.AppID, maxIDBytes) {
		return nil, errors.New("wechat: appid is not printable ASCII")
	}
	if o.Secret.IsZero() {
		return nil, errors.New("wechat: secret is empty")
	}
	if o.APIBase == "" {
		o.APIBase = DefaultAPIBase
	}
	base, err := url.Parse(o.APIBase)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("wechat: api base %q is not an absolute http or https URL", o.APIBase)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("wechat: api base %q must not have a query, fragment or user", o.APIBase)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Transport == nil {
		o.Transport = NewTransport(o.Timeout)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		appID:    o.AppID,
		secret:   o.Secret,
		endpoint: strings.TrimSuffix(base.String(), "/") + "/sns/jscode2session",
		timeout:  o.Timeout,
		// No http.Client.Timeout: each call carries its own deadline, so a
		// timeout surfaces as context.DeadlineExceeded.
		http: &http.Client{
			Transport: o.Transport,
			// The URL carries the AppSecret: a redirect would hand it to a host the
			// configuration never named. A 3xx is an answer like any other non-200.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: o.Logger,
	}, nil
}

// NewTransport is the Transport a Client uses when ClientOptions.Transport is nil,
// for callers that wrap it (tracing) and hand it back.
func NewTransport(timeout time.Duration) *http.Transport {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		// WeChat is on the internet: where egress goes through an HTTP proxy,
		// HTTPS_PROXY/NO_PROXY are the operator's way to say so.
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        16,
		MaxIdleConnsPerHost: 16, // logins come in bursts (an app's launch), to one host
		// Shorter than servers keep idle connections (nginx: 75s), so that a
		// connection is not reused just as the server closes it: a call that then
		// fails is not resent (see exchange).
		IdleConnTimeout:        30 * time.Second,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// Code2Session exchanges code, wx.login's, for the user's identity: OpenID,
// UnionID (when the app is bound to an Open Platform account) and SessionKey; the
// Session's Expires is zero. The call is never retried, as a code is good once.
// A code that is empty, longer than 128 bytes or not printable ASCII is
// ErrInvalidCode without a call.
func (c *Client) Code2Session(ctx context.Context, code string) (Session, error) {
	if !printable(code, maxCodeBytes) {
		err := &callError{kind: ErrInvalidCode, msg: "wechat: login code is empty, longer than 128 bytes or not printable ASCII"}
		c.log.LogAttrs(ctx, slog.LevelInfo, "wechat login code refused", slog.String("err", err.Error()))
		return Session{}, err
	}
	start := time.Now()
	s, err := c.exchange(ctx, code)
	took := slog.Duration("duration", time.Since(start))
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrInvalidCode) {
			level = slog.LevelInfo // the caller's code, not WeChat, is at fault
		}
		c.log.LogAttrs(ctx, level, "wechat jscode2session failed", slog.String("err", err.Error()), took)
		return Session{}, err
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "wechat jscode2session", slog.Bool("unionid", s.UnionID != ""), took)
	return s, nil
}

func (c *Client) exchange(ctx context.Context, code string) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	q := url.Values{
		"appid":      {c.appID},
		"secret":     {c.secret.Reveal()},
		"js_code":    {code},
		"grant_type": {"authorization_code"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"?"+q.Encode(), nil)
	if err != nil { // NewClient checked the base; only a bug gets here
		return Session{}, &callError{kind: ErrUpstream, msg: "wechat: jscode2session: cannot build the request"}
	}
	req.Header.Set("Accept", "application/json")
	// net/http resends a GET "with no body" when a kept-alive connection breaks
	// before the answer, which would spend the code twice (the second answer:
	// 40163, code been used). A body without GetBody makes the request not
	// replayable; being empty, it is probed and never sent.
	req.Body = emptyBody{}
	resp, err := c.http.Do(req)
	if err != nil {
		return Session{}, c.failed(ctx, "calling", err, code)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return Session{}, c.failed(ctx, "reading the answer", err, code)
	}
	switch {
	case len(body) > maxAnswerBytes:
		return Session{}, upstreamf("the answer is larger than %d KB", maxAnswerBytes>>10)
	case resp.StatusCode != http.StatusOK:
		// Never the body: a proxy's error page may quote the request URL.
		return Session{}, upstreamf("HTTP %d", resp.StatusCode)
	}
	return c.readAnswer(body, code)
}

// failed makes err, from sending the request or reading the answer, into a
// callError. net/http's *url.Error quotes the whole URL, so only what it wraps is
// used, and even that with the secret and code scrubbed out.
func (c *Client) failed(ctx context.Context, doing string, err error, code string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return &callError{kind: ErrUnreachable, msg: "wechat: jscode2session: " + doing + ": canceled", cause: context.Canceled}
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return &callError{kind: ErrTimeout, cause: context.DeadlineExceeded,
			msg: "wechat: jscode2session: " + doing + ": no answer in time (timeout " + c.timeout.String() + ")"}
	}
	return &callError{kind: ErrUnreachable, msg: "wechat: jscode2session: " + doing + ": " + c.scrub(err.Error(), code)}
}

// emptyBody is a request body of nothing that net/http cannot replay.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// answer is jscode2session's JSON. errcode is absent on success, and WeChat sends
// it as a number; a string holding one is taken too.
type answer struct {
	OpenID     string          `json:"openid"`
	UnionID    string          `json:"unionid"`
	SessionKey string          `json:"session_key"`
	Errcode    json.RawMessage `json:"errcode"`
	Errmsg     json.RawMessage `json:"errmsg"`
}

func (c *Client) readAnswer(body []byte, code string) (Session, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Session{}, upstreamf("the answer is not jscode2session's JSON")
	}
	errcode, ok := intValue(a.Errcode)
	if !ok {
		return Session{}, upstreamf("the answer's errcode is not a number")
	}
	if errcode != 0 {
		var msg string
		_ = json.Unmarshal(a.Errmsg, &msg) // a non-string errmsg is left out
		return Session{}, &APIError{Errcode: errcode, Errmsg: c.scrub(shorten(msg), code), kind: kindOf(errcode)}
	}
	switch {
	case a.OpenID == "":
		return Session{}, upstreamf("the answer has no openid")
	case a.SessionKey == "":
		return Session{}, upstreamf("the answer has no session_key")
	case !printable(a.OpenID, maxIDBytes):
		return Session{}, upstreamf("the answer's openid is not printable ASCII of at most %d bytes", maxIDBytes)
	case a.UnionID != "" && !printable(a.UnionID, maxIDBytes):
		return Session{}, upstreamf("the answer's unionid is not printable ASCII of at most %d bytes", maxIDBytes)
	case !printable(a.SessionKey, maxSessionKeyBytes):
		return Session{}, upstreamf("the answer's session_key is not printable ASCII of at most %d bytes", maxSessionKeyBytes)
	}
	return Session{OpenID: a.OpenID, UnionID: a.UnionID, SessionKey: secret.Secret(a.SessionKey)}, nil
}

// scrub takes the secret and the code, as sent and as URL-encoded, out of s.
func (c *Client) scrub(s, code string) string {
	sec := c.secret.Reveal()
	for _, v := range []string{sec, url.QueryEscape(sec), code, url.QueryEscape(code)} {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

func upstreamf(format string, args ...any) error {
	return &callError{kind: ErrUpstream, msg: "wechat: jscode2session: " + fmt.Sprintf(format, args...)}
}

// intValue reads raw, a JSON number or a string holding one; absent or null is 0.
func intValue(raw json.RawMessage) (int, bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, true
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// shorten cuts m to maxErrmsgBytes at a character boundary.
func shorten(m string) string {
	if len(m) <= maxErrmsgBytes {
		return m
	}
	cut := maxErrmsgBytes
	for cut > 0 && !utf8.RuneStart(m[cut]) {
		cut--
	}
	return m[:cut] + "…"
}

// printable reports whether s is 1 to limit bytes of printable ASCII without
// spaces: safe in a URL query, a header value and a log line as it is.
func printable(s string, limit int) bool {
	if s == "" || len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

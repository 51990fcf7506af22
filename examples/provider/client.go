// Package provider is a client for a home-service provider's server calling the
// property backend's order API through signgate: it signs every request with
// signgate's hmac-sha256 scheme (see Sign) and speaks the order API's JSON. Partners
// are welcome to copy it; it needs nothing but the standard library.
//
// The same client serves any server-side caller that holds a secret, such as the
// property backend itself calling signgate's 58到家 relay.
package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// The order statuses of the property backend, in the order an order moves through
// them; 已取消 is possible until the service starts.
const (
	StatusPending   = "待接單"
	StatusAccepted  = "已接單"
	StatusInService = "服務中"
	StatusCompleted = "已完成"
	StatusCancelled = "已取消"
)

// maxAnswer bounds how much of an answer is read; the order API's are small.
const maxAnswer = 1 << 20

// Client calls signgate as one client: its API key and hmac-sha256 secret. It is safe
// for concurrent use.
type Client struct {
	// HTTPClient sends the requests; nil means http.DefaultClient. Set its Timeout.
	HTTPClient *http.Client
	// Now is the clock requests are signed with; nil means time.Now.
	Now func() time.Time

	baseURL string
	apiKey  string
	secret  []byte
}

// NewClient returns a Client for signgate at baseURL ("https://api.example.com"),
// calling with apiKey and signing with secret.
func NewClient(baseURL, apiKey, secret string) *Client {
	return &Client{baseURL: strings.TrimSuffix(baseURL, "/"), apiKey: apiKey, secret: []byte(secret)}
}

// String names the client without its credentials, so printing one leaks nothing.
func (c *Client) String() string { return "provider.Client(" + c.baseURL + ")" }

// LogValue keeps the credentials out of slog lines too.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Order is an order as the property backend answers it. A provider sees the owner's
// Phone masked (138****5678).
type Order struct {
	ID              int64          `json:"id"`
	Name            string         `json:"name"`
	Phone           string         `json:"phone"`
	Address         string         `json:"address"`
	ServiceType     string         `json:"service_type"`
	ServiceName     string         `json:"service_name"`
	AppointmentTime time.Time      `json:"appointment_time"`
	Status          string         `json:"status"`
	Staff           *Staff         `json:"staff"`
	History         []StatusChange `json:"history"`
	CreatedAt       time.Time      `json:"created_at"`
}

// Staff is the person a provider sends. Photo is an https:// URL.
type Staff struct {
	Name   string   `json:"name"`
	Phone  string   `json:"phone"`
	Photo  string   `json:"photo"`
	Skills []string `json:"skills"`
}

// StatusChange is one step of an order's history.
type StatusChange struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// Error is an answer other than 2xx, from signgate or from the backend: both use
// the envelope {"code","message","request_id"}. Quote RequestID when asking for help.
type Error struct {
	Status    int    `json:"-"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s (request %s)", e.Status, e.Code, e.Message, e.RequestID)
}

// Order reads one order.
func (c *Client) Order(ctx context.Context, id int64) (*Order, error) {
	var o Order
	return &o, c.Call(ctx, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil, &o)
}

// AssignStaff sends s to do order id, and returns the order as it then is.
func (c *Client) AssignStaff(ctx context.Context, id int64, s Staff) (*Order, error) {
	var o Order
	return &o, c.Call(ctx, http.MethodPost, fmt.Sprintf("/api/orders/%d/staff", id), s, &o)
}

// SetStatus moves order id to status, and returns the order as it then is.
func (c *Client) SetStatus(ctx context.Context, id int64, status string) (*Order, error) {
	var o Order
	body := struct {
		Status string `json:"status"`
	}{status}
	return &o, c.Call(ctx, http.MethodPut, fmt.Sprintf("/api/orders/%d/status", id), body, &o)
}

// Call sends in as JSON (nil: no body) to method target ("/api/orders/42?x=1"),
// signed, and decodes a 2xx answer into out (nil: discarded). Any other answer is
// returned as an *Error.
func (c *Client) Call(ctx context.Context, method, target string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := c.NewRequest(ctx, method, target, body)
	if err != nil {
		return err
	}
	return c.Send(req, out)
}

// NewRequest returns a signed request with body. Send it once: signgate refuses the
// same nonce a second time. To retry, make a new request.
func (c *Client) NewRequest(ctx context.Context, method, target string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Api-Key", c.apiKey)
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	// The body signed must be the body sent, byte for byte: sign the bytes, not the
	// value they were made from.
	if err := Sign(req, body, c.secret, now(), ""); err != nil {
		return nil, err
	}
	return req, nil
}

// Send sends req and decodes a 2xx JSON answer into out (nil: discarded); any other
// answer is returned as an *Error.
func (c *Client) Send(req *http.Request, out any) error {
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return DecodeAnswer(resp, out)
}

// DecodeAnswer reads resp's body: a 2xx into out (nil: discarded), anything else
// into an *Error. It does not close the body.
func DecodeAnswer(resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "unexpected_answer", strings.TrimSpace(string(data))
		}
		if e.RequestID == "" {
			e.RequestID = resp.Header.Get("X-Request-Id")
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

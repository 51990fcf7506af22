package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/examples/provider"
)

// The demo API keys; config.demo.yaml holds their SHA-256.
const (
	ownerKey    = "demo-miniapp-key"
	providerKey = "demo-sunshine-key"
	propertyKey = "demo-property-backend-key"
)

// The callers' names as the tutorial prints them.
const (
	ownerName    = "mini-program"
	providerName = "provider"
	propertyName = "property backend"
)

// errOffScript is a tour step that did not get the answer the tutorial promises.
var errOffScript = errors.New("the flow went off script")

// chinaTime is GMT+8, where the owners book.
var chinaTime = time.FixedZone("CST", 8*60*60)

// seen is what each caller saw on the tour, for the end-to-end test to look at.
type seen struct {
	Login         loginAnswer // the owner's WeChat login
	NoSession     *provider.Error
	OtherOwner    *provider.Error // a second owner asking for the first owner's order
	Services      []string        // service types, as the owner listed them
	ServicesCache []string        // Cache-Status of the owner's two lists: a miss, then a hit
	Booked        provider.Order
	BadBooking    *provider.Error
	SpecRefusal   *specRefusal   // a booking the interface spec refuses at the edge
	ProviderView  provider.Order // the order as the provider first read it
	WithStaff     provider.Order
	Statuses      []string // the status after each of the provider's moves
	OwnerView     provider.Order
	OpsView       provider.Order
	OpsRequestID  string
	Audit         map[string]any // the audit line of the ops view
	AuditLine     string

	Saved, Updated, All daojiaAnswer
	TokenFetches        float64

	OwnerSetsStatus   *provider.Error
	Unsigned          *provider.Error
	Replayed          *provider.Error
	FirstUse          provider.Order // the request later replayed, on its first use
	BadTransition     *provider.Error
	ProviderNonceUses int // signed requests the provider sent
}

// daojiaAnswer is 58到家's answer form, as the relay passes it back.
type daojiaAnswer struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// tour walks steps 1–4 of the booking flow through a running stack, printing each
// request and answer, and checks every answer against what the tutorial says. The
// demo and the end-to-end test both run it, so the tutorial cannot drift from what
// the gateway does.
type tour struct {
	st *stack
	p  *printer

	owner    *keyClient       // the mini-program: an API key, no secret
	provider *provider.Client // a provider's server: API key + hmac-sha256
	property *provider.Client // the property backend: API key + hmac-sha256
	unsigned *keyClient       // the provider's key without a signature
}

func newTour(st *stack, out io.Writer) *tour {
	p := &printer{out: out}
	// The demo gateway has a self-signed certificate, so the demo does not check it.
	// In production signgate has a publicly trusted one (tls.mode: acme) and
	// partners use a plain http.Client.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	t := &tour{
		st:       st,
		p:        p,
		owner:    &keyClient{base: st.gatewayURL, key: ownerKey, http: p.client(ownerName, tr)},
		provider: provider.NewClient(st.gatewayURL, providerKey, st.secrets["SUNSHINE_SECRET"]),
		property: provider.NewClient(st.gatewayURL, propertyKey, st.secrets["PROPERTY_BACKEND_SECRET"]),
		unsigned: &keyClient{base: st.gatewayURL, key: providerKey, http: p.client(providerName+" (unsigned)", tr)},
	}
	t.provider.HTTPClient = p.client(providerName, tr)
	t.property.HTTPClient = p.client(propertyName, tr)
	return t
}

// run walks the whole flow; it stops at the first answer that is not as promised.
func (t *tour) run(ctx context.Context) (*seen, error) {
	s := &seen{}
	for _, step := range []func(context.Context, *seen) error{t.book, t.spec, t.serve, t.review, t.relay, t.refuse} {
		if err := step(ctx, s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// loginAnswer is what the login route answers.
type loginAnswer struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expires_in"`
}

// wxReferer is the Referer wx.request sends from the demo mini-program.
const wxReferer = "https://servicewechat.com/wx0123456789abcdef/1/page-frame.html"

// login logs an owner in as the mini-program does: wx.login() on her phone gives a
// code (here the sandbox mints one, as WeChat would), which the mini-program POSTs
// to signgate's login route; the token it gets back goes on every later call.
func (t *tour) login(ctx context.Context, c *keyClient, user string) (loginAnswer, error) {
	var a loginAnswer
	body := strings.NewReader(`{"user":"` + user + `"}`)
	resp, err := http.Post(t.st.sandboxURL+"/sandbox/wechat/codes", "application/json", body)
	if err != nil {
		return a, err
	}
	var minted struct {
		Code string `json:"code"`
	}
	err = json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if err != nil || minted.Code == "" {
		return a, check(false, "the sandbox minted no wx.login code (%v)", err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/auth/wechat/login", strings.NewReader(`{"code":"`+minted.Code+`"}`))
	if err != nil {
		return a, err
	}
	req.Header.Set("X-Api-Key", c.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Referer", wxReferer)
	resp, err = c.http.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if err := provider.DecodeAnswer(resp, &a); err != nil {
		return a, err
	}
	if err := check(len(a.Token) >= 43 && a.ExpiresIn > 0, "login answered token %d characters, expires_in %d", len(a.Token), a.ExpiresIn); err != nil {
		return a, err
	}
	c.bearer = a.Token
	return a, nil
}

// Step 1.
func (t *tour) book(ctx context.Context, s *seen) error {
	t.p.heading("Step 1 · An owner logs in and books a home service in the mini-program", `
The mini-program's API key is public (anyone can unpack a mini-program), so it only
says which app calls. Which owner calls, signgate learns itself: the mini-program
sends wx.login()'s code, signgate exchanges it at WeChat's jscode2session (here the
sandbox) and answers a session token. With it the owner's role, resident_app, may
list the services, book one and read her own orders; the backend receives her
openid as X-WX-OpenID, which only the gateway can set.`)

	var err error
	if s.Login, err = t.login(ctx, t.owner, "wangfang"); err != nil {
		return err
	}

	var list struct {
		Services []struct {
			Type string `json:"service_type"`
		} `json:"services"`
	}
	h, err := t.owner.callHeader(ctx, "GET", "/api/services", nil, &list)
	if err != nil {
		return err
	}
	for _, svc := range list.Services {
		s.Services = append(s.Services, svc.Type)
	}
	s.ServicesCache = append(s.ServicesCache, h.Get("Cache-Status"))

	t.p.note("Every owner's mini-program opens on this list, so signgate caches it (the route\n" +
		"has cache: {ttl: 60s, scope: all}). The first answer above came from the backend\n" +
		"(Cache-Status: fwd=miss … stored); the next owner's comes from the cache, the\n" +
		"backend not asked:")
	var again struct {
		Services []struct {
			Type string `json:"service_type"`
		} `json:"services"`
	}
	if h, err = t.owner.callHeader(ctx, "GET", "/api/services", nil, &again); err != nil {
		return err
	}
	s.ServicesCache = append(s.ServicesCache, h.Get("Cache-Status"))
	if err := check(strings.HasPrefix(s.ServicesCache[0], "signgate; fwd=miss") && strings.HasPrefix(s.ServicesCache[1], "signgate; hit") &&
		len(again.Services) == len(list.Services),
		"the services list twice: Cache-Status %q then %q, want a miss then a hit", s.ServicesCache[0], s.ServicesCache[1]); err != nil {
		return err
	}

	tomorrow := time.Now().In(chinaTime).AddDate(0, 0, 1)
	at := time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day(), 10, 0, 0, 0, chinaTime)
	booking := map[string]string{
		"name":             "王芳",
		"phone":            "13812345678",
		"address":          "幸福小區 3 棟 2 單元 501",
		"service_type":     "cleaning",
		"appointment_time": at.Format(time.RFC3339),
	}
	t.p.note("She books a cleaning for tomorrow at 10:00:")
	if err = t.owner.call(ctx, "POST", "/api/orders", booking, &s.Booked); err != nil {
		return err
	}
	if err := check(s.Booked.Status == provider.StatusPending && s.Booked.Phone == "13812345678",
		"booked order: status %q phone %q, want %s and her own number", s.Booked.Status, s.Booked.Phone, provider.StatusPending); err != nil {
		return err
	}

	t.p.note("An appointment in the past is refused by the backend with a 400 that says what\nis wrong (only the backend knows what time it is); signgate passes it through as it is:")
	booking["appointment_time"] = at.AddDate(0, 0, -7).Format(time.RFC3339)
	if s.BadBooking, err = wantError(t.owner.call(ctx, "POST", "/api/orders", booking, nil), 400, "bad_request"); err != nil {
		return err
	}
	return nil
}

// Step 2.
func (t *tour) serve(ctx context.Context, s *seen) error {
	id := s.Booked.ID
	t.p.heading("Step 2 · The provider takes the order", fmt.Sprintf(`
The property backend forwards order %d to the provider (a push or a message in
production; here the provider is simply told the id). The provider's server calls
signgate with its API key and an hmac-sha256 signature: X-Timestamp, a fresh X-Nonce,
and X-Signature over method, path, query, timestamp, nonce and the body's SHA-256
(examples/provider). Its role, provider, has mask: true, so the owner's phone
reaches it as 138****5678.`, id))

	o, err := t.provider.Order(ctx, id)
	s.ProviderNonceUses++
	if err != nil {
		return err
	}
	s.ProviderView = *o
	if err := check(o.Phone == "138****5678", "the provider saw the owner's phone as %q, want 138****5678", o.Phone); err != nil {
		return err
	}

	t.p.note("It sends 李秀英, with her photo and skills:")
	o, err = t.provider.AssignStaff(ctx, id, provider.Staff{
		Name:   "李秀英",
		Phone:  "13998765432",
		Photo:  "https://img.example.com/staff/li-xiuying.jpg",
		Skills: []string{"日常保潔", "家電清洗"},
	})
	s.ProviderNonceUses++
	if err != nil {
		return err
	}
	s.WithStaff = *o
	if err := check(o.Staff != nil && o.Staff.Name == "李秀英", "staff not assigned: %+v", o.Staff); err != nil {
		return err
	}

	t.p.note("And moves the status as the job goes: 已接單 (accepted), 服務中 (in service),\n已完成 (done):")
	for _, status := range []string{provider.StatusAccepted, provider.StatusInService, provider.StatusCompleted} {
		o, err := t.provider.SetStatus(ctx, id, status)
		s.ProviderNonceUses++
		if err != nil {
			return err
		}
		s.Statuses = append(s.Statuses, o.Status)
		if err := check(o.Status == status, "status %q after moving to %q", o.Status, status); err != nil {
			return err
		}
	}
	return nil
}

// Step 3.
func (t *tour) review(ctx context.Context, s *seen) error {
	id := s.Booked.ID
	t.p.heading("Step 3 · The owner sees her order; the property's ops see the full number", `
The owner's role is not masked: she sees the staff sent to her, with their number
to call, and the status. The property backend's ops role has unmask: true: it sees
the owner's full number, and signgate writes an audit line for every such answer.`)

	if err := t.owner.call(ctx, "GET", fmt.Sprintf("/api/orders/%d", id), nil, &s.OwnerView); err != nil {
		return err
	}
	if err := check(s.OwnerView.Status == provider.StatusCompleted && s.OwnerView.Staff != nil && s.OwnerView.Staff.Phone == "13998765432",
		"the owner saw status %q staff %+v", s.OwnerView.Status, s.OwnerView.Staff); err != nil {
		return err
	}

	t.p.note("Her neighbour logs in on his own phone and asks for the same order id. signgate\n" +
		"sends the backend his openid, and the backend shows an owner only her own orders:")
	neighbour := &keyClient{base: t.owner.base, key: t.owner.key, http: t.owner.http}
	if _, err := t.login(ctx, neighbour, "neighbour"); err != nil {
		return err
	}
	var err error
	if s.OtherOwner, err = wantError(neighbour.call(ctx, "GET", fmt.Sprintf("/api/orders/%d", id), nil, nil), 404, "not_found"); err != nil {
		return err
	}
	t.p.note("And a script with the app's public key but no session gets nothing at all:")
	anonymous := &keyClient{base: t.owner.base, key: t.owner.key, http: t.owner.http}
	if s.NoSession, err = wantError(anonymous.call(ctx, "GET", fmt.Sprintf("/api/orders/%d", id), nil, nil), 401, "missing_session"); err != nil {
		return err
	}

	t.p.note("The ops console names its request, to find it in the audit log later:")
	s.OpsRequestID = "ops-console-" + randomSecret()[:12]
	req, err := t.property.NewRequest(ctx, "GET", fmt.Sprintf("/api/orders/%d", id), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Request-Id", s.OpsRequestID) // not signed: signgate keeps a well-formed one
	if err := t.property.Send(req, &s.OpsView); err != nil {
		return err
	}
	if err := check(s.OpsView.Phone == "13812345678", "ops saw the owner's phone as %q, want it in full", s.OpsView.Phone); err != nil {
		return err
	}

	line, audit, err := findAudit(ctx, t.st.auditFile, s.OpsRequestID)
	if err != nil {
		return err
	}
	s.AuditLine, s.Audit = line, audit
	t.p.note("The audit log (%s) now holds:\n\n    %s", t.st.auditFile, line)
	return nil
}

// Step 4.
func (t *tour) relay(ctx context.Context, s *seen) error {
	t.p.heading("Step 4 · The property backend registers the staff on 58到家", `
The property backend calls signgate's relay with the application parameters only.
signgate adds serviceKey, timestamp, format and the accessToken (fetched once and
cached), signs the call the 58到家 way (MD5 with the serviceSecret, which the
property backend never holds) and passes 58到家's answer back. Here 58到家 is
`+"`signgate sandbox`"+`, which checks sign, timestamp and token as 58到家 does.`)

	call := func(method string, in any, out *daojiaAnswer) error {
		if err := t.property.Call(ctx, "POST", "/daojia/serviceUser/"+method, in, out); err != nil {
			return err
		}
		return check(out.Code == 0, "58到家 %s answered code %d %q", method, out.Code, out.Message)
	}
	if err := call("saveServiceUser", map[string]any{
		"userName": "李秀英", "userPhone": "13998765432", "userSex": 2, "userAge": 46,
		"userRemark": "日常保潔, 家電清洗", "userStatus": 1,
	}, &s.Saved); err != nil {
		return err
	}
	var saved struct {
		UserID string `json:"userId"`
	}
	if err := json.Unmarshal(s.Saved.Data, &saved); err != nil || saved.UserID == "" {
		return check(false, "saveServiceUser gave no userId: %s", s.Saved.Data)
	}
	t.p.note("She learns a new skill:")
	if err := call("updateServiceUser", map[string]any{
		"userId": saved.UserID, "userRemark": "日常保潔, 家電清洗, 保姆",
	}, &s.Updated); err != nil {
		return err
	}
	t.p.note("And the property backend lists its staff on 58到家:")
	if err := call("getAllServiceUser", map[string]any{}, &s.All); err != nil {
		return err
	}

	const series = `signgate_daojia_token_fetches_total{result="ok"}`
	fetches, err := metric(ctx, t.st.adminURL, series)
	if err != nil {
		return err
	}
	s.TokenFetches = fetches
	t.p.note("Three calls, one accessToken: %s/metrics says\n\n    %s %v", t.st.adminURL, series, fetches)
	return nil
}

// And what wrong callers get.
func (t *tour) refuse(ctx context.Context, s *seen) error {
	id := s.Booked.ID
	path := fmt.Sprintf("/api/orders/%d", id)
	t.p.heading("And what wrong callers get", `
Every refusal is JSON, {"code","message","request_id"}, with the status that fits.`)

	var err error
	t.p.note("The mini-program's key may not move an order's status (its role does not allow it):")
	if s.OwnerSetsStatus, err = wantError(t.owner.call(ctx, "PUT", path+"/status", map[string]string{"status": provider.StatusCancelled}, nil),
		403, "forbidden"); err != nil {
		return err
	}

	t.p.note("The provider's key without a signature is not enough:")
	if s.Unsigned, err = wantError(t.unsigned.call(ctx, "GET", path, nil, nil), 401, "missing_credentials"); err != nil {
		return err
	}

	t.p.note("A signed request works once; the same request sent again, byte for byte (as\nsomeone who captured it would), is a replay:")
	req, err := t.provider.NewRequest(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	again := req.Clone(ctx)
	s.ProviderNonceUses++
	if err := t.provider.Send(req, &s.FirstUse); err != nil {
		return err
	}
	if s.Replayed, err = wantError(t.provider.Send(again, nil), 401, "replayed"); err != nil {
		return err
	}

	t.p.note("And the backend keeps the status machine: a completed order stays completed:")
	s.ProviderNonceUses++
	_, err = t.provider.SetStatus(ctx, id, provider.StatusInService)
	if s.BadTransition, err = wantError(err, 400, "invalid_transition"); err != nil {
		return err
	}
	return nil
}

// keyClient calls with an API key and nothing else, as wx.request does.
type keyClient struct {
	base, key string
	// bearer is the owner's session token once she has logged in: sent as
	// Authorization: Bearer, as the mini-program sends what wx.login gave it.
	bearer string
	http   *http.Client
}

func (c *keyClient) call(ctx context.Context, method, path string, in, out any) error {
	_, err := c.callHeader(ctx, method, path, in, out)
	return err
}

// callHeader is call that also returns the answer's header.
func (c *keyClient) callHeader(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Api-Key", c.key)
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return resp.Header, provider.DecodeAnswer(resp, out)
}

// findAudit waits for the audit line of requestID: signgate writes it as the answer
// goes out, so it may land a moment after the caller has read the answer.
func findAudit(ctx context.Context, path, requestID string) (string, map[string]any, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "audit" && m["request_id"] == requestID {
					return sc.Text(), m, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", nil, check(false, "no audit line for request %s in %s", requestID, path)
		}
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metric reads one series, `name{labels}` as Prometheus writes it, from the admin
// listener's /metrics.
func metric(ctx context.Context, adminURL, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", adminURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, check(false, "%s/metrics has no %s", adminURL, series)
}

// wantError checks that err is the answer status with code.
func wantError(err error, status int, code string) (*provider.Error, error) {
	var e *provider.Error
	if !errors.As(err, &e) {
		return nil, check(false, "want %d %s, got %v", status, code, err)
	}
	return e, check(e.Status == status && e.Code == code, "want %d %s, got %v", status, code, e)
}

func check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%w: %s", errOffScript, fmt.Sprintf(format, args...))
}

package daojia

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The demo partner the sandbox knows when it is given none, as DESIGN.md's test
// vectors use it.
const (
	DemoServiceKey    = "2801209652"
	DemoServiceSecret = "testSecret123"
)

// Answer codes of the sandbox, in 58到家's {code, message, data} form.
const (
	CodeOK           = 0
	CodeBadSign      = 1
	CodeInvalidToken = 2
	CodeBadTimestamp = 3
	CodeBadParams    = 4
	CodeNotFound     = 404
)

// sandboxWindow is how far a call's timestamp may be from the sandbox's clock.
const sandboxWindow = 10 * time.Minute

// sandboxMaxBody bounds a call's body; the open API takes small parameter sets.
const sandboxMaxBody = 1 << 20

// SandboxOptions configures a Sandbox. Zero fields take defaults: the demo partner,
// version "v1", DefaultTokenPath, tokens valid 2h, time.Now, no logging.
type SandboxOptions struct {
	ServiceKey    string
	ServiceSecret string
	Version       string
	TokenPath     string // "{version}" substituted, as in Options
	TokenTTL      time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Sandbox is a local stand-in for the 58到家 open API (DESIGN.md "The 58到家 sandbox"):
// the token endpoint and serviceUser/saveServiceUser, updateServiceUser and
// getAllServiceUser, each checking sign, timestamp and accessToken as 58到家 does,
// with service users kept in memory. It is an http.Handler, safe for concurrent use.
type Sandbox struct {
	o         SandboxOptions
	tokenPath string
	userPath  string // /api/{version}/serviceUser/

	mu      sync.Mutex
	tokens  map[string]time.Time // issued token -> expiry
	fetches int
	users   map[string]map[string]json.RawMessage
	order   []string // userIds in the order saved, so getAll answers stably
	nextID  int
}

var _ http.Handler = (*Sandbox)(nil)

// NewSandbox returns a Sandbox.
func NewSandbox(o SandboxOptions) *Sandbox {
	if o.ServiceKey == "" && o.ServiceSecret == "" {
		o.ServiceKey, o.ServiceSecret = DemoServiceKey, DemoServiceSecret
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.TokenPath == "" {
		o.TokenPath = DefaultTokenPath
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sandbox{
		o:         o,
		tokenPath: strings.ReplaceAll(o.TokenPath, "{version}", o.Version),
		userPath:  "/api/" + o.Version + "/serviceUser/",
		tokens:    make(map[string]time.Time),
		users:     make(map[string]map[string]json.RawMessage),
	}
}

// ExpireTokens invalidates every token issued so far, as if 58到家 had revoked them:
// calls with them answer code 2. A test hook.
func (s *Sandbox) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// TokenFetches returns how many tokens the sandbox has issued.
func (s *Sandbox) TokenFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// sandboxAnswer is 58到家's answer form. Code is what callers branch on; HTTP is 200
// for every answer of a known API, as 58到家 does.
type sandboxAnswer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// ServeHTTP answers one call to the stand-in API: HTTP 404 for a path it does not
// know, 405 for a method other than POST, and HTTP 200 with a code for the rest.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api, known := s.route(r.URL.Path)
	if !known {
		s.answer(w, r, http.StatusNotFound, sandboxAnswer{Code: CodeNotFound, Message: "no such API"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.answer(w, r, http.StatusMethodNotAllowed, sandboxAnswer{Code: http.StatusMethodNotAllowed, Message: "use POST"})
		return
	}
	s.answer(w, r, http.StatusOK, s.call(w, r, api))
}

// route names the API a path asks for: "token" or a serviceUser method.
func (s *Sandbox) route(path string) (string, bool) {
	if path == s.tokenPath {
		return "token", true
	}
	m, ok := strings.CutPrefix(path, s.userPath)
	switch {
	case !ok:
		return "", false
	case m == "saveServiceUser", m == "updateServiceUser", m == "getAllServiceUser":
		return m, true
	}
	return "", false
}

func (s *Sandbox) call(w http.ResponseWriter, r *http.Request, api string) sandboxAnswer {
	var body bytes.Buffer
	if _, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, sandboxMaxBody)); err != nil {
		return badParams("could not read the body: " + err.Error())
	}
	params, err := ParseParams(body.Bytes(), r.Header.Get("Content-Type"))
	if err != nil {
		return badParams(err.Error())
	}
	if a, ok := s.checkSystemParams(params, api == "token"); !ok {
		return a
	}
	if api == "token" {
		return s.issueToken()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.tokens[params["accessToken"]]; !ok || !s.o.Now().Before(exp) {
		return sandboxAnswer{Code: CodeInvalidToken, Message: "accessToken invalid"}
	}
	user, err := userObject(params["daojiaJson"], api != "getAllServiceUser")
	if err != nil {
		return badParams(err.Error())
	}
	switch api {
	case "saveServiceUser":
		return s.saveUser(user)
	case "updateServiceUser":
		return s.updateUser(user)
	default:
		list := make([]map[string]json.RawMessage, 0, len(s.order))
		for _, id := range s.order {
			list = append(list, s.users[id])
		}
		// Encoded under s.mu: an update may change these maps once it is released.
		data, err := json.Marshal(list)
		if err != nil {
			return sandboxAnswer{Code: http.StatusInternalServerError, Message: err.Error()}
		}
		return sandboxAnswer{Code: CodeOK, Message: "success", Data: json.RawMessage(data)}
	}
}

// checkSystemParams checks a call as 58到家 does: who it is from, when it was made and
// that it is signed with that partner's secret. The accessToken is checked later, as
// the token endpoint has none.
func (s *Sandbox) checkSystemParams(p map[string]string, tokenRequest bool) (sandboxAnswer, bool) {
	required := []string{"serviceKey", "timestamp", SignParam}
	if !tokenRequest {
		required = append(required, "accessToken")
	}
	for _, k := range required {
		if p[k] == "" {
			return badParams("missing parameter " + k), false
		}
	}
	if f, ok := p["format"]; ok && f != "json" {
		return badParams(`format must be "json"`), false
	}
	if !hmac.Equal([]byte(p["serviceKey"]), []byte(s.o.ServiceKey)) {
		return badParams("unknown serviceKey"), false
	}
	ts, err := ParseTimestamp(p["timestamp"])
	if err != nil {
		return badParams(err.Error()), false
	}
	if d := s.o.Now().Sub(ts); d > sandboxWindow || d < -sandboxWindow {
		return sandboxAnswer{Code: CodeBadTimestamp, Message: "timestamp out of the ±10 minute window"}, false
	}
	want := Sign(p, s.o.ServiceSecret)
	if !hmac.Equal([]byte(strings.ToUpper(p[SignParam])), []byte(want)) {
		return sandboxAnswer{Code: CodeBadSign, Message: "sign invalid"}, false
	}
	return sandboxAnswer{}, true
}

func (s *Sandbox) issueToken() sandboxAnswer {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	token := strings.ToUpper(hex.EncodeToString(b[:]))
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, exp := range s.tokens { // keep the map from growing over a long run
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[token] = now.Add(s.o.TokenTTL)
	s.fetches++
	return sandboxAnswer{Code: CodeOK, Message: "success", Data: map[string]any{
		"accessToken": token,
		"expiresIn":   int64(s.o.TokenTTL / time.Second),
	}}
}

// saveUser adds a service user, assigning a userId when the caller gave none.
// s.mu is held.
func (s *Sandbox) saveUser(u map[string]json.RawMessage) sandboxAnswer {
	id, ok := userID(u)
	if !ok {
		for {
			s.nextID++
			id = strconv.Itoa(s.nextID)
			if _, taken := s.users[id]; !taken {
				break
			}
		}
		u["userId"], _ = json.Marshal(id)
	}
	if _, exists := s.users[id]; !exists {
		s.order = append(s.order, id)
	}
	s.users[id] = u
	return sandboxAnswer{Code: CodeOK, Message: "success", Data: map[string]string{"userId": id}}
}

// updateUser merges the given fields into a saved user. s.mu is held.
func (s *Sandbox) updateUser(u map[string]json.RawMessage) sandboxAnswer {
	id, ok := userID(u)
	if !ok {
		return badParams("daojiaJson.userId is required")
	}
	saved, exists := s.users[id]
	if !exists {
		return sandboxAnswer{Code: CodeNotFound, Message: "no service user " + strconv.Quote(id)}
	}
	for k, v := range u {
		saved[k] = v
	}
	return sandboxAnswer{Code: CodeOK, Message: "success", Data: map[string]string{"userId": id}}
}

// userObject reads daojiaJson as an object; required says it must be present.
func userObject(daojiaJSON string, required bool) (map[string]json.RawMessage, error) {
	if daojiaJSON == "" {
		if required {
			return nil, errors.New("daojiaJson is required")
		}
		return nil, nil
	}
	var u map[string]json.RawMessage
	if err := json.Unmarshal([]byte(daojiaJSON), &u); err != nil || u == nil {
		return nil, errors.New("daojiaJson must be a JSON object")
	}
	return u, nil
}

// userID is u's userId as a string, whether given as a string or a number.
func userID(u map[string]json.RawMessage) (string, bool) {
	id := scalarText(u["userId"])
	return id, id != ""
}

func badParams(msg string) sandboxAnswer {
	return sandboxAnswer{Code: CodeBadParams, Message: "bad parameters: " + msg}
}

func (s *Sandbox) answer(w http.ResponseWriter, r *http.Request, status int, a sandboxAnswer) {
	body, err := json.Marshal(a)
	if err != nil { // only a bug in the sandbox gets here
		body = fmt.Appendf(nil, `{"code":500,"message":%q}`, err.Error())
	}
	// Never the parameters: they hold the sign and the accessToken.
	s.o.Logger.LogAttrs(r.Context(), slog.LevelDebug, "sandbox call",
		slog.String("path", r.URL.Path), slog.Int("status", status), slog.Int("code", a.Code))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

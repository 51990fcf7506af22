package wechat

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/signgate/signgate/secret"
)

// The demo mini-program the sandbox knows when it is given none.
const (
	DemoAppID  = "wx0123456789abcdef"
	DemoSecret = "sandbox-secret"
)

// The sandbox's paths: WeChat's, and the one that mints codes.
const (
	SandboxLoginPath = "/sns/jscode2session"
	SandboxCodesPath = "/sandbox/wechat/codes"
)

// Defaults of SandboxOptions.
const (
	DefaultSandboxCodeTTL  = 5 * time.Minute // how long WeChat honours a wx.login code
	DefaultSandboxMaxCodes = 10_000
)

// sandboxMaxBody bounds a mint request's body.
const sandboxMaxBody = 4 << 10

// SandboxOptions configures a Sandbox. Zero fields take the defaults named beside
// them.
type SandboxOptions struct {
	AppID    string        // the mini-program's AppID; DemoAppID (and DemoSecret) with neither set
	Secret   secret.Secret // its AppSecret
	CodeTTL  time.Duration // how long a minted code can be exchanged; DefaultSandboxCodeTTL
	MaxCodes int           // codes kept, used ones until they expire included; DefaultSandboxMaxCodes
	Now      func() time.Time
	Logger   *slog.Logger // nil discards
}

// SandboxCode is what a minted code logs in as, and the JSON that
// POST /sandbox/wechat/codes takes.
type SandboxCode struct {
	// OpenID is the user's openid; when empty, one is derived from the AppID and
	// User, the same for the same pair, as WeChat's openid is per app and user.
	OpenID  string `json:"openid,omitempty"`
	UnionID string `json:"unionid,omitempty"` // none when empty
	User    string `json:"user,omitempty"`    // names the user OpenID is derived from; "demo"
	// Errcode, when not 0, is what exchanging the code answers instead (45011,
	// -1, …), to try how a caller copes.
	Errcode int `json:"errcode,omitempty"`
}

// Sandbox is a local stand-in for WeChat's jscode2session, for demos and tests.
// It answers GET /sns/jscode2session as WeChat does for its one AppID and
// AppSecret, and POST /sandbox/wechat/codes with a code wx.login would have given:
// {"openid":"o-alice"} → {"code":"…","openid":"o-alice"}. Codes are good once and
// for CodeTTL. It is an http.Handler, safe for concurrent use.
type Sandbox struct {
	o SandboxOptions

	mu    sync.Mutex
	codes map[string]*sandboxCode
}

type sandboxCode struct {
	SandboxCode
	expires time.Time
	used    bool
}

var _ http.Handler = (*Sandbox)(nil)

// NewSandbox returns a Sandbox.
func NewSandbox(o SandboxOptions) *Sandbox {
	if o.AppID == "" && o.Secret.IsZero() {
		o.AppID, o.Secret = DemoAppID, DemoSecret
	}
	if o.CodeTTL <= 0 {
		o.CodeTTL = DefaultSandboxCodeTTL
	}
	if o.MaxCodes <= 0 {
		o.MaxCodes = DefaultSandboxMaxCodes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sandbox{o: o, codes: make(map[string]*sandboxCode)}
}

// Mount serves the sandbox's two paths on mux.
func (s *Sandbox) Mount(mux *http.ServeMux) {
	mux.Handle(SandboxLoginPath, s)
	mux.Handle(SandboxCodesPath, s)
}

// AppID is the AppID the sandbox answers for.
func (s *Sandbox) AppID() string { return s.o.AppID }

// Mint returns a new code that logs in as c, and c's openid.
func (s *Sandbox) Mint(c SandboxCode) (code, openid string, err error) {
	if c.User == "" {
		c.User = "demo"
	}
	if c.OpenID == "" {
		c.OpenID = DeriveOpenID(s.o.AppID, c.User)
	}
	if !printable(c.OpenID, maxIDBytes) || (c.UnionID != "" && !printable(c.UnionID, maxIDBytes)) {
		return "", "", fmt.Errorf("openid and unionid must be printable ASCII of at most %d bytes", maxIDBytes)
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	code = hex.EncodeToString(b[:])
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.codes) >= s.o.MaxCodes {
		for k, v := range s.codes {
			if !now.Before(v.expires) {
				delete(s.codes, k)
			}
		}
	}
	if len(s.codes) >= s.o.MaxCodes {
		return "", "", fmt.Errorf("%d codes are outstanding; exchange some or wait %v", len(s.codes), s.o.CodeTTL)
	}
	s.codes[code] = &sandboxCode{SandboxCode: c, expires: now.Add(s.o.CodeTTL)}
	return code, c.OpenID, nil
}

// DeriveOpenID is the openid the sandbox gives user of appid when a code is minted
// without one: "o" and 27 characters, like WeChat's.
func DeriveOpenID(appid, user string) string {
	sum := sha256.Sum256([]byte("signgate-sandbox\x00" + appid + "\x00" + user))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

// ServeHTTP answers the sandbox's two paths, and 404 for any other.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case SandboxLoginPath:
		if r.Method != http.MethodGet {
			s.refuse(w, r, http.StatusMethodNotAllowed, "use GET", http.MethodGet)
			return
		}
		s.login(w, r)
	case SandboxCodesPath:
		if r.Method != http.MethodPost {
			s.refuse(w, r, http.StatusMethodNotAllowed, "use POST", http.MethodPost)
			return
		}
		s.mint(w, r)
	default:
		s.refuse(w, r, http.StatusNotFound, "no such API", "")
	}
}

// login answers jscode2session, checking what WeChat checks in the order it does.
func (s *Sandbox) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	appid, sec, code := q.Get("appid"), q.Get("secret"), q.Get("js_code")
	switch {
	case appid == "":
		s.fail(w, r, errcodeMissingAppID, "appid missing")
	case sec == "":
		s.fail(w, r, errcodeMissingSecret, "appsecret missing")
	case code == "":
		s.fail(w, r, errcodeMissingCode, "missing code")
	case q.Get("grant_type") != "authorization_code":
		s.fail(w, r, errcodeBadGrantType, "invalid grant_type")
	case appid != s.o.AppID:
		s.fail(w, r, errcodeInvalidAppID, "invalid appid")
	case subtle.ConstantTimeCompare([]byte(sec), []byte(s.o.Secret.Reveal())) != 1:
		s.fail(w, r, errcodeInvalidSecret, "invalid appsecret")
	default:
		s.exchange(w, r, code)
	}
}

func (s *Sandbox) exchange(w http.ResponseWriter, r *http.Request, code string) {
	now := s.o.Now()
	s.mu.Lock()
	c := s.codes[code]
	var used bool
	if c != nil && now.Before(c.expires) {
		used, c.used = c.used, true
	}
	s.mu.Unlock()
	switch {
	case c == nil || !now.Before(c.expires):
		s.fail(w, r, errcodeInvalidCode, "invalid code")
	case used:
		s.fail(w, r, errcodeCodeUsed, "code been used")
	case c.Errcode != 0:
		s.fail(w, r, c.Errcode, errmsgs[c.Errcode])
	default:
		var key [16]byte
		_, _ = rand.Read(key[:])
		a := struct {
			SessionKey string `json:"session_key"`
			OpenID     string `json:"openid"`
			UnionID    string `json:"unionid,omitempty"`
		}{base64.StdEncoding.EncodeToString(key[:]), c.OpenID, c.UnionID}
		body, _ := json.Marshal(a)
		s.write(w, r, http.StatusOK, body, 0)
	}
}

// errmsgs are WeChat's messages for the errcodes a minted code may be made to fail
// with.
var errmsgs = map[int]string{
	errcodeSystemBusy:   "system error",
	errcodeRateLimited:  "api minute-quota reach limit  mustslower  retry next minute",
	errcodeInvalidCode:  "invalid code",
	errcodeCodeUsed:     "code been used",
	40226:               "high risk level user, login intercepted",
	errcodeInvalidAppID: "invalid appid",
}

func (s *Sandbox) mint(w http.ResponseWriter, r *http.Request) {
	var c SandboxCode
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sandboxMaxBody))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&c)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, "the body is larger than 4 KB", "")
			return
		}
		s.refuse(w, r, http.StatusBadRequest, `want {"openid":"…","unionid":"…","user":"…","errcode":0}, all optional: `+err.Error(), "")
		return
	}
	code, openid, err := s.Mint(c)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error(), "")
		return
	}
	out, _ := json.Marshal(map[string]string{"code": code, "openid": openid})
	s.write(w, r, http.StatusOK, out, 0)
}

// fail answers as WeChat does: HTTP 200, the errcode and an errmsg with a rid.
func (s *Sandbox) fail(w http.ResponseWriter, r *http.Request, errcode int, msg string) {
	var rid [8]byte
	_, _ = rand.Read(rid[:])
	if msg == "" {
		msg = "sandbox error"
	}
	body, _ := json.Marshal(struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{errcode, msg + ", rid: " + hex.EncodeToString(rid[:])})
	s.write(w, r, http.StatusOK, body, errcode)
}

// refuse answers a request that is not an API call at all.
func (s *Sandbox) refuse(w http.ResponseWriter, r *http.Request, status int, msg, allow string) {
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	body, _ := json.Marshal(map[string]any{"errcode": status, "errmsg": msg})
	s.write(w, r, status, body, status)
}

func (s *Sandbox) write(w http.ResponseWriter, r *http.Request, status int, body []byte, errcode int) {
	// Never the query: it holds the secret and the code.
	s.o.Logger.LogAttrs(r.Context(), slog.LevelDebug, "wechat sandbox call",
		slog.String("path", r.URL.Path), slog.Int("status", status), slog.Int("errcode", errcode))
	// WeChat labels its JSON text/plain; callers must not depend on the type.
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

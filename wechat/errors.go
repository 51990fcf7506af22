package wechat

import (
	"errors"
	"strconv"
)

// The kinds of failure, one per answer the gateway gives (see the package doc).
// Every error this package returns matches exactly one of them with errors.Is.
var (
	// ErrInvalidCode is a login code WeChat refused (invalid, expired or already
	// used), or one so malformed that it was never sent.
	ErrInvalidCode = errors.New("wechat: invalid login code")
	// ErrRateLimited is WeChat limiting this app's jscode2session calls.
	ErrRateLimited = errors.New("wechat: jscode2session rate limited")
	// ErrUpstream is WeChat answering with an error it gives no better kind for
	// (errcode -1 "system busy", a wrong appid or secret), or with something that is
	// not a jscode2session answer.
	ErrUpstream = errors.New("wechat: jscode2session failed")
	// ErrUnreachable is WeChat out of reach: no connection, or one that broke.
	ErrUnreachable = errors.New("wechat: jscode2session unreachable")
	// ErrTimeout is WeChat not answering in full within the Client's Timeout.
	ErrTimeout = errors.New("wechat: jscode2session timed out")
	// ErrUnavailable is the session store's Redis not answering. Sessions fail
	// closed: this is neither "no session" nor a session.
	ErrUnavailable = errors.New("wechat: session store unavailable")
)

// WeChat's errcodes that this package or its Sandbox tell apart.
const (
	errcodeSystemBusy    = -1
	errcodeBadGrantType  = 40002
	errcodeInvalidAppID  = 40013
	errcodeInvalidCode   = 40029
	errcodeInvalidSecret = 40125
	errcodeCodeUsed      = 40163
	errcodeMissingAppID  = 41002
	errcodeMissingSecret = 41004
	errcodeMissingCode   = 41008
	errcodeRateLimited   = 45011
)

// APIError is WeChat answering jscode2session with a non-zero errcode. It matches
// ErrInvalidCode, ErrRateLimited or ErrUpstream, as the errcode says.
type APIError struct {
	Errcode int
	// Errmsg is WeChat's errmsg, shortened, with the AppSecret and the code taken
	// out should WeChat ever echo what it was sent.
	Errmsg string
	kind   error
}

func (e *APIError) Error() string {
	s := "wechat: jscode2session: errcode " + strconv.Itoa(e.Errcode)
	if e.Errmsg != "" {
		s += ": " + e.Errmsg
	}
	return s
}

// Unwrap returns the kind: ErrInvalidCode, ErrRateLimited or ErrUpstream.
func (e *APIError) Unwrap() error { return e.kind }

// kindOf is the kind of failure an errcode means.
func kindOf(errcode int) error {
	switch errcode {
	case errcodeInvalidCode, errcodeCodeUsed:
		return ErrInvalidCode
	case errcodeRateLimited:
		return ErrRateLimited
	}
	return ErrUpstream
}

// callError is any other failure of a call. Its message is written here, never
// taken whole from net/http, whose *url.Error quotes the URL and so the secret and
// the code.
type callError struct {
	kind  error
	msg   string
	cause error // a context error, or nil
}

func (e *callError) Error() string { return e.msg }

func (e *callError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// Package wechat is WeChat login at the edge (DESIGN.md "End-user identity: WeChat
// login at the edge"): the Client exchanges wx.login's code at jscode2session for
// the user's openid and session_key, the Store keeps the session that follows under
// an opaque token, RefererAppID reads the appid wx.request names, and the Sandbox
// stands in for WeChat in demos and tests.
//
// The gateway maps this package's errors to its answers:
//
//	ErrInvalidCode  401 invalid_code      (bad, used or expired code; errcode 40029, 40163)
//	ErrRateLimited  429 rate_limited      (errcode 45011)
//	ErrUpstream     502 upstream_error    (errcode -1 or any other, an answer that is not one)
//	ErrUnreachable  502 upstream_error    (no connection, a connection that broke)
//	ErrTimeout      504 upstream_timeout  (no whole answer within Timeout)
//	ErrUnavailable  503 state_unavailable (the session store's Redis did not answer)
//
// Neither the AppSecret, nor a login code, nor a session_key is ever part of an
// error or a log line this package writes: the request URL carries the first two,
// so net/http's errors, which quote the URL, are never passed on whole.
package wechat

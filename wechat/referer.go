package wechat

import (
	"net/http"
	"strings"
)

// RefererAppID returns the appid that a wx.request Referer names:
//
//	https://servicewechat.com/{appid}/{version}/page-frame.html
//
// where appid is "wx" and 16 lowercase hex digits and version is the release
// number (0 for the development, trial and review versions) or "devtools" (the
// developer tools). ok is false without exactly one Referer of exactly that form:
// no Referer, two, any other host, scheme, path, a query or a fragment.
func RefererAppID(h http.Header) (appid string, ok bool) {
	values := h.Values("Referer")
	if len(values) != 1 {
		return "", false
	}
	rest, found := strings.CutPrefix(values[0], "https://servicewechat.com/")
	if !found {
		return "", false
	}
	appid, rest, found = strings.Cut(rest, "/")
	if !found || !isAppID(appid) {
		return "", false
	}
	version, found := strings.CutSuffix(rest, "/page-frame.html")
	if !found || !(version == "devtools" || isVersion(version)) {
		return "", false
	}
	return appid, true
}

// isAppID reports whether s is a mini-program AppID: "wx" and 16 lowercase hex
// digits, as config validates wechat.appid.
func isAppID(s string) bool {
	if len(s) != 18 || s[:2] != "wx" {
		return false
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isVersion reports whether s is a release number: 1 to 10 decimal digits.
func isVersion(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

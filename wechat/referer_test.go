package wechat

import (
	"net/http"
	"strings"
	"testing"
)

func TestRefererAppID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		referer []string
		appid   string // "": not ok
	}{
		{"a release", []string{"https://servicewechat.com/wx00112233aabbccdd/12/page-frame.html"}, "wx00112233aabbccdd"},
		{"version 0: development, trial or review", []string{"https://servicewechat.com/wx00112233aabbccdd/0/page-frame.html"}, "wx00112233aabbccdd"},
		{"the developer tools", []string{"https://servicewechat.com/wx00112233aabbccdd/devtools/page-frame.html"}, "wx00112233aabbccdd"},
		{"another app", []string{"https://servicewechat.com/wxffffffffffffffff/3/page-frame.html"}, "wxffffffffffffffff"},
		{"no Referer", nil, ""},
		{"empty", []string{""}, ""},
		{"two Referers", []string{"https://servicewechat.com/wx00112233aabbccdd/1/page-frame.html", "https://servicewechat.com/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"http", []string{"http://servicewechat.com/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"another host", []string{"https://servicewechat.com.evil.example/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"a host that ends the same", []string{"https://evilservicewechat.com/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"a port", []string{"https://servicewechat.com:443/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"user info", []string{"https://x@servicewechat.com/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"upper-case host", []string{"https://SERVICEWECHAT.COM/wx00112233aabbccdd/1/page-frame.html"}, ""},
		{"upper-case appid", []string{"https://servicewechat.com/wx00112233AABBCCDD/1/page-frame.html"}, ""},
		{"appid too short", []string{"https://servicewechat.com/wx00112233aabbcc/1/page-frame.html"}, ""},
		{"appid too long", []string{"https://servicewechat.com/wx00112233aabbccddee/1/page-frame.html"}, ""},
		{"appid not hex", []string{"https://servicewechat.com/wx00112233aabbccdg/1/page-frame.html"}, ""},
		{"appid without wx", []string{"https://servicewechat.com/tt00112233aabbccdd/1/page-frame.html"}, ""},
		{"no version", []string{"https://servicewechat.com/wx00112233aabbccdd/page-frame.html"}, ""},
		{"empty version", []string{"https://servicewechat.com/wx00112233aabbccdd//page-frame.html"}, ""},
		{"version a word", []string{"https://servicewechat.com/wx00112233aabbccdd/trial/page-frame.html"}, ""},
		{"version with a sign", []string{"https://servicewechat.com/wx00112233aabbccdd/-1/page-frame.html"}, ""},
		{"version 11 digits", []string{"https://servicewechat.com/wx00112233aabbccdd/12345678901/page-frame.html"}, ""},
		{"two segments of version", []string{"https://servicewechat.com/wx00112233aabbccdd/1/2/page-frame.html"}, ""},
		{"another page", []string{"https://servicewechat.com/wx00112233aabbccdd/1/index.html"}, ""},
		{"a query", []string{"https://servicewechat.com/wx00112233aabbccdd/1/page-frame.html?x=1"}, ""},
		{"a fragment", []string{"https://servicewechat.com/wx00112233aabbccdd/1/page-frame.html#x"}, ""},
		{"a trailing slash", []string{"https://servicewechat.com/wx00112233aabbccdd/1/page-frame.html/"}, ""},
		{"percent-encoded", []string{"https://servicewechat.com/wx00112233aabbccdd%2F1/page-frame.html"}, ""},
		{"spaces around", []string{" https://servicewechat.com/wx00112233aabbccdd/1/page-frame.html"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.referer {
				h.Add("Referer", v)
			}
			appid, ok := RefererAppID(h)
			if ok != (tc.appid != "") || appid != tc.appid {
				t.Errorf("RefererAppID(%q) = %q, %v; want %q", tc.referer, appid, ok, tc.appid)
			}
		})
	}
}

func FuzzRefererAppID(f *testing.F) {
	for _, s := range []string{
		"https://servicewechat.com/wx00112233aabbccdd/12/page-frame.html",
		"https://servicewechat.com/wx00112233aabbccdd/devtools/page-frame.html",
		"https://servicewechat.com/wx00112233aabbccdd//page-frame.html",
		"https://servicewechat.com/wx00112233aabbccdd/page-frame.html",
		"https://servicewechat.com/",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, referer string) {
		appid, ok := RefererAppID(http.Header{"Referer": {referer}})
		if !ok {
			if appid != "" {
				t.Fatalf("not ok, yet appid %q", appid)
			}
			return
		}
		version, found := strings.CutPrefix(referer, "https://servicewechat.com/"+appid+"/")
		if !isAppID(appid) || !found {
			t.Fatalf("appid %q from %q", appid, referer)
		}
		version, found = strings.CutSuffix(version, "/page-frame.html")
		if !found || !(version == "devtools" || isVersion(version)) {
			t.Fatalf("version %q from %q", version, referer)
		}
	})
}

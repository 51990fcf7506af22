package daojia

import (
	"net/url"
	"strings"
)

// The relay must never send a call, which carries the cached accessToken, to 58到家's
// token endpoint: that would hand the token to any caller allowed on the relay. The
// guard compares paths as a lenient web server reads them, since 58到家's server, or
// any proxy in front of it, may take another spelling for the same endpoint.

// endpointKey is p as a lenient web server may read it: percent-decoded (up to three
// times, for servers and proxies that decode again), '\' taken for '/', servlet path
// parameters (";jsessionid=…", also "..;") dropped, empty and dot segments resolved,
// spaces and trailing dots trimmed from segments, and the last segment's suffix
// (".json", ".do") dropped, as suffix-matching frameworks do. Compare keys with
// strings.EqualFold: letter case never tells two endpoints apart.
func endpointKey(p string) string {
	for range 3 {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, `\`, "/")
	var segs []string
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		seg = strings.TrimSpace(seg)
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			continue
		}
		if seg = strings.TrimRight(seg, ". "); seg != "" {
			segs = append(segs, seg)
		}
	}
	if n := len(segs); n > 0 {
		if i := strings.LastIndexByte(segs[n-1], '.'); i > 0 {
			segs[n-1] = segs[n-1][:i]
		}
	}
	return "/" + strings.Join(segs, "/")
}

// tokenGuard knows the token endpoint's key and, for the relay's hot path, the part
// of it under the API path.
type tokenGuard struct {
	apiPath  string // {base path}/api/{version}/, escaped as sent
	tokenKey string // endpointKey of {base path}{token path}
	// fast is set when tokenKey is ASCII: then a path validPath accepts (ASCII,
	// nothing to decode, resolve or trim) reaches the token endpoint exactly when
	// it equals tail, ignoring case, and needs no key of its own.
	fast bool
	tail string // tokenKey after the API path's key and '/'; "" when not under it
}

func newTokenGuard(basePath, version, tokenPath string) tokenGuard {
	g := tokenGuard{
		apiPath:  basePath + "/api/" + version + "/",
		tokenKey: endpointKey(basePath + tokenPath),
		fast:     isASCII(basePath + tokenPath),
	}
	apiKey := endpointKey(g.apiPath) + "/"
	if g.fast && len(g.tokenKey) > len(apiKey) && strings.EqualFold(g.tokenKey[:len(apiKey)], apiKey) {
		g.tail = g.tokenKey[len(apiKey):]
	}
	return g
}

// isTokenEndpoint reports whether calling path (what follows /api/{version}/) would
// reach the token endpoint, in any spelling a lenient server reads as it.
func (g *tokenGuard) isTokenEndpoint(path string) bool {
	if g.fast && validPath(path) {
		return g.tail != "" && strings.EqualFold(path, g.tail)
	}
	return strings.EqualFold(endpointKey(g.apiPath+path), g.tokenKey)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

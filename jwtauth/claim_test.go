package jwtauth

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestUserClaim(t *testing.T) {
	hs := []byte(hsSecret)
	byDefault := hsVerifier(t)
	byUID := hsVerifier(t, func(o *Options) { o.Claim = "uid" })
	cases := []struct {
		name string
		v    *Verifier
		c    jwt.MapClaims
		user string // "" for refused
		want error
	}{
		{"sub by default", byDefault, claims(), testSub, nil},
		{"configured claim", byUID, claims(set("uid", "u-7")), "u-7", nil},
		{"Chinese name", byDefault, claims(set("sub", "业主-张三")), "业主-张三", nil},
		{"provider-prefixed id", byDefault, claims(set("sub", "auth0|5f7c8ec7c33c6c004bbafe82")), "auth0|5f7c8ec7c33c6c004bbafe82", nil},
		{"exactly MaxUserBytes", byDefault, claims(set("sub", strings.Repeat("a", MaxUserBytes))), strings.Repeat("a", MaxUserBytes), nil},

		{"configured claim missing although sub is there", byUID, claims(), "", byUID.errs.missing},
		{"sub missing", byDefault, claims(drop("sub")), "", byDefault.errs.missing},
		{"sub empty", byDefault, claims(set("sub", "")), "", byDefault.errs.missing},
		{"sub null", byDefault, claims(set("sub", nil)), "", byDefault.errs.missing},
		{"sub a number", byDefault, claims(set("sub", 42)), "", byDefault.errs.notString},
		{"sub true", byDefault, claims(set("sub", true)), "", byDefault.errs.notString},
		{"sub a list", byDefault, claims(set("sub", []string{testSub})), "", byDefault.errs.notString},
		{"sub an object", byDefault, claims(set("sub", map[string]string{"id": testSub})), "", byDefault.errs.notString},
		{"longer than MaxUserBytes", byDefault, claims(set("sub", strings.Repeat("a", MaxUserBytes+1))), "", byDefault.errs.tooLong},
		{"multi-byte, longer than MaxUserBytes in bytes", byDefault, claims(set("sub", strings.Repeat("张", MaxUserBytes/3+1))), "", byDefault.errs.tooLong},
		{"newline (header injection)", byDefault, claims(set("sub", "owner\r\nX-Admin: 1")), "", byDefault.errs.badChar},
		{"NUL", byDefault, claims(set("sub", "owner\x00")), "", byDefault.errs.badChar},
		{"tab", byDefault, claims(set("sub", "owner\t1")), "", byDefault.errs.badChar},
		{"DEL", byDefault, claims(set("sub", "owner\x7f")), "", byDefault.errs.badChar},
		{"C1 control (NEL)", byDefault, claims(set("sub", "owner\u0085")), "", byDefault.errs.badChar},
		{"bidi override", byDefault, claims(set("sub", "owner\u202e24")), "", byDefault.errs.badChar},
		{"zero-width space", byDefault, claims(set("sub", "own\u200ber")), "", byDefault.errs.badChar},
		{"line separator", byDefault, claims(set("sub", "owner\u2028")), "", byDefault.errs.badChar},
		{"bytes that are not UTF-8", byDefault, claims(set("sub", "owner\xff")), "", byDefault.errs.badChar},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := mint(t, jwt.SigningMethodHS256, hs, "", c.c)
			user, err := c.v.Verify(t.Context(), raw)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if user != c.user {
					t.Errorf("user %q, want %q", user, c.user)
				}
				return
			}
			wantRefused(t, user, err, c.want, raw)
			if err != c.want {
				t.Errorf("error %q, want %q", err, c.want)
			}
			if !strings.Contains(err.Error(), `claim "`) {
				t.Errorf("error %q does not name the claim", err)
			}
		})
	}
}

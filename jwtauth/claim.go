package jwtauth

import (
	"fmt"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// claimErrors are the refusals of an unusable user claim, built once per Verifier
// because they name the configured claim.
type claimErrors struct {
	missing, notString, tooLong, badChar error
}

func newClaimErrors(claim string) claimErrors {
	return claimErrors{
		missing:   fmt.Errorf("%w: claim %q is missing or empty", ErrInvalid, claim),
		notString: fmt.Errorf("%w: claim %q is not a string", ErrInvalid, claim),
		tooLong:   fmt.Errorf("%w: claim %q is longer than %d bytes", ErrInvalid, claim, MaxUserBytes),
		badChar:   fmt.Errorf("%w: claim %q holds a control or format character", ErrInvalid, claim),
	}
}

// user returns the claim that names the user. It becomes an upstream header, a log
// field and a rate-limit key, so it must be short and printable: no C0/C1 controls,
// no format characters (bidi overrides, zero-width joiners) and no line separators,
// and no U+FFFD, which is what the JSON decoder made of bytes that were not UTF-8.
func (v *Verifier) user(claims jwt.MapClaims) (string, error) {
	raw, ok := claims[v.claim]
	if !ok || raw == nil {
		return "", v.errs.missing
	}
	s, ok := raw.(string)
	switch {
	case !ok:
		return "", v.errs.notString
	case s == "":
		return "", v.errs.missing
	case len(s) > MaxUserBytes:
		return "", v.errs.tooLong
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == unicode.ReplacementChar ||
			r >= 0x80 && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return "", v.errs.badChar
		}
	}
	return s, nil
}

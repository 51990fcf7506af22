package jwtauth

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalid is behind every refusal of the token itself: malformed, a signature that
// does not verify, an algorithm or key that is not allowed, an unknown kid, expired,
// not yet valid, the wrong issuer or audience, or an unusable user claim. The gateway
// answers it with 401 invalid_session.
var ErrInvalid = errors.New("jwtauth: invalid token")

// ErrUnavailable means the token could not be checked because no JWKS has been
// fetched yet (the identity provider was down or answered badly since the gateway
// started). It says nothing about the token; the gateway answers it with 503, and
// the error text says why the last fetch failed.
var ErrUnavailable = errors.New("jwtauth: signing keys unavailable")

// Refusals whose text never varies are built once. None holds any part of the token:
// the jwt library's own messages can quote the alg or the JSON decoder's view of a
// byte, so only its sentinels are wrapped, never its errors.
var (
	errEmpty       = fmt.Errorf("%w: empty", ErrInvalid)
	errTooLong     = fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenBytes)
	errMalformed   = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenMalformed)
	errAlg         = fmt.Errorf("%w: signing algorithm not allowed", ErrInvalid)
	errCrit        = fmt.Errorf("%w: critical header extensions are not supported", ErrInvalid)
	errSignature   = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenSignatureInvalid)
	errUnknownKey  = fmt.Errorf("%w: no key in the JWKS fits its kid and alg", ErrInvalid)
	errKIDRequired = fmt.Errorf("%w: no kid, and the JWKS holds more than %d keys for its alg", ErrInvalid, maxKeysWithoutKID)
	errExpired     = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenExpired)
	errNotYetValid = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenNotValidYet)
	errIssuer      = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenInvalidIssuer)
	errAudience    = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenInvalidAudience)
	errMissingExp  = fmt.Errorf("%w: %w: exp", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	errMissingIss  = fmt.Errorf("%w: %w: iss", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	errMissingAud  = fmt.Errorf("%w: %w: aud", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	errClaims      = fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenInvalidClaims)
)

// refusal turns an error of jwt.Parser.ParseWithClaims, when the keyfunc did not
// fail, into one of the fixed refusals above. lookedUp reports whether the keyfunc
// ran; claims are the claims the parser decoded.
func refusal(err error, lookedUp bool, claims jwt.MapClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case !lookedUp:
		// The parser reaches the keyfunc unless the token is malformed or its alg is
		// missing, unknown to the library, or not one of the pinned ones.
		return errAlg
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return missingClaim(claims)
	}
	return errClaims
}

// missingClaim names the required claim the validator found missing, in the order it
// checks them: exp, aud, iss.
func missingClaim(claims jwt.MapClaims) error {
	if exp, _ := claims.GetExpirationTime(); exp == nil {
		return errMissingExp
	}
	if aud, _ := claims.GetAudience(); len(aud) == 0 || len(aud) == 1 && aud[0] == "" {
		return errMissingAud
	}
	return errMissingIss
}

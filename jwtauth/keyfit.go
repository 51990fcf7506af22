package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
)

// minRSABits is the smallest RSA modulus a token is verified with (NIST SP 800-131A).
const minRSABits = 2048

// keyFits reports whether key is the kind alg is verified with. The jwt library's
// methods already refuse a key of the wrong Go type; this also pins the curve and
// the RSA size, so a JWKS entry can be used only for the alg it can honestly serve,
// whatever the token's header says.
func keyFits(alg string, key any) bool {
	switch alg {
	case "RS256", "PS256":
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N != nil && k.N.BitLen() >= minRSABits
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve != nil && k.Curve.Params().Name == "P-256"
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	}
	return false
}

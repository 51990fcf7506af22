package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to an HS256 and a JWKS Verifier. Neither may
// panic; a token either verifies or is refused with one of the fixed errors; and a
// token that verifies must carry a valid signature by the suite's keys, checked here
// with crypto/* directly rather than through the jwt library.
func FuzzVerify(f *testing.F) {
	k := keys()
	srv := newJWKSServer(f, jwksJSON(ecJWK("ec", &k.ec.PublicKey), edJWK("ed", k.ed.Public().(ed25519.PublicKey))))
	jv, _ := jwksVerifier(f, srv, func(o *Options) { o.Logger = discardLogger() })
	hv := hsVerifier(f)
	hs := []byte(hsSecret)

	for _, seed := range []string{
		mint(f, jwt.SigningMethodHS256, hs, "", claims()),
		mint(f, jwt.SigningMethodES256, k.ec, "ec", claims()),
		mint(f, jwt.SigningMethodES256, k.ec, "", claims()),
		mint(f, jwt.SigningMethodEdDSA, k.ed, "ed", claims(set("sub", "业主"))),
		mint(f, jwt.SigningMethodHS256, hs, "", claims(drop("exp"))),
		mint(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ec", claims()),
		mint(f, jwt.SigningMethodHS256, []byte("an-hmac-key-published-in-the-jwks!!"), "ec", claims()),
		mintHeader(f, jwt.SigningMethodES256, k.ec, map[string]any{"kid": "ec", "crit": []string{"exp"}}, claims()),
		"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
	} {
		f.Add(seed)
	}

	fixed := map[error]bool{}
	for _, err := range []error{errEmpty, errTooLong, errMalformed, errAlg, errCrit, errSignature,
		errUnknownKey, errKIDRequired, errExpired, errNotYetValid, errIssuer, errAudience,
		errMissingExp, errMissingIss, errMissingAud, errClaims} {
		fixed[err] = true
	}
	for _, v := range []*Verifier{jv, hv} {
		for _, err := range []error{v.errs.missing, v.errs.notString, v.errs.tooLong, v.errs.badChar} {
			fixed[err] = true
		}
	}

	f.Fuzz(func(t *testing.T, raw string) {
		for _, c := range []struct {
			name   string
			v      *Verifier
			signed func(alg string, signed, sig []byte) bool
		}{
			{"HS256", hv, func(alg string, signed, sig []byte) bool {
				mac := hmac.New(sha256.New, hs)
				mac.Write(signed)
				return alg == "HS256" && hmac.Equal(sig, mac.Sum(nil))
			}},
			{"JWKS", jv, func(alg string, signed, sig []byte) bool {
				switch alg {
				case "ES256":
					h := sha256.Sum256(signed)
					return len(sig) == 64 && ecdsa.Verify(&k.ec.PublicKey, h[:],
						new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
				case "EdDSA":
					return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), signed, sig)
				}
				return false
			}},
		} {
			user, err := c.v.Verify(t.Context(), raw)
			if err != nil {
				if !fixed[err] {
					t.Fatalf("%s: error %q is not one of the fixed refusals", c.name, err)
				}
				continue
			}
			if !signedWith(raw, c.signed) {
				t.Fatalf("%s: accepted a token the suite's keys did not sign: %q", c.name, raw)
			}
			if user == "" || len(user) > MaxUserBytes || strings.ContainsAny(user, "\x00\r\n") {
				t.Fatalf("%s: accepted user %q", c.name, user)
			}
		}
	})
}

// signedWith reports whether raw is a compact JWS, in its one canonical base64
// spelling, whose signature verify accepts for the alg its header names.
func signedWith(raw string, verify func(alg string, signed, sig []byte) bool) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	enc := base64.RawURLEncoding.Strict()
	hb, err1 := enc.DecodeString(parts[0])
	_, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return false
	}
	// A map, as the jwt library decodes it: a struct field would also take "ALG".
	var header map[string]any
	if json.Unmarshal(hb, &header) != nil {
		return false
	}
	alg, _ := header["alg"].(string)
	return verify(alg, []byte(parts[0]+"."+parts[1]), sig)
}

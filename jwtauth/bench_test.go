package jwtauth

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyES256 is the JWKS hot path: kid lookup, P-256 verification, claims.
func BenchmarkVerifyES256(b *testing.B) {
	k := keys()
	srv := newJWKSServer(b, jwksJSON(ecJWK("ec", &k.ec.PublicKey), rsaJWK("rsa", &k.rsa.PublicKey),
		edJWK("ed", k.ed.Public().(ed25519.PublicKey))))
	v, _ := jwksVerifier(b, srv)
	benchVerify(b, v, mint(b, jwt.SigningMethodES256, k.ec, "ec", claims()))
}

// BenchmarkVerifyHS256 is the shared-secret path: everything but the key lookup.
func BenchmarkVerifyHS256(b *testing.B) {
	benchVerify(b, hsVerifier(b), mint(b, jwt.SigningMethodHS256, []byte(hsSecret), "", claims()))
}

func benchVerify(b *testing.B, v *Verifier, raw string) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

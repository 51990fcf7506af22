package jwtauth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signgate/signgate/secret"
)

func TestVerifyAccepts(t *testing.T) {
	k := keys()
	jv, _ := jwksVerifier(t, newJWKSServer(t, standardJWKS()))
	hv := hsVerifier(t)
	hs := []byte(hsSecret)
	cases := []struct {
		name string
		v    *Verifier
		raw  string
	}{
		{"ES256 from the JWKS", jv, mint(t, jwt.SigningMethodES256, k.ec, "ec", claims())},
		{"RS256 from the JWKS", jv, mint(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims())},
		{"PS256 from the JWKS", jv, mint(t, jwt.SigningMethodPS256, k.rsa, "rsa", claims())},
		{"RS256 with a JWK that names RS256", jv, mint(t, jwt.SigningMethodRS256, k.rsa, "rsa-rs256-only", claims())},
		{"EdDSA from the JWKS", jv, mint(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims())},
		{"ES256 without a kid, one P-256 key in the JWKS", jv, mint(t, jwt.SigningMethodES256, k.ec, "", claims())},
		{"RS256 without a kid, two RSA keys in the JWKS", jv, mint(t, jwt.SigningMethodRS256, k.rsa, "", claims())},
		{"HS256 with the secret", hv, mint(t, jwt.SigningMethodHS256, hs, "", claims())},
		{"HS256 with a kid", hv, mint(t, jwt.SigningMethodHS256, hs, "v1", claims())},
		{"aud a list that holds ours", jv, mint(t, jwt.SigningMethodES256, k.ec, "ec", claims(set("aud", []string{"billing", testAud})))},
		{"expired within the leeway", jv, mint(t, jwt.SigningMethodES256, k.ec, "ec", claims(set("exp", testNow.Add(-10*time.Second).Unix())))},
		{"nbf within the leeway", hv, mint(t, jwt.SigningMethodHS256, hs, "", claims(set("nbf", testNow.Add(10*time.Second).Unix())))},
		{"nbf passed", hv, mint(t, jwt.SigningMethodHS256, hs, "", claims(set("nbf", testNow.Add(-time.Minute).Unix())))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user, err := c.v.Verify(t.Context(), c.raw)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if user != testSub {
				t.Errorf("user %q, want %q", user, testSub)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, standardJWKS())
	jv, logs := jwksVerifier(t, srv)
	hv := hsVerifier(t)
	hs := []byte(hsSecret)
	es := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodES256, k.ec, "ec", c) }
	hs256 := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, hs, "", c) }

	// The RSA public key as an HMAC secret, in the spellings an attacker would try.
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkixPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})

	// A jku that points at the attacker's own JWKS, serving the attacker's key.
	evil := newJWKSServer(t, jwksJSON(ecJWK("evil", &k.ec2.PublicKey)))

	valid := es(claims())
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64([]byte(`{"iss":"`+testIss+`","aud":"`+testAud+`","sub":"admin","exp":`+
		"9999999999}")) + "." + parts[2]

	cases := []struct {
		name string
		v    *Verifier
		raw  string
		want error
	}{
		// Signatures.
		{"forged: ES256 signed by another key under the known kid", jv, mint(t, jwt.SigningMethodES256, k.ec2, "ec", claims()), errSignature},
		{"payload changed after signing", jv, tampered, errSignature},
		{"HS256 signed with another secret", hv, mint(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"), "", claims()), errSignature},
		{"embedded jwk header with the attacker's key", jv, mintHeader(t, jwt.SigningMethodES256, k.ec2, map[string]any{"jwk": ecJWK("", &k.ec2.PublicKey)}, claims()), errSignature},
		{"jku header to the attacker's JWKS", jv, mintHeader(t, jwt.SigningMethodES256, k.ec2, map[string]any{"kid": "evil", "jku": evil.URL}, claims()), errUnknownKey},

		// Algorithms.
		{"alg none to the JWKS verifier", jv, mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ec", claims()), errAlg},
		{"alg none to the HS256 verifier", hv, mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims()), errAlg},
		{"alg NONE", jv, mintRaw(map[string]any{"alg": "NONE", "kid": "ec"}, claims(), ""), errAlg},
		{"no alg", jv, mintRaw(map[string]any{"typ": "JWT", "kid": "ec"}, claims(), parts[2]), errAlg},
		{"alg confusion: HS256 keyed with the RSA key's PKIX PEM", jv, mint(t, jwt.SigningMethodHS256, pkixPEM, "rsa", claims()), errAlg},
		{"alg confusion: HS256 keyed with the RSA key's PKCS#1 PEM", jv, mint(t, jwt.SigningMethodHS256, pkcs1PEM, "rsa", claims()), errAlg},
		{"alg confusion: HS256 keyed with the RSA key's DER", jv, mint(t, jwt.SigningMethodHS256, der, "rsa", claims()), errAlg},
		{"HS256 keyed with a symmetric key the JWKS publishes", jv, mint(t, jwt.SigningMethodHS256, []byte("an-hmac-key-published-in-the-jwks!!"), "oct", claims()), errAlg},
		{"HS256 to the JWKS verifier", jv, hs256(claims()), errAlg},
		{"ES384, not pinned", jv, mint(t, jwt.SigningMethodES384, k.ec384, "ec384", claims()), errAlg},
		{"RS256 to the HS256 verifier", hv, mint(t, jwt.SigningMethodRS256, k.rsa, "", claims()), errAlg},
		{"ES256 to the HS256 verifier", hv, mint(t, jwt.SigningMethodES256, k.ec, "", claims()), errAlg},
		{"EdDSA to the HS256 verifier", hv, mint(t, jwt.SigningMethodEdDSA, k.ed, "", claims()), errAlg},

		// Keys.
		{"ES256 under the RSA key's kid", jv, mint(t, jwt.SigningMethodES256, k.ec, "rsa", claims()), errUnknownKey},
		{"RS256 under the EC key's kid", jv, mint(t, jwt.SigningMethodRS256, k.rsa, "ec", claims()), errUnknownKey},
		{"PS256 under a JWK that names RS256", jv, mint(t, jwt.SigningMethodPS256, k.rsa, "rsa-rs256-only", claims()), errUnknownKey},
		{"ES256 under a JWK for encryption", jv, mint(t, jwt.SigningMethodES256, k.ec2, "ec-enc", claims()), errUnknownKey},
		{"RS256 with a 1024-bit key", jv, mint(t, jwt.SigningMethodRS256, k.rsa1024, "rsa1024", claims()), errUnknownKey},
		{"unknown kid", jv, mint(t, jwt.SigningMethodES256, k.ec, "nope", claims()), errUnknownKey},
		{"kid not a string", jv, mintHeader(t, jwt.SigningMethodES256, k.ec, map[string]any{"kid": 7}, claims()), errUnknownKey},
		{"crit header", jv, mintHeader(t, jwt.SigningMethodES256, k.ec, map[string]any{"kid": "ec", "crit": []string{"exp"}, "exp": 1}, claims()), errCrit},
		{"crit header to the HS256 verifier", hv, mintHeader(t, jwt.SigningMethodHS256, hs, map[string]any{"crit": []string{"b64"}, "b64": false}, claims()), errCrit},

		// Claims.
		{"expired", jv, es(claims(set("exp", testNow.Add(-time.Minute).Unix()))), errExpired},
		{"expired, HS256", hv, hs256(claims(set("exp", testNow.Add(-time.Minute).Unix()))), errExpired},
		{"not yet valid", jv, es(claims(set("nbf", testNow.Add(time.Minute).Unix()))), errNotYetValid},
		{"no exp", jv, es(claims(drop("exp"))), errMissingExp},
		{"no exp, HS256", hv, hs256(claims(drop("exp"))), errMissingExp},
		{"exp not a number", jv, es(claims(set("exp", "tomorrow"))), errClaims},
		{"wrong iss", jv, es(claims(set("iss", "https://evil.example.com"))), errIssuer},
		{"no iss", jv, es(claims(drop("iss"))), errMissingIss},
		{"wrong aud", jv, es(claims(set("aud", "billing"))), errAudience},
		{"aud a list without ours", jv, es(claims(set("aud", []string{"billing", "crm"}))), errAudience},
		{"no aud", hv, hs256(claims(drop("aud"))), errMissingAud},
		{"empty aud", jv, es(claims(set("aud", ""))), errMissingAud},

		// Shape.
		{"empty", jv, "", errEmpty},
		{"longer than MaxTokenBytes", jv, es(claims(set("pad", strings.Repeat("x", MaxTokenBytes)))), errTooLong},
		{"one segment", jv, "eyJhbGciOiJFUzI1NiJ9", errMalformed},
		{"four segments", jv, valid + ".e30", errMalformed},
		{"header not base64", jv, "!!!." + parts[1] + "." + parts[2], errMalformed},
		{"header not JSON", jv, b64([]byte("not json")) + "." + parts[1] + "." + parts[2], errMalformed},
		{"claims not an object", jv, parts[0] + "." + b64([]byte(`["sub"]`)) + "." + parts[2], errMalformed},
		{"signature padded", jv, valid + "==", errMalformed},
		{"signature in a second spelling", jv, parts[0] + "." + parts[1] + "." + respell(parts[2]), errMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user, err := c.v.Verify(t.Context(), c.raw)
			wantRefused(t, user, err, c.want, c.raw)
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("refusal %q is also ErrUnavailable", err)
			}
			checkNoLeak(t, "log", logs.String(), c.raw)
		})
	}
	if n := evil.hits.Load(); n != 0 {
		t.Errorf("the jku server was fetched %d times", n)
	}
}

// mintHeader signs c with key and these header fields besides alg and typ.
func mintHeader(t testing.TB, m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return s
}

// respell changes the unused low bits of seg's last character: lenient base64
// decodes the result to the same bytes, so without strict decoding one token would
// have several spellings.
func respell(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[i|1])
}

func TestNewRefuses(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no key source", Options{Issuer: testIss}, "set JWKSURL or HS256Secret"},
		{"both key sources", Options{JWKSURL: "https://auth.example.com/jwks", HS256Secret: hsSecret}, "not both"},
		{"short secret", Options{HS256Secret: secret.Secret(hsSecret[:31])}, "at least 32 bytes"},
		{"JWKS URL not http", Options{JWKSURL: "ftp://user:hunter2pw@auth.example.com/jwks"}, "want an http or https URL"},
		{"JWKS URL without a host", Options{JWKSURL: "https:///jwks"}, "want an http or https URL"},
		{"JWKS URL not a URL", Options{JWKSURL: "://hunter2pw"}, "want an http or https URL"},
		{"negative leeway", Options{HS256Secret: hsSecret, Leeway: -time.Second}, "Leeway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := New(c.o)
			if err == nil {
				v.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
			checkNoLeak(t, "error", err.Error(), "")
			if strings.Contains(err.Error(), "hunter2pw") {
				t.Errorf("error %q holds the URL's credentials", err)
			}
		})
	}
}

func TestNoAudienceWarns(t *testing.T) {
	_, logs := jwksVerifier(t, newJWKSServer(t, standardJWKS()), func(o *Options) { o.Audience = "" })
	if !strings.Contains(logs.String(), "audience not configured") {
		t.Errorf("no warning about the missing audience in the log:\n%s", logs)
	}
}

// The HS256 verifier never touches the network and needs no Close, but Close is
// harmless.
func TestHS256Close(t *testing.T) {
	v := hsVerifier(t)
	v.Close()
	if _, err := v.Verify(context.Background(), mint(t, jwt.SigningMethodHS256, []byte(hsSecret), "", claims())); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

package jwtauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signgate/signgate/secret"
)

// The suite's fixed clock and identities.
var (
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testIss = "https://auth.example.com"
	testAud = "signgate"
	testSub = "owner-42"
)

// hsSecret is the HS256 secret; TestMain fails the package if it shows up in output.
const hsSecret = "sgtest-jwt-hs256-secret-Ny63-a9f1c0d2e3b4"

// testKeys are generated once: an RSA key takes long under -race.
type testKeys struct {
	ec, ec2 *ecdsa.PrivateKey
	ec384   *ecdsa.PrivateKey
	rsa     *rsa.PrivateKey
	rsa1024 *rsa.PrivateKey
	ed      ed25519.PrivateKey
}

var keys = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// A JWK is written out by hand, not by jwkset, so the tests do not check jwkset
// against itself.
type jwk map[string]any

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(kid string, pub *ecdsa.PublicKey) jwk {
	point, err := pub.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	xy := point[1:]
	return jwk{"kty": "EC", "crv": pub.Curve.Params().Name, "kid": kid, "use": "sig",
		"x": b64(xy[:len(xy)/2]), "y": b64(xy[len(xy)/2:])}
}

func rsaJWK(kid string, pub *rsa.PublicKey) jwk {
	return jwk{"kty": "RSA", "kid": kid, "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
}

func edJWK(kid string, pub ed25519.PublicKey) jwk {
	return jwk{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pub)}
}

func (j jwk) with(k string, v any) jwk {
	c := jwk{}
	for kk, vv := range j {
		c[kk] = vv
	}
	c[k] = v
	return c
}

func jwksJSON(keys ...jwk) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// standardJWKS is the suite's JWKS: one key of each accepted kind, and the traps.
func standardJWKS() []byte {
	k := keys()
	return jwksJSON(
		ecJWK("ec", &k.ec.PublicKey),
		rsaJWK("rsa", &k.rsa.PublicKey),
		rsaJWK("rsa-rs256-only", &k.rsa.PublicKey).with("alg", "RS256"),
		edJWK("ed", k.ed.Public().(ed25519.PublicKey)),
		ecJWK("ec-enc", &k.ec2.PublicKey).with("use", "enc"),
		ecJWK("ec384", &k.ec384.PublicKey),
		rsaJWK("rsa1024", &k.rsa1024.PublicKey),
		// A JWKS that publishes a symmetric key must not make HS256 acceptable.
		jwk{"kty": "oct", "kid": "oct", "k": b64([]byte("an-hmac-key-published-in-the-jwks!!"))},
	)
}

// jwksServer serves a JWKS that a test can change, fail or slow, and counts hits.
type jwksServer struct {
	*httptest.Server
	hits   atomic.Int64
	body   atomic.Pointer[[]byte]
	status atomic.Int32 // answer with this instead of the JWKS, when not 0
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{}
	s.serve(body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if st := s.status.Load(); st != 0 {
			http.Error(w, "down", int(st))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(body []byte) { s.body.Store(&body) }

// logBuffer collects a Verifier's log lines, to check them for leaks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// jwksVerifier returns a Verifier on srv with the suite's issuer, audience and clock,
// changed by set, and the buffer its logs go to.
func jwksVerifier(t testing.TB, srv *jwksServer, set ...func(*Options)) (*Verifier, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	o := Options{
		Issuer:   testIss,
		Audience: testAud,
		JWKSURL:  srv.URL + "/.well-known/jwks.json",
		Leeway:   30 * time.Second,
		Now:      func() time.Time { return testNow },
		Timeout:  2 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range set {
		f(&o)
	}
	v, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v, logs
}

func hsVerifier(t testing.TB, set ...func(*Options)) *Verifier {
	t.Helper()
	o := Options{
		Issuer:      testIss,
		Audience:    testAud,
		HS256Secret: secret.Secret(hsSecret),
		Leeway:      30 * time.Second,
		Now:         func() time.Time { return testNow },
	}
	for _, f := range set {
		f(&o)
	}
	v, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// claims are a valid token's claims, changed by set.
func claims(set ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": testIss,
		"aud": testAud,
		"sub": testSub,
		"iat": testNow.Add(-time.Minute).Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
	for _, f := range set {
		f(c)
	}
	return c
}

func set(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
func drop(k string) func(jwt.MapClaims)       { return func(c jwt.MapClaims) { delete(c, k) } }

// mint signs c with key; kid goes into the header unless it is empty.
func mint(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("mint %s: %v", m.Alg(), err)
	}
	return s
}

// mintRaw assembles a token from a header and claims as given, with sig as the
// signature segment: for headers the jwt library will not write.
func mintRaw(header, claims any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return b64(h) + "." + b64(c) + "." + sig
}

// checkNoLeak fails t if msg holds the token, any long part of it, or the secret.
func checkNoLeak(t testing.TB, what, msg, raw string) {
	t.Helper()
	if strings.Contains(msg, hsSecret) {
		t.Errorf("%s holds the HS256 secret", what)
	}
	if raw == "" {
		return
	}
	if strings.Contains(msg, raw) {
		t.Errorf("%s holds the token", what)
	}
	for _, part := range strings.Split(raw, ".") {
		if len(part) >= 12 && strings.Contains(msg, part) {
			t.Errorf("%s holds part of the token: %q", what, part)
		}
	}
}

// wantRefused fails t unless err is want (errors.Is) and holds no part of raw.
func wantRefused(t testing.TB, user string, err error, want error, raw string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, user %q; want %v", user, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q; want %q", err, want)
	}
	t.Logf("refused: %v", err)
	if user != "" {
		t.Errorf("user %q returned with an error", user)
	}
	checkNoLeak(t, "error", err.Error(), raw)
}

// eventually polls f until it reports true, failing t after a few seconds.
func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

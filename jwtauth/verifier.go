package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/signgate/signgate/secret"
)

// Defaults, taken when an Options field is zero.
const (
	// DefaultClaim is the claim that names the user.
	DefaultClaim = "sub"
	// DefaultTimeout bounds one JWKS fetch.
	DefaultTimeout = 5 * time.Second
	// DefaultRefreshInterval is how often the JWKS is fetched again.
	DefaultRefreshInterval = time.Hour
	// DefaultUnknownKIDInterval is the least time between fetches caused by unknown kids.
	DefaultUnknownKIDInterval = 30 * time.Second
)

// Bounds on what a Verifier accepts.
const (
	// MaxTokenBytes is the longest token Verify decodes.
	MaxTokenBytes = 8 << 10
	// MaxUserBytes is the longest user claim accepted.
	MaxUserBytes = 256
	// MaxJWKSBytes is the largest JWKS response read.
	MaxJWKSBytes = 1 << 20
	// MaxJWKSKeys is the most usable keys a JWKS may hold.
	MaxJWKSKeys = 100
	// MinHS256SecretBytes is the shortest HS256 secret New takes (RFC 7518 §3.2).
	MinHS256SecretBytes = 32
)

// maxKeysWithoutKID is how many keys a token without a kid is tried against: enough
// for an issuer that rotates with two or three keys published, few enough that such
// a token cannot make the gateway run a verification per key of a large JWKS.
const maxKeysWithoutKID = 4

// Algorithms accepted per key source; see the package doc for why they never mix.
var (
	jwksMethods   = []string{"RS256", "PS256", "ES256", "EdDSA"}
	hs256Methods  = []string{"HS256"}
	errBothKeys   = errors.New("jwtauth: set JWKSURL or HS256Secret, not both")
	errNoKeys     = errors.New("jwtauth: set JWKSURL or HS256Secret to verify tokens with")
	errShortHS256 = fmt.Errorf("jwtauth: HS256Secret: want at least %d bytes", MinHS256SecretBytes)
)

// Options configure a Verifier. Exactly one of JWKSURL and HS256Secret is set.
type Options struct {
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud.
	Audience string
	// JWKSURL is where the issuer publishes its public keys (RS256, PS256, ES256, EdDSA).
	JWKSURL string
	// HS256Secret verifies HS256 tokens; at least MinHS256SecretBytes long.
	HS256Secret secret.Secret
	// Claim names the string claim that identifies the user (DefaultClaim).
	Claim string
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// Now is the clock exp and nbf are checked against (time.Now).
	Now func() time.Time
	// HTTPClient fetches the JWKS. Whatever client is given, its responses are read
	// to at most MaxJWKSBytes and a fetch lasts at most Timeout.
	HTTPClient *http.Client
	// Timeout bounds one JWKS fetch (DefaultTimeout).
	Timeout time.Duration
	// RefreshInterval is how often the JWKS is fetched again (DefaultRefreshInterval).
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches caused by tokens
	// whose kid the Verifier does not hold (DefaultUnknownKIDInterval).
	UnknownKIDInterval time.Duration
	// Logger receives failed JWKS fetches and recoveries (slog.Default()).
	Logger *slog.Logger
}

// Verifier checks end-user JWTs and names their user. It is safe for concurrent use;
// Close stops its background JWKS refresh.
type Verifier struct {
	parser *jwt.Parser
	hs256  []byte  // the HS256 key, nil with a JWKS
	keys   *keySet // the JWKS, nil with HS256
	claim  string
	errs   claimErrors
}

// New returns a Verifier for o. With a JWKSURL it fetches the JWKS before it returns,
// waiting at most o.Timeout; a JWKS that cannot be fetched is not an error here (see
// Verify), so an identity provider that is down does not stop the gateway starting.
func New(o Options) (*Verifier, error) {
	if o.Claim == "" {
		o.Claim = DefaultClaim
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Leeway < 0 {
		return nil, fmt.Errorf("jwtauth: Leeway: want at least 0, got %v", o.Leeway)
	}
	methods := jwksMethods
	switch {
	case o.JWKSURL != "" && !o.HS256Secret.IsZero():
		return nil, errBothKeys
	case o.JWKSURL == "" && o.HS256Secret.IsZero():
		return nil, errNoKeys
	case o.JWKSURL == "":
		if len(o.HS256Secret.Reveal()) < MinHS256SecretBytes {
			return nil, errShortHS256
		}
		methods = hs256Methods
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
		jwt.WithStrictDecoding(),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	v := &Verifier{
		parser: jwt.NewParser(opts...),
		claim:  o.Claim,
		errs:   newClaimErrors(o.Claim),
	}
	if o.JWKSURL == "" {
		v.hs256 = []byte(o.HS256Secret.Reveal())
		return v, nil
	}
	if o.Audience == "" {
		o.Logger.Warn("jwt audience not configured: a token the issuer signed for any of its applications is accepted",
			"issuer", o.Issuer)
	}
	keys, err := newKeySet(o)
	if err != nil {
		return nil, err
	}
	v.keys = keys
	return v, nil
}

// Verify checks raw, a compact JWS without its "Bearer " prefix, and returns the
// user its claim names. Every refusal of the token wraps ErrInvalid (401
// invalid_session); ErrUnavailable means no JWKS could be fetched yet (503). ctx
// bounds a JWKS fetch that an unknown kid may cause.
func (v *Verifier) Verify(ctx context.Context, raw string) (user string, err error) {
	switch {
	case raw == "":
		return "", errEmpty
	case len(raw) > MaxTokenBytes:
		return "", errTooLong
	}
	var (
		lookedUp bool
		keyErr   error
	)
	claims := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		lookedUp = true
		var key any
		key, keyErr = v.key(ctx, t)
		return key, keyErr
	})
	switch {
	case keyErr != nil:
		return "", keyErr
	case err != nil:
		return "", refusal(err, lookedUp, claims)
	}
	return v.user(claims)
}

// key is the jwt.Keyfunc: the key t is verified with, once the parser has checked its
// alg against the pinned ones.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	if v.keys != nil {
		return v.keys.key(ctx, t)
	}
	// jwt.WithValidMethods lets nothing else through; checked again here because
	// handing the secret to any other method is the one mistake this package exists
	// to rule out.
	if t.Method != jwt.SigningMethodHS256 {
		return nil, errAlg
	}
	return v.hs256, nil
}

// Close stops the background JWKS refresh. Verify still works on the keys held.
func (v *Verifier) Close() {
	if v.keys != nil {
		v.keys.stop()
	}
}

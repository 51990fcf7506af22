// Package jwtauth verifies the end-user JWTs a backend already issues and names the
// user a token speaks for (DESIGN.md, "End-user identity"). A Verifier checks either
// against the issuer's JWKS (RS256, PS256, ES256, EdDSA) or against one shared HS256
// secret, never both.
//
// # Threat model
//
// Anyone on the internet can put any string in an Authorization header, so every
// byte of a token is hostile until its signature has been checked, and the header's
// own claims about how to check it (alg, kid) are hostile too. What is pinned, and why:
//
//   - Algorithms are pinned per key source, never taken from the token. With a JWKS
//     only RS256, PS256, ES256 and EdDSA pass; with a secret only HS256. "none" never
//     passes. HS256 never passes with a JWKS: a JWKS is public, and a verifier that
//     let the token choose HMAC would take the issuer's public key bytes as the HMAC
//     secret, which anyone can then sign with (the RS256/HS256 confusion attack). An
//     asymmetric alg never passes with a secret, for the mirror reason.
//   - The key must fit the alg, beyond the jwt library's own type checks: ES256 takes
//     a P-256 key, RS256 and PS256 an RSA key of at least 2048 bits, EdDSA an Ed25519
//     key. A JWK that names its own alg is used only for that alg, and a JWK marked
//     "use": "enc" is never used to verify.
//   - Keys come only from the configured JWKS URL. A token's jku, x5u, jwk and x5c
//     headers are never read (nothing is fetched because a token said so), and a
//     token with a crit header is refused: RFC 7515 asks a verifier to refuse
//     extensions it does not understand, and this one understands none.
//   - Claims: exp is required (a token without it would be valid forever), nbf is
//     honoured, both with the configured leeway and against an injected clock; iss
//     and aud must match when configured. Configure aud with a JWKS: an identity
//     provider signs tokens for every application it serves with the same keys.
//   - The user claim (sub by default) must be a string of 1 to 256 bytes without
//     control, format or line-separator characters, because it becomes an upstream
//     header, a log field and a rate-limit key.
//
// Bounds, so that hostile input costs little: a token longer than MaxTokenBytes is
// refused before it is decoded, and base64 is decoded strictly, so one token has one
// spelling. The JWKS is fetched with a timeout, its response capped at MaxJWKSBytes
// and its keys at MaxJWKSKeys. It is fetched when the Verifier starts, again every
// RefreshInterval (1h), and when a token names a kid it does not hold, at most once
// per UnknownKIDInterval (30s), so a flood of made-up kids makes at most one request
// to the identity provider per interval; the others are refused at once rather than
// queued. A token without a kid is tried against every key that fits its alg, but
// only when there are at most four: with more, tokens must name their kid.
//
// Availability: an identity provider that is down when the gateway starts does not
// stop it starting. Verify answers ErrUnavailable until a JWKS has been fetched, and
// asks again (within the unknown-kid limit) while it has none. A refresh that fails,
// is too large, holds too many keys or none keeps the keys already held: a rotation
// is picked up late, but verification does not stop.
//
// Errors carry fixed texts. They never hold the token, its claims or the secret; an
// ErrUnavailable also says why the last fetch failed, which names only the JWKS URL.
//
// Not covered: revocation (a token is good until exp), replay of a stolen bearer
// token, and tokens bound to a key or channel.
package jwtauth

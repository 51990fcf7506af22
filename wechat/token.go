package wechat

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

const (
	// tokenBytes is a session token's length before encoding: 32 bytes, of which
	// the Store's own tokens give ownerBytes to naming the owner.
	tokenBytes = 32
	// ownerBytes is how much of a token the Store mints names its owner (see
	// newSessionToken); the other 24 bytes, 192 bits, are random: half again what
	// guessing needs, so a token is as good as the store's hash of it.
	ownerBytes = 8
	// tokenLen is a token's length as sent: base64url, unpadded.
	tokenLen = (tokenBytes*8 + 5) / 6
)

// NewToken returns a token of the form session tokens have (32 bytes,
// base64url without padding: 43 characters, fit for an Authorization: Bearer
// header), all of it from crypto/rand: one that names no session. The Store mints
// its own, which name their owner (newSessionToken).
func NewToken() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ownerOf is the number a user's sessions are kept under: the first 8 bytes of the
// SHA-256 of her openid. Two users share one only by a 64-bit coincidence, which
// would make them share a bound (MaxPerUser) and nothing else.
func ownerOf(openid string) uint64 {
	h := sha256.Sum256([]byte(openid))
	return binary.BigEndian.Uint64(h[:ownerBytes])
}

// newSessionToken returns a token for a session of owner: the owner in its first 8
// bytes, 24 bytes from crypto/rand after them. The token names its owner so that a
// lookup or a logout, which have nothing but the token, find the one Redis key that
// holds all of the owner's sessions (see Store), and the one shard of the table; a
// login then sees, and bounds, every session of its user in the step that stores
// the new one. What it gives away is the owner's number, to whoever holds the token:
// the owner herself.
func newSessionToken(owner uint64) string {
	var b [tokenBytes]byte
	binary.BigEndian.PutUint64(b[:ownerBytes], owner)
	_, _ = rand.Read(b[ownerBytes:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenID is what a token is known by: the owner it names, and its SHA-256.
type tokenID struct {
	owner uint64
	hash  [sha256.Size]byte
}

// parseToken returns the owner token names and the SHA-256 of token, the name a
// session is kept under, so that neither a Redis dump nor a heap dump yields a token
// one could call with. ok is false for anything NewToken cannot have made: such a
// token is never a session, and no store is asked about it.
//
// It is on every request's path: the token is copied into an array on the stack,
// as a []byte(token) of more than 32 bytes would be allocated, and checked and
// decoded with a table, without a branch per character.
func parseToken(token string) (id tokenID, ok bool) {
	if len(token) != tokenLen {
		return id, false
	}
	var b [tokenLen]byte
	copy(b[:], token)
	bad := byte(0)
	for _, c := range b {
		bad |= b64[c]
	}
	if bad&0x80 != 0 {
		return id, false
	}
	// The owner is the first 64 bits: ten characters of six, and the top four
	// of the eleventh.
	var owner uint64
	for _, c := range b[:10] {
		owner = owner<<6 | uint64(b64[c])
	}
	owner = owner<<4 | uint64(b64[b[10]]>>2)
	return tokenID{owner: owner, hash: sha256.Sum256(b[:])}, true
}

// b64 is the value of each base64url character, 0xff for any other byte.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

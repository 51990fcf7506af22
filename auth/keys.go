package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/signgate/signgate/route"
	"github.com/signgate/signgate/secret"
)

// Client is an authenticated caller as the gateway knows it.
type Client struct {
	ID        string
	Roles     []string
	Signature string        // none | hmac-sha256 | daojia-md5
	Secret    secret.Secret // the signing secret, when Signature is not none
	// Allow is the union of the client's roles' allow patterns, precomputed so the
	// authorization check is one walk over a slice.
	Allow route.Set
	// Mask is set when one of the client's roles says mask: responses are masked.
	Mask bool
	// UnmaskRole names the first of the client's roles with unmask: it sees full
	// values, overriding Mask, and each such response is audited under that role.
	UnmaskRole string
	// UserExempt is set when one of the client's roles says user_exempt: the
	// client acts for itself (a provider's server, the ops console), not for an
	// owner, and passes user: required routes without one.
	UserExempt bool
}

// Keys finds clients by API key. Only SHA-256 digests of keys are held, so a leaked
// config does not leak keys.
type Keys struct {
	byHash map[[sha256.Size]byte]keyEntry
}

type keyEntry struct {
	sum    [sha256.Size]byte
	client *Client
}

// NewKeys builds the key table from hex SHA-256 digests to clients.
func NewKeys(byHexHash map[string]*Client) (*Keys, error) {
	k := &Keys{byHash: make(map[[sha256.Size]byte]keyEntry, len(byHexHash))}
	for h, c := range byHexHash {
		var sum [sha256.Size]byte
		if n, err := hex.Decode(sum[:], []byte(h)); err != nil || n != sha256.Size {
			return nil, fmt.Errorf("client %q: api_key_sha256 is not 64 hex characters", c.ID)
		}
		k.byHash[sum] = keyEntry{sum, c}
	}
	return k, nil
}

// Lookup returns the client whose key is apiKey. The map finds the candidate by
// digest; the final comparison is constant-time so the check itself leaks no timing.
func (k *Keys) Lookup(apiKey string) (*Client, bool) {
	sum := sha256.Sum256([]byte(apiKey))
	e, ok := k.byHash[sum]
	if !ok || subtle.ConstantTimeCompare(e.sum[:], sum[:]) != 1 {
		return nil, false
	}
	return e.client, true
}

// HashKey returns the hex SHA-256 of an API key, as config.yaml's api_key_sha256 holds it.
func HashKey(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:])
}

// GenerateKey returns a new random API key (32 bytes, URL-safe base64).
func GenerateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "sg_" + base64.RawURLEncoding.EncodeToString(b), nil
}

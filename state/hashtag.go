package state

import "strings"

// tagEscaper keeps a tag's own braces from ending it early: Redis Cluster hashes
// what lies between a key's first '{' and the next '}'.
var tagEscaper = strings.NewReplacer("{", "%7B", "}", "%7D")

// HashTag returns s as a Redis Cluster hash tag, "{s}": keys that carry the same
// tag, first in the key after the prefix, share a slot, so one script may touch
// them together. The gateway tags a client's nonces and the buckets of its rate
// limits alike ("nonce:{client-a}:…", "rl:{client-a}|orders:…"), which lets one
// script check a signed request's nonce and its client's limits on a Cluster too.
// A key_prefix holding a tag of its own puts every key in that one slot instead.
func HashTag(s string) string {
	if strings.ContainsAny(s, "{}") {
		s = tagEscaper.Replace(s)
	}
	return "{" + s + "}"
}

package server

import (
	"math/rand/v2"
	"time"
)

// crockford is the ULID alphabet: ids sort by time and read unambiguously.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newRequestID returns a ULID-shaped id (48-bit milliseconds + 80 random bits). The
// randomness need not be secret, only unique, so the runtime's fast per-thread
// ChaCha8 source serves better than crypto/rand here.
func newRequestID(now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	r1, r2 := rand.Uint64(), rand.Uint64()
	for i := 10; i < 26; i++ {
		if i < 23 {
			b[i] = crockford[r1&31]
			r1 >>= 5
		} else {
			b[i] = crockford[r2&31]
			r2 >>= 5
		}
	}
	// No run of eleven digits: to every scanner, the gateway's own log masker
	// included, that is a phone number, and the id would be starred out of the
	// logs it is meant to join. A run is cut at ten by a letter.
	run := 0
	for i := range b {
		if b[i] > '9' {
			run = 0
			continue
		}
		if run++; run > 10 {
			b[i] = crockford[10+b[i]-'0']
			run = 0
		}
	}
	return string(b[:])
}

// validRequestID reports whether an incoming X-Request-Id may be kept:
// [A-Za-z0-9._:-]{1,128}, so it cannot inject anything into logs or headers.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

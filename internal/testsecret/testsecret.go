// Package testsecret holds the secret values the test suites configure, and the
// checks that those values never show up where a secret must not: logs, answers,
// metrics, errors, and the tests' own output.
//
// A leak check is only as good as its needle. Each value here is distinctive (a
// marker no code, log format or test data would produce by chance) and is used
// only where a secret belongs: a client's hmac secret, daojia.service_secret, the
// Redis password. Finding one anywhere else is a leak, never a coincidence.
package testsecret

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// The configured secrets.
const (
	// PartnerSecret is a signing partner's hmac-sha256 secret (clients[].secret).
	PartnerSecret = "sgtest-partner-secret-Zq81"
	// DaojiaSecret is daojia.service_secret: it signs every call to 58到家 and
	// verifies its callbacks.
	DaojiaSecret = "sgtest-daojia-secret-Kv27"
	// RedisPassword is redis.password.
	RedisPassword = "sgtest-redis-password-Wm54"
	// WeChatSecret is wechat.secret, the mini-program's AppSecret.
	WeChatSecret = "sgtest-wechat-secret-Hp63"
	// JWTSecret is jwt.hs256_secret (32 bytes or more, as HS256 keys must be).
	JWTSecret = "sgtest-jwt-hs256-secret-Ux48-0123456789"
)

// Values are every secret above.
func Values() []string {
	return []string{PartnerSecret, DaojiaSecret, RedisPassword, WeChatSecret, JWTSecret}
}

// Find returns the needles (Values when none are given) that occur in b.
func Find(b []byte, needles ...string) []string {
	if len(needles) == 0 {
		needles = Values()
	}
	var found []string
	for _, n := range needles {
		if n != "" && bytes.Contains(b, []byte(n)) {
			found = append(found, n)
		}
	}
	return found
}

// Watch passes everything the process writes to os.Stdout and os.Stderr through
// unchanged, looking for needles (Values when none are given) on the way. It is
// meant for a TestMain, around m.Run: the testing package prints every t.Log, every
// failure and every -v line there. stop restores the real files, waits for the
// output to drain and returns what was found, each needle once.
//
// A runtime crash (an unrecovered panic) writes to file descriptor 2 directly and
// ends the process, so it is not seen here; the gateway's panic recovery, which
// logs, is checked through the logs instead.
func Watch(needles ...string) (stop func() []string) {
	if len(needles) == 0 {
		needles = Values()
	}
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	tee := func(real *os.File) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			panic(fmt.Sprintf("testsecret: %v", err))
		}
		wg.Go(func() {
			defer r.Close()
			// carry keeps the tail of the previous chunk, so a needle split across
			// two writes is still found.
			var carry []byte
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					_, _ = real.Write(buf[:n])
					window := append(carry, buf[:n]...)
					if found := Find(window, needles...); len(found) > 0 {
						mu.Lock()
						for _, f := range found {
							seen[f] = true
						}
						mu.Unlock()
					}
					if keep := longest - 1; len(window) > keep {
						window = window[len(window)-keep:]
					}
					carry = append(carry[:0], window...)
				}
				if err != nil {
					if err != io.EOF {
						_, _ = fmt.Fprintf(real, "testsecret: reading the output: %v\n", err)
					}
					return
				}
			}
		})
		return w
	}
	realOut, realErr := os.Stdout, os.Stderr
	outW, errW := tee(realOut), tee(realErr)
	os.Stdout, os.Stderr = outW, errW
	return func() []string {
		os.Stdout, os.Stderr = realOut, realErr
		outW.Close()
		errW.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, n := range needles {
			if seen[n] {
				out = append(out, n)
			}
		}
		return out
	}
}

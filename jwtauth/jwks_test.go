package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// wantUser fails t unless raw verifies as testSub.
func wantUser(t testing.TB, v *Verifier, raw string) {
	t.Helper()
	user, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if user != testSub {
		t.Fatalf("user %q, want %q", user, testSub)
	}
}

func TestJWKSRotation(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, jwksJSON(ecJWK("k1", &k.ec.PublicKey)))
	v, logs := jwksVerifier(t, srv, func(o *Options) { o.RefreshInterval = 200 * time.Millisecond })
	old := mint(t, jwt.SigningMethodES256, k.ec, "k1", claims())
	next := mint(t, jwt.SigningMethodES256, k.ec2, "k2", claims())
	wantUser(t, v, old)

	// The issuer publishes its next key and starts signing with it: the first token
	// under the new kid makes the Verifier fetch the JWKS, without waiting for the
	// periodic refresh.
	srv.serve(jwksJSON(ecJWK("k1", &k.ec.PublicKey), ecJWK("k2", &k.ec2.PublicKey)))
	wantUser(t, v, next)
	wantUser(t, v, old)

	// The issuer retires the old key: the periodic refresh drops it.
	srv.serve(jwksJSON(ecJWK("k2", &k.ec2.PublicKey)))
	eventually(t, "the retired key to be dropped", func() bool {
		_, err := v.Verify(context.Background(), old)
		return errors.Is(err, errUnknownKey)
	})
	wantUser(t, v, next)
	checkNoLeak(t, "log", logs.String(), old)
	checkNoLeak(t, "log", logs.String(), next)
}

func TestUnknownKIDFlood(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, jwksJSON(ecJWK("ec", &k.ec.PublicKey)))
	v, _ := jwksVerifier(t, srv) // DefaultUnknownKIDInterval
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	const flood = 300
	tokens := make([]string, flood)
	for i := range tokens {
		tokens[i] = mint(t, jwt.SigningMethodES256, k.ec2, fmt.Sprintf("random-%d", i), claims())
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, flood)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < flood; i += 8 {
				_, errs[i] = v.Verify(context.Background(), tokens[i])
			}
		})
	}
	wg.Wait()
	took := time.Since(start)

	for i, err := range errs {
		if !errors.Is(err, errUnknownKey) {
			t.Fatalf("token %d: %v, want %v", i, err, errUnknownKey)
		}
	}
	// One fetch at start, and one for the whole flood: the first unknown kid finds
	// the limiter full, every later one finds it empty for the next 30s.
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("%d unknown kids made %d JWKS fetches, want 1 besides the one at start", flood, n-1)
	}
	// Nobody waited for the limiter: refused at once rather than queued.
	if took > 3*time.Second {
		t.Errorf("the flood took %v", took)
	}
	hits := srv.hits.Load()
	wantUser(t, v, mint(t, jwt.SigningMethodES256, k.ec, "ec", claims()))
	if n := srv.hits.Load(); n != hits {
		t.Errorf("a known kid fetched the JWKS")
	}
}

func TestJWKSDownAtStart(t *testing.T) {
	k := keys()
	for _, kid := range []string{"ec", ""} {
		name := "token with a kid"
		if kid == "" {
			name = "token without a kid"
		}
		t.Run(name, func(t *testing.T) {
			srv := newJWKSServer(t, jwksJSON(ecJWK("ec", &k.ec.PublicKey)))
			srv.status.Store(http.StatusServiceUnavailable)
			v, logs := jwksVerifier(t, srv, func(o *Options) { o.UnknownKIDInterval = 100 * time.Millisecond })
			raw := mint(t, jwt.SigningMethodES256, k.ec, kid, claims())

			user, err := v.Verify(t.Context(), raw)
			wantRefused(t, user, err, ErrUnavailable, raw)
			if errors.Is(err, ErrInvalid) {
				t.Errorf("%q is also ErrInvalid", err)
			}
			for _, want := range []string{"no JWKS fetched yet", srv.URL, "503"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if !strings.Contains(logs.String(), "JWKS fetch failed") {
				t.Errorf("the failed fetch is not in the log:\n%s", logs)
			}

			srv.status.Store(0)
			eventually(t, "the token to verify once the JWKS is up", func() bool {
				_, err := v.Verify(t.Context(), raw)
				return err == nil
			})
			wantUser(t, v, raw)
			if !strings.Contains(logs.String(), "JWKS fetched") {
				t.Errorf("the recovery is not in the log:\n%s", logs)
			}
			checkNoLeak(t, "log", logs.String(), raw)
		})
	}
}

func TestJWKSUnreachable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL + "/jwks"
	gone.Close()
	start := time.Now()
	v, err := New(Options{JWKSURL: url, Audience: testAud, Timeout: time.Second, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer v.Close()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("New took %v", took)
	}
	raw := mint(t, jwt.SigningMethodES256, keys().ec, "ec", claims())
	user, err := v.Verify(t.Context(), raw)
	wantRefused(t, user, err, ErrUnavailable, raw)
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name %s", err, url)
	}
}

func TestJWKSHangsAtStart(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	start := time.Now()
	v, err := New(Options{JWKSURL: srv.URL, Audience: testAud, Timeout: 300 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer v.Close()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("New took %v with a 300ms timeout", took)
	}
	raw := mint(t, jwt.SigningMethodES256, keys().ec, "ec", claims())
	start = time.Now()
	user, err := v.Verify(t.Context(), raw)
	wantRefused(t, user, err, ErrUnavailable, raw)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Verify took %v with a 300ms timeout", took)
	}
}

func TestJWKSBounds(t *testing.T) {
	k := keys()
	many := func(n int) []byte {
		ks := make([]jwk, n)
		for i := range ks {
			ks[i] = ecJWK(fmt.Sprintf("k%d", i), &k.ec.PublicKey)
		}
		return jwksJSON(ks...)
	}
	huge := []byte(`{"keys":[` + string(mustJSON(ecJWK("ec", &k.ec.PublicKey))) + `],"padding":"` +
		strings.Repeat("x", MaxJWKSBytes) + `"}`)
	cases := []struct {
		name string
		body []byte
		want string // "" for accepted
	}{
		{"MaxJWKSKeys keys", many(MaxJWKSKeys), ""},
		{"more than MaxJWKSKeys keys", many(MaxJWKSKeys + 1), fmt.Sprintf("%d usable keys", MaxJWKSKeys+1)},
		{"larger than MaxJWKSBytes", huge, "larger than"},
		{"no keys", []byte(`{"keys":[]}`), "no usable key"},
		{"only an unsupported key", []byte(`{"keys":[{"kty":"OKP","crv":"X448","kid":"x","x":"AAAA"}]}`), "no usable key"},
		{"not JSON", []byte(`<html>Login</html>`), "decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newJWKSServer(t, c.body)
			v, _ := jwksVerifier(t, srv)
			raw := mint(t, jwt.SigningMethodES256, k.ec, "k0", claims())
			user, err := v.Verify(t.Context(), raw)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantRefused(t, user, err, ErrUnavailable, raw)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}

	// A refresh that is out of bounds keeps the keys held.
	t.Run("keys kept when a refresh is out of bounds", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(ecJWK("ec", &k.ec.PublicKey)))
		v, logs := jwksVerifier(t, srv, func(o *Options) { o.UnknownKIDInterval = 50 * time.Millisecond })
		held := mint(t, jwt.SigningMethodES256, k.ec, "ec", claims())
		wantUser(t, v, held)
		for _, body := range [][]byte{huge, many(MaxJWKSKeys + 1), []byte(`{"keys":[]}`)} {
			srv.serve(body)
			time.Sleep(60 * time.Millisecond) // let the limiter allow a fetch
			hits := srv.hits.Load()
			_, err := v.Verify(t.Context(), mint(t, jwt.SigningMethodES256, k.ec, "k0", claims()))
			if !errors.Is(err, errUnknownKey) {
				t.Fatalf("new kid: %v, want %v", err, errUnknownKey)
			}
			if srv.hits.Load() == hits {
				t.Fatal("the unknown kid did not fetch the JWKS")
			}
			wantUser(t, v, held)
		}
		if !strings.Contains(logs.String(), "larger than") {
			t.Errorf("the oversized JWKS is not in the log:\n%s", logs)
		}
	})
}

func TestTokenWithoutKIDAgainstALargeJWKS(t *testing.T) {
	k := keys()
	ks := make([]jwk, maxKeysWithoutKID+1)
	for i := range ks {
		ks[i] = ecJWK(fmt.Sprintf("k%d", i), &k.ec.PublicKey)
	}
	v, _ := jwksVerifier(t, newJWKSServer(t, jwksJSON(ks...)))
	raw := mint(t, jwt.SigningMethodES256, k.ec, "", claims())
	user, err := v.Verify(t.Context(), raw)
	wantRefused(t, user, err, errKIDRequired, raw)
	wantUser(t, v, mint(t, jwt.SigningMethodES256, k.ec, "k3", claims()))
}

func TestCloseStopsRefresh(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, jwksJSON(ecJWK("ec", &k.ec.PublicKey)))
	v, _ := jwksVerifier(t, srv, func(o *Options) {
		o.RefreshInterval = 20 * time.Millisecond
		o.UnknownKIDInterval = time.Millisecond
	})
	eventually(t, "periodic refreshes", func() bool { return srv.hits.Load() >= 3 })
	v.Close()
	time.Sleep(50 * time.Millisecond) // a refresh under way when Close was called ends
	hits := srv.hits.Load()

	time.Sleep(150 * time.Millisecond)
	_, err := v.Verify(t.Context(), mint(t, jwt.SigningMethodES256, k.ec, "unknown", claims()))
	if !errors.Is(err, errUnknownKey) {
		t.Errorf("unknown kid after Close: %v, want %v", err, errUnknownKey)
	}
	if n := srv.hits.Load(); n != hits {
		t.Errorf("%d fetches after Close", n-hits)
	}
	wantUser(t, v, mint(t, jwt.SigningMethodES256, k.ec, "ec", claims()))
}

func TestHTTPClientIsNotChanged(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, jwksJSON(ecJWK("ec", &k.ec.PublicKey)))
	client := &http.Client{}
	v, _ := jwksVerifier(t, srv, func(o *Options) { o.HTTPClient = client })
	wantUser(t, v, mint(t, jwt.SigningMethodES256, k.ec, "ec", claims()))
	if client.Transport != nil || client.Timeout != 0 {
		t.Errorf("New changed the caller's client: %+v", client)
	}
}

package provider

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/secret"
	"github.com/signgate/signgate/state"
)

// The worked example of signgate's hmac-sha256 scheme (auth/hmac_test.go): every
// intermediate value as a partner would check it by hand.
func TestSignWorkedExample(t *testing.T) {
	const (
		key       = "partner-secret-0001"
		target    = "/api/orders/42/status?b=2&a=1&a=0&name=%E5%BC%A0+%E4%B8%89" // name=张 三, '+' is a space
		canonical = "a=0&a=1&b=2&name=%E5%BC%A0%20%E4%B8%89"
		timestamp = "1700000000"
		nonce     = "8f3a2c1d9e7b4a60"
		body      = `{"status":"done"}`
		toSign    = "POST\n/api/orders/42/status\na=0&a=1&b=2&name=%E5%BC%A0%20%E4%B8%89\n1700000000\n8f3a2c1d9e7b4a60\n" +
			"e378058155516106ec27571a247c0a3985759e505d4ab2351d638a9ac6ce7c25"
		signature = "955282bb12fe7951e7cc9ab829a179a05377e7f77b745271eacbb7a14b343ea2"
	)
	req := httptest.NewRequest("POST", target, bytes.NewReader([]byte(body)))
	if got, err := CanonicalQuery(req.URL.RawQuery); err != nil || got != canonical {
		t.Errorf("CanonicalQuery = %q, %v; want %q", got, err, canonical)
	}
	if got, _ := StringToSign("POST", req.URL.EscapedPath(), req.URL.RawQuery, timestamp, nonce, []byte(body)); got != toSign {
		t.Errorf("StringToSign =\n%s\nwant\n%s", got, toSign)
	}
	if err := Sign(req, []byte(body), []byte(key), time.Unix(1700000000, 0), nonce); err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{"X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signature} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

// Sign must agree with the gateway's own signer for every shape of request.
func TestSignAgreesWithGateway(t *testing.T) {
	tests := []struct {
		name, method, target, body string
	}{
		{"GET without a query or body", "GET", "/api/orders/1", ""},
		{"PUT with a Chinese status", "PUT", "/api/orders/1/status", `{"status":"已接單"}`},
		{"repeated and unsorted parameters", "GET", "/api/orders?z=1&a=2&a=1&m", ""},
		{"escaped path", "GET", "/api/files/a%20b%2Fc", ""},
		{"reserved characters in the query", "POST", "/daojia/serviceUser/getAllServiceUser?q=a+b%26c%3D~*", `{}`},
		{"empty parameters", "GET", "/api?a=1&&b=&=3", ""},
	}
	at := time.Unix(1763800000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			if err := Sign(req, []byte(tt.body), []byte("s3cret"), at, "nonce-0001"); err != nil {
				t.Fatal(err)
			}
			want, err := auth.SignRequest(tt.method, tt.target, []byte(tt.body), []byte("s3cret"), at, "nonce-0001")
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("X-Signature"); got != want["X-Signature"] {
				t.Fatalf("X-Signature = %s, gateway's signer says %s", got, want["X-Signature"])
			}
		})
	}
}

// A request from Client passes the gateway's verifier once, and is a replay after.
func TestClientRequestVerifies(t *testing.T) {
	now := time.Unix(1763800000, 0)
	v := &auth.Verifier{Nonces: state.NewMemory(state.MemoryOptions{}), Skew: 10 * time.Minute, NonceTTL: 20 * time.Minute,
		Now: func() time.Time { return now }}
	c := NewClient("https://gateway.example", "k", "partner-secret")
	c.Now = func() time.Time { return now.Add(-time.Minute) }
	body := []byte(`{"status":"服務中"}`)
	req, err := c.NewRequest(context.Background(), "PUT", "/api/orders/7/status?trace=a%20b", body)
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("X-Api-Key") != "k" || req.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", req.Header)
	}
	// What the gateway's HTTP server reads off the wire.
	wire := httptest.NewRequest(req.Method, req.URL.RequestURI(), bytes.NewReader(body))
	wire.Header = req.Header.Clone()
	if err := v.VerifyHMAC(context.Background(), wire, body, "sunshine", secret.Secret("partner-secret")); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := v.VerifyHMAC(context.Background(), wire, body, "sunshine", secret.Secret("partner-secret")); err == nil {
		t.Fatal("second use verified; want replayed")
	}
}

func TestClientErrors(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid-9")
		switch r.URL.Path {
		case "/api/orders/1":
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"code":"replayed","message":"nonce already used","request_id":"rid-9"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>bad gateway</html>"))
		}
	}))
	defer gw.Close()
	c := NewClient(gw.URL, "k", "s")
	_, err := c.Order(context.Background(), 1)
	if e, ok := err.(*Error); !ok || e.Status != 401 || e.Code != "replayed" || e.RequestID != "rid-9" {
		t.Fatalf("err = %#v", err)
	}
	_, err = c.Order(context.Background(), 2)
	if e, ok := err.(*Error); !ok || e.Status != 502 || e.Code != "unexpected_answer" || e.RequestID != "rid-9" {
		t.Fatalf("err = %#v", err)
	}
	if s := c.String(); bytes.Contains([]byte(s), []byte(`"s"`)) || s != "provider.Client("+gw.URL+")" {
		t.Fatalf("String() = %q", s)
	}
}

func TestSignRefusesEmptySecret(t *testing.T) {
	if err := Sign(httptest.NewRequest("GET", "/", nil), nil, nil, time.Now(), ""); err == nil {
		t.Fatal("signed with an empty secret")
	}
}

// FuzzCanonicalQuery: for any query the gateway accepts, the partner-side code here
// must produce the same canonical form.
func FuzzCanonicalQuery(f *testing.F) {
	for _, s := range []string{"", "a=1", "b=2&a=1&a=0", "name=%E5%BC%A0+%E4%B8%89", "a&&b=", "=x", "%zz", "a;b", "x=~-._*'()"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		want, wantErr := auth.CanonicalQuery(raw)
		got, err := CanonicalQuery(raw)
		if wantErr != nil {
			return // the gateway refuses it with 400: what a partner computes does not matter
		}
		if err != nil || got != want {
			t.Fatalf("CanonicalQuery(%q) = %q, %v; the gateway computes %q", raw, got, err, want)
		}
	})
}

package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestUpstreamSeesIdentityHeadersAndNoCredentials(t *testing.T) {
	type seen struct {
		header http.Header
		host   string
		uri    string
	}
	got := make(chan seen, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Clone(), r.Host, r.RequestURI}
	}))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)

	tests := []struct {
		name       string
		client     string // authenticated client id; "" for an anonymous caller
		wantClient string // X-Signgate-Client at the upstream; "" means absent
	}{
		{name: "authenticated client is named, spoofed value replaced", client: "sunshine-housekeeping", wantClient: "sunshine-housekeeping"},
		{name: "anonymous caller cannot claim a client", client: "", wantClient: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newTestPool(t, Options{Targets: []string{up.URL + "/base"}})
			front := frontFor(t, p, tc.client)
			frontURL, _ := url.Parse(front.URL)

			req, _ := http.NewRequest(http.MethodGet, front.URL+"/api/orders/7?b=2&a=x%20y", nil)
			req.Header.Set("X-Api-Key", "key")
			req.Header.Set("X-Signature", "sig")
			req.Header.Set("X-Timestamp", "1700000000")
			req.Header.Set("X-Nonce", "nonce-1234")
			req.Header.Set("X-Signgate-Client", "spoofed-admin")
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			req.Header.Set("X-Forwarded-Host", "evil.example")
			req.Header.Set("X-Request-Id", "caller-chosen")
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			s := <-got

			if s.uri != "/base/api/orders/7?b=2&a=x%20y" {
				t.Errorf("upstream request URI = %q, want target prefix joined, path and query kept", s.uri)
			}
			if s.host != upURL.Host {
				t.Errorf("Host = %q, want the target's %q", s.host, upURL.Host)
			}
			want := map[string]string{
				"X-Request-Id":      testRequestID,
				"X-Signgate-Client": tc.wantClient,
				"X-Forwarded-For":   "127.0.0.1", // the caller as the gateway saw it, not 6.6.6.6
				"X-Forwarded-Host":  frontURL.Host,
				"X-Forwarded-Proto": "http",
				"Accept":            "application/json",
				"X-Api-Key":         "",
				"X-Signature":       "",
				"X-Timestamp":       "",
				"X-Nonce":           "",
			}
			for k, v := range want {
				if gotV := strings.Join(s.header.Values(k), ","); gotV != v {
					t.Errorf("%s = %q, want %q", k, gotV, v)
				}
			}
		})
	}
}

func TestRoundRobinSpreadsAcrossTargets(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	p, _ := newTestPool(t, Options{Targets: []string{a.URL, b.URL}})
	front := frontFor(t, p, "")
	for range 10 {
		readBody(t, get(t, front.URL+"/"))
	}
	if a.hits.Load() != 5 || b.hits.Load() != 5 {
		t.Errorf("hits a=%d b=%d, want 5 each", a.hits.Load(), b.hits.Load())
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"no name", Options{Targets: []string{"http://127.0.0.1:9000"}}},
		{"no targets", Options{Name: "backend"}},
		{"relative target", Options{Name: "backend", Targets: []string{"127.0.0.1:9000"}}},
		{"unsupported scheme", Options{Name: "backend", Targets: []string{"ftp://127.0.0.1"}}},
		{"target with a query", Options{Name: "backend", Targets: []string{"http://127.0.0.1:9000/?a=1"}}},
		{"unparsable health path", Options{Name: "backend", Targets: []string{"http://127.0.0.1:9000"}, HealthPath: "%zz"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}

func TestHealthURLResolvesAgainstTarget(t *testing.T) {
	tests := []struct {
		target, path, want string
	}{
		{"http://10.0.0.1:9000", "/healthz", "http://10.0.0.1:9000/healthz"},
		{"http://10.0.0.1:9000/api/", "/healthz", "http://10.0.0.1:9000/healthz"},
		{"http://10.0.0.1:9000/api/", "healthz?deep=1", "http://10.0.0.1:9000/api/healthz?deep=1"},
	}
	for _, tc := range tests {
		t.Run(tc.target+" "+tc.path, func(t *testing.T) {
			p, _ := newTestPool(t, Options{Targets: []string{tc.target}, HealthPath: tc.path})
			if got := p.targets[0].healthURL; got != tc.want {
				t.Errorf("health URL = %q, want %q", got, tc.want)
			}
		})
	}
}

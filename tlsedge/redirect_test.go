package tlsedge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRedirectHandler(t *testing.T) {
	tests := []struct {
		name, httpsAddr, method, url, host string // host overrides the URL's when set
		wantLocation                       string
	}{
		{"keeps port other than 443", ":8443", "GET", "http://api.example.com:8080/api/x?a=1&b=%20", "",
			"https://api.example.com:8443/api/x?a=1&b=%20"},
		{"drops port 443", ":443", "GET", "http://api.example.com:8080/api/x?a=1&b=%20", "",
			"https://api.example.com/api/x?a=1&b=%20"},
		{"POST keeps 308 so the method survives", ":8443", "POST", "http://api.example.com:8080/api/orders", "",
			"https://api.example.com:8443/api/orders"},
		{"HEAD", ":443", "HEAD", "http://api.example.com/", "", "https://api.example.com/"},
		{"host without port", "0.0.0.0:8443", "GET", "http://api.example.com/a", "", "https://api.example.com:8443/a"},
		{"escaped path kept as sent", ":443", "GET", "http://h.test/a%2Fb/c%20d?q=%2F", "", "https://h.test/a%2Fb/c%20d?q=%2F"},
		{"IPv6 host", ":8443", "GET", "http://[::1]:8080/x", "", "https://[::1]:8443/x"},
		{"IPv6 host, default port", "[::]:443", "GET", "http://[::1]:8080/x", "", "https://[::1]/x"},
		{"named https port", ":https", "GET", "http://h.test/", "", "https://h.test/"},
		{"OPTIONS *", ":8443", "OPTIONS", "http://h.test/", "", "https://h.test:8443/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.url, nil)
			if tt.name == "OPTIONS *" {
				r.URL.Path, r.RequestURI = "*", "*"
			}
			w := httptest.NewRecorder()
			RedirectHandler(tt.httpsAddr).ServeHTTP(w, r)
			if w.Code != http.StatusPermanentRedirect {
				t.Errorf("status = %d, want 308", w.Code)
			}
			if got := w.Header().Get("Location"); got != tt.wantLocation {
				t.Errorf("Location = %q, want %q", got, tt.wantLocation)
			}
		})
	}
}

func TestRedirectHandlerBadHost(t *testing.T) {
	for _, host := range []string{"", "exa mple.com", "evil.test/path", "a@b.test", "[fe80::1%25eth0]:80", ":8080"} {
		t.Run(host, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://placeholder/x", nil)
			r.Host = host
			w := httptest.NewRecorder()
			RedirectHandler(":8443").ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", w.Code)
			}
			var body struct{ Code, Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Code != "bad_request" || body.Message == "" {
				t.Errorf("body = %s (%v), want the bad_request JSON envelope", w.Body, err)
			}
			if loc := w.Header().Get("Location"); loc != "" {
				t.Errorf("Location = %q on a refused request", loc)
			}
		})
	}
}

package backend

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 22, 9, 0, 0, 0, chinaTime)

const goodBooking = `{"name":"王芳","phone":"13812345678","address":"幸福小區 3 棟 501","service_type":"cleaning","appointment_time":"2026-11-23T10:00:00+08:00"}`

func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("X-Request-Id", "req-1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, path, w.Body)
	}
	return w.Code, m
}

func newTestBackend() *Backend {
	return New(Options{Now: func() time.Time { return testNow }})
}

func TestBookingValidation(t *testing.T) {
	tests := []struct {
		name, body, code, msg string
	}{
		{"phone with a +86 prefix", strings.Replace(goodBooking, `"13812345678"`, `"+8613812345678"`, 1), "bad_request", "phone must be a mainland mobile number"},
		{"phone too short", strings.Replace(goodBooking, `"13812345678"`, `"1381234567"`, 1), "bad_request", "phone must be"},
		{"landline", strings.Replace(goodBooking, `"13812345678"`, `"01012345678"`, 1), "bad_request", "phone must be"},
		{"appointment in the past", strings.Replace(goodBooking, "2026-11-23T10", "2026-11-21T10", 1), "bad_request", "not in the future"},
		{"appointment right now", strings.Replace(goodBooking, "2026-11-23T10:00:00", "2026-11-22T09:00:00", 1), "bad_request", "not in the future"},
		{"appointment without a time zone", strings.Replace(goodBooking, "+08:00", "", 1), "bad_request", "RFC 3339"},
		{"unknown service type", strings.Replace(goodBooking, "cleaning", "plumbing", 1), "bad_request", `service_type "plumbing" is not a service we offer`},
		{"name missing", strings.Replace(goodBooking, `"王芳"`, `"  "`, 1), "bad_request", "name is required"},
		{"address missing", strings.Replace(goodBooking, `"幸福小區 3 棟 501"`, `""`, 1), "bad_request", "address is required"},
		{"a misspelt field", strings.Replace(goodBooking, `"name"`, `"nmae"`, 1), "bad_request", `unknown field "nmae"`},
		{"phone as a number", strings.Replace(goodBooking, `"13812345678"`, `13812345678`, 1), "bad_request", "phone must be a JSON string"},
		{"not JSON", `name=王芳`, "bad_request", "not valid JSON"},
		{"empty body", ``, "bad_request", "body is empty"},
		{"two objects", goodBooking + goodBooking, "bad_request", "single JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := call(t, newTestBackend(), "POST", "/api/orders", tt.body)
			if status != 400 || m["code"] != tt.code || !strings.Contains(m["message"].(string), tt.msg) || m["request_id"] != "req-1" {
				t.Fatalf("got %d %v, want 400 %s mentioning %q with request_id req-1", status, m, tt.code, tt.msg)
			}
			if strings.Contains(m["message"].(string), "1381234567") {
				t.Fatalf("the message repeats the phone number: %v", m["message"])
			}
		})
	}
}

func TestOrderLifecycle(t *testing.T) {
	b := newTestBackend()
	status, o := call(t, b, "POST", "/api/orders", goodBooking)
	if status != 201 || o["id"] != 1.0 || o["status"] != StatusPending || o["service_name"] != "日常保潔" || o["staff"] != nil {
		t.Fatalf("booking: %d %v", status, o)
	}
	put := func(s string) (int, map[string]any) {
		return call(t, b, "PUT", "/api/orders/1/status", `{"status":"`+s+`"}`)
	}
	staff := `{"name":"李秀英","phone":"13998765432","photo":"https://img.example.com/staff/li.jpg","skills":["日常保潔","家電清洗"]}`

	steps := []struct {
		name        string
		do          func() (int, map[string]any)
		status      int
		code, state string
	}{
		{"pending cannot jump to completed", func() (int, map[string]any) { return put(StatusCompleted) }, 400, "invalid_transition", ""},
		{"an unknown status", func() (int, map[string]any) { return put("done") }, 400, "bad_request", ""},
		{"accepted", func() (int, map[string]any) { return put(StatusAccepted) }, 200, "", StatusAccepted},
		{"accepted again is a no-op", func() (int, map[string]any) { return put(StatusAccepted) }, 200, "", StatusAccepted},
		{"in service needs staff first", func() (int, map[string]any) { return put(StatusInService) }, 400, "invalid_transition", ""},
		{"staff with an http photo", func() (int, map[string]any) {
			return call(t, b, "POST", "/api/orders/1/staff", strings.Replace(staff, "https:", "http:", 1))
		}, 400, "bad_request", ""},
		{"staff with no skills", func() (int, map[string]any) {
			return call(t, b, "POST", "/api/orders/1/staff", `{"name":"李秀英","phone":"13998765432","photo":"https://x.example/a.jpg","skills":[]}`)
		}, 400, "bad_request", ""},
		{"staff assigned", func() (int, map[string]any) { return call(t, b, "POST", "/api/orders/1/staff", staff) }, 200, "", StatusAccepted},
		{"in service", func() (int, map[string]any) { return put(StatusInService) }, 200, "", StatusInService},
		{"staff cannot change once in service", func() (int, map[string]any) { return call(t, b, "POST", "/api/orders/1/staff", staff) }, 400, "invalid_transition", ""},
		{"cannot be cancelled once in service", func() (int, map[string]any) { return put(StatusCancelled) }, 400, "invalid_transition", ""},
		{"completed", func() (int, map[string]any) { return put(StatusCompleted) }, 200, "", StatusCompleted},
		{"completed is final", func() (int, map[string]any) { return put(StatusPending) }, 400, "invalid_transition", ""},
	}
	for _, st := range steps {
		status, m := st.do()
		if status != st.status || st.code != "" && m["code"] != st.code || st.state != "" && m["status"] != st.state {
			t.Fatalf("%s: got %d %v, want %d %s%s", st.name, status, m, st.status, st.code, st.state)
		}
	}
	_, o = call(t, b, "GET", "/api/orders/1", "")
	var history []string
	for _, h := range o["history"].([]any) {
		history = append(history, h.(map[string]any)["status"].(string))
	}
	if got := strings.Join(history, " → "); got != "待接單 → 已接單 → 服務中 → 已完成" {
		t.Fatalf("history %s", got)
	}
	if s := o["staff"].(map[string]any); s["phone"] != "13998765432" || s["name"] != "李秀英" {
		t.Fatalf("staff %v", s)
	}
}

func TestNotFound(t *testing.T) {
	b := newTestBackend()
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/orders/1"},
		{"GET", "/api/orders/abc"},
		{"PUT", "/api/orders/0/status"},
		{"DELETE", "/api/orders/1"},
		{"GET", "/elsewhere"},
	} {
		if status, m := call(t, b, tc.method, tc.path, `{"status":"已接單"}`); status != 404 || m["code"] != "not_found" {
			t.Errorf("%s %s: %d %v, want 404 not_found", tc.method, tc.path, status, m)
		}
	}
}

func TestServicesAndHealth(t *testing.T) {
	b := newTestBackend()
	if status, m := call(t, b, "GET", "/api/services", ""); status != 200 || len(m["services"].([]any)) != len(services) {
		t.Fatalf("services: %d %v", status, m)
	}
	if status, m := call(t, b, "GET", "/healthz", ""); status != 200 || m["status"] != "ok" {
		t.Fatalf("healthz: %d %v", status, m)
	}
}

func TestConcurrentBookings(t *testing.T) {
	b := newTestBackend()
	done := make(chan int, 20)
	for range 20 {
		go func() {
			r := httptest.NewRequest("POST", "/api/orders", strings.NewReader(goodBooking))
			w := httptest.NewRecorder()
			b.ServeHTTP(w, r)
			done <- w.Code
		}()
	}
	for range 20 {
		if code := <-done; code != 201 {
			t.Fatalf("booking: %d", code)
		}
	}
	if status, o := call(t, b, "GET", "/api/orders/20", ""); status != 200 || o["id"] != 20.0 {
		t.Fatalf("order 20: %d %v", status, o)
	}
}

// An owner reads her own order; another owner gets what a missing order gets, and a
// caller with no openid (a provider) still sees it.
func TestOwnerSeesOnlyHerOrders(t *testing.T) {
	b := newTestBackend()
	do := func(method, path, body, openid string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if openid != "" {
			r.Header.Set("X-WX-OpenID", openid)
		}
		w := httptest.NewRecorder()
		b.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	code, body := do("POST", "/api/orders", goodBooking, "o-alice")
	if code != http.StatusCreated {
		t.Fatalf("booking: %d %s", code, body)
	}
	if strings.Contains(body, "o-alice") {
		t.Errorf("the order answer carries the owner's openid: %s", body)
	}
	if code, body := do("GET", "/api/orders/1", "", "o-alice"); code != http.StatusOK {
		t.Errorf("owner reads her order: %d %s", code, body)
	}
	_, missing := do("GET", "/api/orders/2", "", "o-bob")
	code, body = do("GET", "/api/orders/1", "", "o-bob")
	if code != http.StatusNotFound || strings.Replace(body, "no order 1", "no order 2", 1) != missing {
		t.Errorf("another owner: %d %s, want the answer of a missing order (%s)", code, body, missing)
	}
	if code, body := do("GET", "/api/orders/1", "", ""); code != http.StatusOK {
		t.Errorf("a caller with no openid (provider): %d %s", code, body)
	}
}

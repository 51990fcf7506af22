package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/signgate/signgate/examples/provider"
)

// A provider's server reads an order, sends staff and moves the status, every call
// signed.
func Example() {
	gateway := fakeGateway() // in production: https://api.your-property.com
	defer gateway.Close()

	c := provider.NewClient(gateway.URL, "demo-sunshine-key", "the secret the property gave you")
	c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()

	o, err := c.Order(ctx, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(o.ServiceName, o.Phone, o.Status)

	o, err = c.AssignStaff(ctx, 1, provider.Staff{
		Name: "李秀英", Phone: "13998765432", Photo: "https://img.example.com/li.jpg", Skills: []string{"日常保潔"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(o.Staff.Name)

	if _, err := c.SetStatus(ctx, 1, provider.StatusAccepted); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 日常保潔 138****5678 待接單
	// 李秀英
	// 400 invalid_transition: order 1 is 已完成: its status can no longer change (request 01KAQ)
}

// Sign adds the three signature headers to a request you build yourself. The
// signature below was checked with
//
//	printf 'PUT\n/api/orders/42/status\n\n1700000000\n8f3a2c1d9e7b4a60\n%s' "$(printf %s '{"status":"已接單"}' | sha256sum | cut -c1-64)" |
//	  openssl dgst -sha256 -hmac partner-secret-0001
func ExampleSign() {
	body := []byte(`{"status":"已接單"}`)
	req, _ := http.NewRequest("PUT", "https://api.example.com/api/orders/42/status", nil)
	_ = provider.Sign(req, body, []byte("partner-secret-0001"), time.Unix(1700000000, 0), "8f3a2c1d9e7b4a60")
	fmt.Println(req.Header.Get("X-Timestamp"))
	fmt.Println(req.Header.Get("X-Signature"))
	// Output:
	// 1700000000
	// 249943a517f5eba88fda3115f9bec1475c60e46286abb6eae21ed214ac6c0ef7
}

// fakeGateway answers as signgate in front of the property backend would, for the
// example above.
func fakeGateway() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Signature") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case "GET":
			fmt.Fprint(w, `{"id":1,"service_name":"日常保潔","phone":"138****5678","status":"待接單"}`)
		case "POST":
			fmt.Fprint(w, `{"id":1,"status":"待接單","staff":{"name":"李秀英","phone":"139****5432"}}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":"invalid_transition","message":"order 1 is 已完成: its status can no longer change","request_id":"01KAQ"}`)
		}
	}))
}

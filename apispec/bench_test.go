package apispec

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkValidateOrder checks a 1 KB booking against the compiled spec: what
// request validation adds to POST /api/orders, parameters and the strict JSON
// decode included. The address is long, as owners write them, and escaped as
// \uXXXX, as Python's json.dumps and Jackson's ESCAPE_NON_ASCII send Chinese.
func BenchmarkValidateOrder(b *testing.B) {
	s := loadDemo(b)
	o, params := s.Find("POST", "/api/orders")
	address := strings.Repeat("幸福小區三棟二單元五零一室", 12) // 156 characters
	body := []byte(`{"name":` + strconv.QuoteToASCII("王芳") + `,"phone":"13812345678","address":` + strconv.QuoteToASCII(address) +
		`,"service_type":"cleaning","appointment_time":"2026-11-23T10:00:00+08:00"}`)
	if len(body) < 1000 || len(body) > 1100 {
		b.Fatalf("the booking is %d bytes, want about 1 KB", len(body))
	}
	r := jsonRequest("POST", "/api/orders", string(body))
	ctx := context.Background()
	if vs, _ := o.ValidateRequest(ctx, r, params, body); len(vs) != 0 {
		b.Fatalf("the booking does not pass: %+v", vs)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		o.ValidateRequest(ctx, r, params, body)
	}
}

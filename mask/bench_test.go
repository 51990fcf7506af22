package mask

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// orderList builds an order list of about size bytes, shaped like the backend's
// GET /api/orders answer: each order has an owner and a staff member with names and
// phones, an address, times, a price and a remark that sometimes holds a phone.
func orderList(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"code":0,"message":"success","data":{"list":[`)
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		remark := "周末上午均可，到了请敲门"
		if i%3 == 0 {
			remark = fmt.Sprintf("请提前电话联系 139-%04d-%04d，门禁密码 1234#", i%10000, (i*7)%10000)
		}
		fmt.Fprintf(&b, `{"orderId":"20261123%05d","serviceName":"日常保洁 3小时","status":%d,"price":%d.00,`+
			`"createTime":"2026-11-23 10:%02d:00","appointTime":%d,"address":"北京市朝阳区望京街道 %d号院 3号楼 1单元 502",`+
			`"owner":{"userId":"%d","name":"张三丰","phone":"138%08d"},`+
			`"staff":{"staffId":%d,"userName":"欧阳娜娜","mobile":"159%08d","skills":["保洁","收纳"]},"remark":"%s"}`,
			i, i%5, 100+i%100, i%60, 1763900000000+int64(i)*60000, i%20+1,
			10000+i, i, 1000+i, i*3, remark)
	}
	b.WriteString(`],"total":` + strconv.Itoa(b.Len()) + `}}`)
	return []byte(b.String())
}

// asciiOnly escapes every non-ASCII character as \uXXXX, as Python's json.dumps
// does by default: every Chinese string then takes the escape path.
func asciiOnly(body []byte) []byte {
	var b strings.Builder
	for _, r := range string(body) {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xFFFF:
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+((r-0x10000)>>10), 0xDC00+((r-0x10000)&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return []byte(b.String())
}

func BenchmarkMaskJSON(b *testing.B) {
	cases := []struct {
		name  string
		rules Rules
		body  []byte
	}{
		{"4KB", ownerRules, orderList(4 << 10)},
		{"256KB", ownerRules, orderList(256 << 10)},
		{"256KB/escaped", ownerRules, asciiOnly(orderList(256 << 10))},
		{"256KB/id_card", Rules{Fields: ownerRules.Fields, DetectMobile: true, DetectIDCard: true, Names: ownerRules.Names}, orderList(256 << 10)},
		{"256KB/fields_only", Rules{Fields: ownerRules.Fields}, orderList(256 << 10)},
		{"256KB/no_rules", Rules{}, orderList(256 << 10)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m := New(c.rules)
			dst := make([]byte, 0, len(c.body)+len(c.body)/8)
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, _, err = m.JSON(dst[:0], c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMaskText(b *testing.B) {
	body := orderList(256 << 10)
	m := New(Rules{DetectIDCard: true})
	dst := make([]byte, 0, len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = m.Text(dst[:0], body)
	}
}

// BenchmarkMaskString is the cost per log attribute.
func BenchmarkMaskString(b *testing.B) {
	m := New(ownerRules)
	for _, s := range []string{"/api/orders/2026112300012", "call 13812345678 after 6pm"} {
		b.Run(fmt.Sprintf("%.12s", s), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = m.String(s)
			}
		})
	}
}

// BenchmarkHandler is the masking handler's cost on an access-log line with
// nothing to mask, the usual case, over a JSON handler writing to nowhere.
func BenchmarkHandler(b *testing.B) {
	logger := slog.New(NewHandler(slog.NewJSONHandler(io.Discard, nil), New(ownerRules)))
	b.ReportAllocs()
	for b.Loop() {
		logger.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("request_id", "01JD3X5Q8Z"), slog.String("client", "sunshine-housekeeping"),
			slog.String("route", "orders"), slog.String("method", "GET"),
			slog.String("path", "/api/orders/2026112300012"), slog.Int("status", 200),
			slog.Float64("duration_ms", 1.25), slog.Int64("bytes_out", 4096))
	}
}

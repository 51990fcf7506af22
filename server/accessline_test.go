package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/mask"
)

var lineMasker = newMasker(config.Masking{Detect: []string{"cn_mobile", "cn_id_card"}})

// viaSlog is the line the gateway writes without WithJSONAccessLog: the record's
// attributes through the log wrapper and slog's JSON handler.
func viaSlog(t testing.TB, at time.Time, rec *accessRecord) string {
	var buf bytes.Buffer
	h := mask.NewHandler(slog.NewJSONHandler(&buf, nil), lineMasker)
	r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	r.AddAttrs(rec.attrs(nil)...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func direct(t testing.TB, at time.Time, rec *accessRecord) string {
	var buf bytes.Buffer
	if err := (&accessWriter{w: &buf, masker: lineMasker}).write(at, rec); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestAccessLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 23, 11, 28, 48, 123456789, time.FixedZone("CST", 8*3600))
	base := accessRecord{
		requestID: "01JD5Z6W3B8Q9R7T5V2X4Y6Z8A", client: "property-miniapp", route: "api",
		method: "GET", path: "/api/orders/42", status: 200, durationMS: 1.234,
		bytesIn: 0, bytesOut: 4179, remoteIP: "192.0.2.1", proto: "HTTP/1.1",
	}
	for _, tt := range []struct {
		name string
		edit func(*accessRecord)
	}{
		{"plain", func(*accessRecord) {}},
		{"query and error", func(r *accessRecord) { r.query = "page=1&q=a b"; r.errCode = "forbidden"; r.status = 403 }},
		{"phones in every string", func(r *accessRecord) {
			r.requestID, r.method, r.path, r.query = "13812345678", "13812345678", "/api/owners/13812345678", "phone=+86 138 1234 5678"
		}},
		{"an id card in the path", func(r *accessRecord) { r.path = "/api/id/11010519491231002X" }},
		{"escapes", func(r *accessRecord) { r.path = "/a\"b\\c\n\r\t\x00\x1f\x7f" }},
		{"invalid UTF-8 and line separators", func(r *accessRecord) { r.path = "/\xff\xfe/\u2028\u2029/订单" }},
		{"a phone-length byte count", func(r *accessRecord) { r.bytesOut = 13812345678 }},
		{"a long byte count", func(r *accessRecord) { r.bytesOut = 99999999999999 }},
		{"tiny and huge durations", func(r *accessRecord) { r.durationMS = 1e-7 }},
		{"huge duration", func(r *accessRecord) { r.durationMS = 3e21 }},
		{"zero", func(r *accessRecord) { r.durationMS = 0; r.status = 499 }},
		{"UTC", func(*accessRecord) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := base
			tt.edit(&rec)
			when := at
			if tt.name == "UTC" {
				when = at.UTC()
			}
			want, got := viaSlog(t, when, &rec), direct(t, when, &rec)
			if got != want {
				t.Fatalf("direct line differs from slog's:\n got %s\nwant %s", got, want)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatalf("not JSON: %v: %s", err, got)
			}
			if mobileRE.MatchString(got) {
				t.Fatalf("a full mobile number in %s", got)
			}
		})
	}
}

func FuzzAccessLine(f *testing.F) {
	f.Add("01JD5Z6W3B8Q9R7T5V2X4Y6Z8A", "GET", "/api/orders/13812345678", "q=\xff\u2028", 200, 1.5, int64(13812345678))
	f.Add("x", "\x00", "/\"\\", "", 0, 0.0, int64(0))
	f.Fuzz(func(t *testing.T, id, method, path, query string, status int, ms float64, n int64) {
		if math.IsNaN(ms) || math.IsInf(ms, 0) {
			return // a duration is never one; slog writes an error text for them
		}
		rec := accessRecord{requestID: id, client: "c", route: "r", method: method, path: path, status: status,
			durationMS: ms, bytesIn: n, bytesOut: -n, remoteIP: "::1", proto: "HTTP/2.0", query: query}
		at := time.Unix(1_790_000_000, int64(status)&0x3fffffff).UTC()
		if want, got := viaSlog(t, at, &rec), direct(t, at, &rec); got != want {
			t.Fatalf("direct line differs from slog's:\n got %q\nwant %q", got, want)
		}
	})
}

// TestDirectAccessLogThroughGateway: with WithJSONAccessLog the lines a live gateway
// writes are the same JSON, on the logger's writer, masked.
func TestDirectAccessLogThroughGateway(t *testing.T) {
	up := seenHeaders(t)
	g := startGatewayFrom(t, func() (*config.Config, error) {
		return parseConfig(baseConfig(up.URL, "masking: {detect: [cn_mobile]}\n"))
	}, "", func(logs *syncBuffer) Option { return WithJSONAccessLog(logs) })
	resp, body := g.do(t, "GET", "/api/orders/13812345678?phone=13812345678", appKey, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	lines := g.logs.lines(t, "request")
	if len(lines) != 1 {
		t.Fatalf("%d request lines, want 1: %s", len(lines), g.logs.buf.String())
	}
	l := lines[0]
	if l["path"] != "/api/orders/138****5678" || l["query"] != "phone=138****5678" || l["client"] != "property-miniapp" ||
		l["status"] != float64(200) || l["route"] != "api" || l["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Fatalf("line %v", l)
	}
	if strings.Contains(g.logs.buf.String(), "13812345678") {
		t.Fatal("a full mobile number in the log")
	}
}

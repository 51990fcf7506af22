package mask

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/leakcheck"
)

// ownerRef logs as a group holding the owner's phone, the way a LogValuer would.
type ownerRef struct{ phone string }

func (o ownerRef) LogValue() slog.Value {
	return slog.GroupValue(slog.String("phone", o.phone), slog.Int("orders", 3))
}

// orderID is a Stringer whose String carries a phone, and whose JSON form would not.
type orderID struct{ owner string }

func (o orderID) String() string { return "order of " + o.owner }

type panicky struct{}

func (*panicky) String() string { panic("boom 13812345678") }

func TestHandlerMasksEveryLogLine(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(NewHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), New(Rules{DetectIDCard: true})))

	logger.Info("owner 13812345678 called",
		"phone", "13812345678",
		slog.Group("owner", "contact", "+86 139-1234-5678", slog.Group("deep", "mobile", "15912345678")),
		"err", fmt.Errorf("dial backend: %w", errors.New("owner 8613812345678 not found")),
		"url", &url.URL{Path: "/api/orders", RawQuery: "phone=13812345678"},
		"order", orderID{owner: "13712345678"},
		"n", int64(13812345678),
		"f", 13812345678.0, "f2", 1381234.5678, "f3", 13.812345678,
		"wide", "业主 １３８－１２３４－５６７８", "dots", "138.1234.5678",
		"u", uint64(8613812345678),
		"owner_ref", ownerRef{phone: "18812345678"},
		"ids", []string{"13812345678", "2026112300012"},
		"m", map[string]any{"phone": 13812345678, "idCard": "110101199003071234", "idNum": 110101199003071234, "wide": 1381234.5678},
		"13612345678", "phone as a key",
		"nil_stringer", (*panicky)(nil),
		"panicky", &panicky{},
	)
	logger.With("caller", "15012345678").WithGroup("g 13512345678").Warn("with", "x", "17712345678")
	logger.Debug("request", "route", "orders", "status", 200, "bytes_out", int64(1763900000000), "duration_ms", 1.25, "ratio", 1.2e10)
	logger.Error("id card 110101199003071234 rejected")

	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 log lines, got %d:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("not a JSON line: %s", l)
		}
		if leaks := leakcheck.FindString(l); len(leaks) > 0 {
			t.Errorf("mobile number in the log: %s", l)
		}
		if strings.Contains(l, "110101199003071234") {
			t.Errorf("ID card number in the log: %s", l)
		}
	}
	for _, want := range []string{
		`"msg":"owner 138****5678 called"`, `"phone":"138****5678"`, `"contact":"+86 139-****-5678"`,
		`"mobile":"159****5678"`, `"err":"dial backend: owner 86138****5678 not found"`,
		`"url":"/api/orders?phone=138****5678"`, `"order":"order of 137****5678"`,
		`"n":"138****5678"`, `"u":"86138****5678"`, `"f":"138****5678"`, `"f2":"138****.5678"`,
		`"f3":13.812345678`, `"wide":"业主 １３８－****－５６７８"`, `"dots":"138.****.5678"`, `"owner_ref":{"phone":"188****5678","orders":3}`,
		`"ids":["138****5678","2026112300012"]`, `"idCard":"110***********1234"`, `"idNum":"110***********1234"`, `"wide":"138****.5678"`, `"phone":"138****5678"`,
		`"136****5678":"phone as a key"`, `"nil_stringer":"<nil>"`, `"panicky":"!PANIC: boom 138****5678"`,
		`"caller":"150****5678"`, `"g 135****5678":{"x":"177****5678"}`,
		`"bytes_out":1763900000000`, `"duration_ms":1.25`, `"ratio":12000000000`, `"msg":"id card 110***********1234 rejected"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestHandlerUnderATextHandler(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), nil))
	logger.Info("owner", "m", map[string]any{"phone": 13812345678}, "s", "+86 13812345678")
	want := `msg=owner m="{\"phone\":\"138****5678\"}" s="+86 138****5678"`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("text log = %s; want it to contain %s", buf.String(), want)
	}
}

func TestHandlerPassesCleanRecordsOn(t *testing.T) {
	var got slog.Record
	h := NewHandler(recordingHandler{&got}, New(ownerRules))
	r := slog.NewRecord(testTime, slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("route", "orders"), slog.Int("status", 200))
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got.Message != "request" || got.NumAttrs() != 2 {
		t.Errorf("record changed on the way: %v", got)
	}
	if !h.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled not passed through")
	}
}

var testTime = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type recordingHandler struct{ r *slog.Record }

func (h recordingHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error { *h.r = r; return nil }
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordingHandler) WithGroup(string) slog.Handler                 { return h }

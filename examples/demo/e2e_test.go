package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signgate/signgate/examples/provider"
	"github.com/signgate/signgate/internal/testredis"
)

// TestBookingFlow runs `make demo`'s tour, steps 1–4 and the refusals, through a
// live signgate (the binary, as `signgate serve -config examples/config.demo.yaml`
// with a redis section added) in front of the property backend and `signgate sandbox`,
// on free loopback ports, with nonces and the 58到家 token in a real redis-server.
// The tour checks each answer as it goes; this test then looks closer at what each
// caller saw.
func TestBookingFlow(t *testing.T) {
	rs := testredis.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "signgate")
	if err := buildSigngate(t.Context(), bin, raceEnabled); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := startStack(ctx, stackOptions{
		signgate:    bin,
		config:      "../config.demo.yaml",
		dir:         dir,
		backendAddr: "127.0.0.1:0",
		sandboxAddr: freeAddr(t),
		listen:      "127.0.0.1:0",
		admin:       "127.0.0.1:0",
		redisAddr:   rs.Addr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.stop)

	var tutorial bytes.Buffer
	s, err := newTour(st, &tutorial).run(ctx)
	if err != nil || testing.Verbose() {
		t.Logf("the tutorial as printed:\n%s", tutorial.String())
	}
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the owner books with an API key and sees her order in full", func(t *testing.T) {
		if got := strings.Join(s.Services, ","); got != "cleaning,appliance_washing,nanny,maternity_nurse" {
			t.Errorf("services %s", got)
		}
		if c := s.ServicesCache; len(c) != 2 || !strings.HasPrefix(c[0], "signgate; fwd=miss; fwd-status=200; stored") || !strings.HasPrefix(c[1], "signgate; hit") {
			t.Errorf("the services list twice: Cache-Status %q, want a stored miss, then a hit", c)
		}
		if s.Booked.ID != 1 || s.Booked.Status != provider.StatusPending || s.Booked.ServiceName != "日常保潔" {
			t.Errorf("booked %+v", s.Booked)
		}
		if e := s.BadBooking; !strings.Contains(e.Message, "is not in the future") || e.RequestID == "" {
			t.Errorf("an appointment in the past: %+v, want the backend's 400 naming the field, with the gateway's request id", e)
		}
		o := s.OwnerView
		if o.Phone != "13812345678" || o.Status != provider.StatusCompleted || o.Staff == nil ||
			o.Staff.Name != "李秀英" || o.Staff.Phone != "13998765432" || len(o.Staff.Skills) != 2 {
			t.Errorf("the owner saw %+v staff %+v", o, o.Staff)
		}
		if got := historyOf(o); got != "待接單 → 已接單 → 服務中 → 已完成" {
			t.Errorf("history %s", got)
		}
	})

	t.Run("the owner logs in with WeChat and sees only her own orders", func(t *testing.T) {
		if len(s.Login.Token) < 43 || s.Login.ExpiresIn != 86400 {
			t.Errorf("login answered %d-character token, expires_in %d; want 43 or more, 86400", len(s.Login.Token), s.Login.ExpiresIn)
		}
		if e := s.OtherOwner; e == nil || e.Code != "not_found" || e.RequestID == "" {
			t.Errorf("a second owner asking for the first owner's order: %+v, want the backend's 404 not_found", e)
		}
		if e := s.NoSession; e == nil || e.Code != "missing_session" {
			t.Errorf("the app's key without a session: %+v, want 401 missing_session", e)
		}
	})

	t.Run("the interface spec refuses a malformed booking at the edge", func(t *testing.T) {
		r := s.SpecRefusal
		want := []string{
			`body /appointment_time: not a date-time: want RFC 3339 with a time zone, such as 2026-11-23T10:00:00+08:00`,
			`body /coupon: not a member the spec allows here (additionalProperties: false)`,
			`body /phone: string doesn't match the regular expression "^1[3-9][0-9]{9}$"`,
			`body /service_type: value is not one of the allowed values ["cleaning","appliance_washing","nanny","maternity_nurse"]`,
		}
		var got []string
		for _, e := range r.Errors {
			got = append(got, e.In+" "+e.At+": "+e.Message)
		}
		if r.Status != 400 || r.Code != "bad_request" || r.RequestID == "" || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%d %s %q, errors:\n%s\nwant:\n%s", r.Status, r.Code, r.Message, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if r.Failures != 1 {
			t.Errorf("%v request failures counted, want 1", r.Failures)
		}
	})

	t.Run("the provider sees every phone masked and moves the status", func(t *testing.T) {
		for _, o := range []provider.Order{s.ProviderView, s.WithStaff, s.FirstUse} {
			if o.Phone != "138****5678" {
				t.Errorf("the provider saw the owner's phone as %q", o.Phone)
			}
		}
		if s.WithStaff.Staff == nil || s.WithStaff.Staff.Phone != "139****5432" || s.WithStaff.Staff.Photo == "" {
			t.Errorf("staff as the provider saw it: %+v", s.WithStaff.Staff)
		}
		if got := strings.Join(s.Statuses, " → "); got != "已接單 → 服務中 → 已完成" {
			t.Errorf("statuses %s", got)
		}
	})

	t.Run("ops see the full number and the view is audited", func(t *testing.T) {
		if s.OpsView.Phone != "13812345678" || s.OpsView.Staff.Phone != "13998765432" {
			t.Errorf("ops saw %q / %q", s.OpsView.Phone, s.OpsView.Staff.Phone)
		}
		want := map[string]any{"msg": "audit", "client": "property-backend", "role": "ops", "route": "order-read", "request_id": s.OpsRequestID}
		for k, v := range want {
			if s.Audit[k] != v {
				t.Errorf("audit %s = %v, want %v (line %s)", k, s.Audit[k], v, s.AuditLine)
			}
		}
		if ts, _ := s.Audit["time"].(string); ts == "" {
			t.Errorf("audit line has no time: %s", s.AuditLine)
		}
	})

	t.Run("the relay registers staff on 58到家 with one cached token", func(t *testing.T) {
		if string(s.Saved.Data) != `{"userId":"1"}` || string(s.Updated.Data) != `{"userId":"1"}` {
			t.Errorf("save %s, update %s", s.Saved.Data, s.Updated.Data)
		}
		var all []map[string]any
		if err := json.Unmarshal(s.All.Data, &all); err != nil || len(all) != 1 {
			t.Fatalf("getAllServiceUser data %s", s.All.Data)
		}
		if u := all[0]; u["userName"] != "李秀英" || u["userRemark"] != "日常保潔, 家電清洗, 保姆" || u["userId"] != "1" {
			t.Errorf("service user %v", u)
		}
		if s.TokenFetches != 1 {
			t.Errorf("%v token fetches for three relay calls, want 1", s.TokenFetches)
		}
	})

	t.Run("wrong callers are refused", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			got    *provider.Error
			status int
			code   string
		}{
			{"the owner's key moving a status", s.OwnerSetsStatus, 403, "forbidden"},
			{"an unsigned provider call", s.Unsigned, 401, "missing_credentials"},
			{"a replayed provider call", s.Replayed, 401, "replayed"},
			{"an illegal status move", s.BadTransition, 400, "invalid_transition"},
		} {
			e := tt.got
			if e == nil || e.Status != tt.status || e.Code != tt.code || e.RequestID == "" || e.Message == "" {
				t.Errorf("%s: %+v, want %d %s in the JSON envelope", tt.name, e, tt.status, tt.code)
			}
		}
		if !strings.Contains(s.Unsigned.Message, "X-Timestamp") {
			t.Errorf("unsigned: %q, want it to name the missing header", s.Unsigned.Message)
		}
	})

	t.Run("nonces and the token live in Redis", func(t *testing.T) {
		rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
		defer rc.Close()
		nonces, err := rc.Keys(ctx, "signgate:nonce:{sunshine-housekeeping}:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		// Every signed provider request that reached the verifier with a good
		// signature left its nonce; the replay was refused, not recorded twice.
		if len(nonces) != s.ProviderNonceUses {
			t.Errorf("%d provider nonces in Redis, want %d", len(nonces), s.ProviderNonceUses)
		}
		if n, err := rc.Exists(ctx, "signgate:daojia:token:2801209652").Result(); err != nil || n != 1 {
			t.Errorf("the 58到家 token is not in Redis: %d %v", n, err)
		}
	})

	st.stop()
	t.Run("no log line holds a full mobile number", func(t *testing.T) {
		full := regexp.MustCompile(`1[3-9][0-9]{9}`)
		for _, path := range []string{st.gatewayLog, st.auditFile} {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			lines := 0
			for sc.Scan() {
				lines++
				if full.Match(sc.Bytes()) {
					t.Errorf("%s: %s", filepath.Base(path), sc.Text())
				}
			}
			if lines == 0 {
				t.Errorf("%s is empty", path)
			}
		}
	})
}

func historyOf(o provider.Order) string {
	var steps []string
	for _, h := range o.History {
		steps = append(steps, h.Status)
	}
	return strings.Join(steps, " → ")
}

// freeAddr returns a loopback address nothing listens on right now. The sandbox
// must be told its port before the gateway starts, so it cannot pick its own.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

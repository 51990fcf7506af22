package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York must load on a machine without zoneinfo

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/secret"
)

// DESIGN.md's daojia-md5 test vectors, verbatim.
const (
	vectorSecret      = "testSecret123"
	vectorAccessToken = "64256A615F66CC8FBE38AFCFD26EA744"
	vectorServiceKey  = "2801209652"
	vectorTimestamp   = "2016-01-10 10:00:00"
	vectorSmallJSON   = `{"userId":"1"}`
	vectorSmallSign   = "D00D9B214EBF79F7F5F4BE28AF7E8CE3"
	vectorUserJSON    = `{"userId":"1","userName":"张XX","userPhone":"15888888888","userAge":18,"userSex":1,"userRemark":"精通java,PHP","userStatus":1,"createTime":"2015-01-01 12:00:00"}`
	vectorUserSign    = "98208A1239AC3542392AAE4613D1B33E"
)

// vectorTime is the vectors' timestamp as an instant: 10:00 in GMT+8, 02:00 UTC.
var vectorTime = time.Date(2016, 1, 10, 2, 0, 0, 0, time.UTC)

// daojiaJSONBody renders a 58到家 call as JSON: the system parameters, then daojiaJson
// as the nested object (the exact bytes given) or, with asString, as a JSON string.
// Fields named in drop are left out; set overrides one field's rendered value.
func daojiaJSONBody(daojiaJSON, sign string, asString bool, set map[string]string, drop ...string) string {
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	dj := daojiaJSON
	if asString {
		dj = str(daojiaJSON)
	}
	fields := [][2]string{
		{"accessToken", str(vectorAccessToken)},
		{"serviceKey", str(vectorServiceKey)},
		{"format", str("json")},
		{"timestamp", str(vectorTimestamp)},
		{"sign", str(sign)},
		{"daojiaJson", dj},
	}
	var parts []string
	for _, f := range fields {
		if strings.Contains(strings.Join(drop, ","), f[0]) {
			continue
		}
		if v, ok := set[f[0]]; ok {
			f[1] = v
		}
		parts = append(parts, str(f[0])+":"+f[1])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func daojiaFormBody(daojiaJSON, sign string) string {
	return url.Values{
		"accessToken": {vectorAccessToken},
		"serviceKey":  {vectorServiceKey},
		"format":      {"json"},
		"timestamp":   {vectorTimestamp},
		"sign":        {sign},
		"daojiaJson":  {daojiaJSON},
	}.Encode()
}

const (
	jsonType = "application/json; charset=utf-8"
	formType = "application/x-www-form-urlencoded"
)

func TestVerifyDaojiaVectors(t *testing.T) {
	tests := []struct {
		name, body, contentType string
	}{
		{"small daojiaJson as a nested object", daojiaJSONBody(vectorSmallJSON, vectorSmallSign, false, nil), jsonType},
		{"user daojiaJson as a nested object", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil), jsonType},
		{"user daojiaJson as a string", daojiaJSONBody(vectorUserJSON, vectorUserSign, true, nil), jsonType},
		{"user daojiaJson in a form body", daojiaFormBody(vectorUserJSON, vectorUserSign), formType},
		{"small daojiaJson in a form body", daojiaFormBody(vectorSmallJSON, vectorSmallSign), formType},
		{"no Content-Type reads JSON", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil), ""},
		{"top-level whitespace and order do not matter", `{
  "daojiaJson": ` + vectorUserJSON + `,
  "sign": "` + vectorUserSign + `",
  "timestamp": "2016-01-10 10:00:00", "format": "json",
  "serviceKey": "2801209652", "accessToken": "64256A615F66CC8FBE38AFCFD26EA744"
}`, jsonType},
		{"a lower-case sign is the same signature", daojiaJSONBody(vectorUserJSON, strings.ToLower(vectorUserSign), false, nil), jsonType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newTestVerifier(vectorTime)
			if err := v.VerifyDaojia(context.Background(), []byte(tt.body), tt.contentType, "daojia", vectorServiceKey, vectorSecret); err != nil {
				t.Fatalf("VerifyDaojia(%s): %v", tt.body, err)
			}
		})
	}
}

func TestVerifyDaojiaRefusals(t *testing.T) {
	good := daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil)
	tests := []struct {
		name, body, contentType, wantServiceKey string
		secret                                  secret.Secret
		clock                                   time.Time
		status                                  int
		code, msg                               string
	}{
		// 401 invalid_signature
		{"serviceKey is not ours", good, jsonType, "2801209653", vectorSecret, vectorTime, 401, "invalid_signature", "signature does not match"},
		{"serviceKey changed after signing", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, map[string]string{"serviceKey": `"2801209653"`}), jsonType, "", vectorSecret, vectorTime, 401, "invalid_signature", "signature does not match"},
		{"daojiaJson changed after signing", daojiaJSONBody(strings.Replace(vectorUserJSON, `"userAge":18`, `"userAge":19`, 1), vectorUserSign, false, nil), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "invalid_signature", "signature does not match"},
		{"nested daojiaJson re-spaced: its exact bytes are signed", daojiaJSONBody(`{"userId": "1"}`, vectorSmallSign, false, nil), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "invalid_signature", "signature does not match"},
		{"accessToken dropped after signing", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil, "accessToken"), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "invalid_signature", "signature does not match"},
		{"signed with another secret", good, jsonType, vectorServiceKey, "otherSecret", vectorTime, 401, "invalid_signature", "signature does not match"},
		{"sign is not hex", daojiaJSONBody(vectorUserJSON, "not-a-sign", false, nil), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "invalid_signature", "signature does not match"},

		// 401 missing_credentials, naming the parameter
		{"no sign", daojiaJSONBody(vectorUserJSON, "", false, nil, "sign"), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "missing_credentials", "sign"},
		{"sign is null", daojiaJSONBody(vectorUserJSON, "", false, map[string]string{"sign": "null"}), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "missing_credentials", "sign"},
		{"no timestamp", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil, "timestamp"), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "missing_credentials", "timestamp"},
		{"no serviceKey", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil, "serviceKey"), jsonType, vectorServiceKey, vectorSecret, vectorTime, 401, "missing_credentials", "serviceKey"},

		// 400 bad_request
		{"body is not JSON", "sign=" + vectorUserSign, jsonType, vectorServiceKey, vectorSecret, vectorTime, 400, "bad_request", "not a JSON object"},
		{"sign given twice", strings.Replace(good, `"format"`, `"sign":"X","format"`, 1), jsonType, vectorServiceKey, vectorSecret, vectorTime, 400, "bad_request", `"sign" given twice`},
		{"malformed form body", "sign=%zz", formType, vectorServiceKey, vectorSecret, vectorTime, 400, "bad_request", "form body"},
		{"timestamp with slashes", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, map[string]string{"timestamp": `"2016/01/10 10:00:00"`}), jsonType, vectorServiceKey, vectorSecret, vectorTime, 400, "bad_request", "is not yyyy-MM-dd HH:mm:ss"},
		{"timestamp in Unix seconds", daojiaJSONBody(vectorUserJSON, vectorUserSign, false, map[string]string{"timestamp": `"1452391200"`}), jsonType, vectorServiceKey, vectorSecret, vectorTime, 400, "bad_request", "is not yyyy-MM-dd HH:mm:ss"},

		// 401 timestamp_skew
		{"gateway clock 11 minutes later", good, jsonType, vectorServiceKey, vectorSecret, vectorTime.Add(11 * time.Minute), 401, "timestamp_skew", "timestamp is more than 10m0s from the gateway's clock"},
		{"gateway clock 11 minutes earlier", good, jsonType, vectorServiceKey, vectorSecret, vectorTime.Add(-11 * time.Minute), 401, "timestamp_skew", "timestamp is more than 10m0s from the gateway's clock"},
		{"timestamp read as UTC would be 8 hours off", good, jsonType, vectorServiceKey, vectorSecret, time.Date(2016, 1, 10, 10, 0, 0, 0, time.UTC), 401, "timestamp_skew", "10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newTestVerifier(tt.clock)
			err := v.VerifyDaojia(context.Background(), []byte(tt.body), tt.contentType, "daojia", tt.wantServiceKey, tt.secret)
			wantAPIError(t, err, tt.status, tt.code, tt.msg)
			wantNoLeak(t, err, vectorSecret, "otherSecret")
		})
	}
}

func TestVerifyDaojiaWithinSkew(t *testing.T) {
	for _, d := range []time.Duration{-9 * time.Minute, 9 * time.Minute, 10 * time.Minute} {
		v, _ := newTestVerifier(vectorTime.Add(d))
		if err := v.VerifyDaojia(context.Background(), []byte(daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil)), jsonType, "daojia", vectorServiceKey, vectorSecret); err != nil {
			t.Errorf("clock %s off: %v", d, err)
		}
	}
}

func TestVerifyDaojiaReplay(t *testing.T) {
	ctx := context.Background()
	body := []byte(daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil))
	verify := func(v *Verifier, body []byte, scope string) error {
		return v.VerifyDaojia(ctx, body, jsonType, scope, vectorServiceKey, vectorSecret)
	}
	t.Run("a sign seen again is a replay", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		if err := verify(v, body, "daojia"); err != nil {
			t.Fatalf("first: %v", err)
		}
		wantAPIError(t, verify(v, body, "daojia"), 401, "replayed", "sign")
	})
	t.Run("the same call in a form body is a replay too", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		if err := verify(v, body, "daojia"); err != nil {
			t.Fatalf("first: %v", err)
		}
		err := v.VerifyDaojia(ctx, []byte(daojiaFormBody(vectorUserJSON, vectorUserSign)), formType, "daojia", vectorServiceKey, vectorSecret)
		wantAPIError(t, err, 401, "replayed", "sign")
	})
	t.Run("changing the sign's case does not make a replay new", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		if err := verify(v, body, "daojia"); err != nil {
			t.Fatalf("first: %v", err)
		}
		lower := []byte(daojiaJSONBody(vectorUserJSON, strings.ToLower(vectorUserSign), false, nil))
		wantAPIError(t, verify(v, lower, "daojia"), 401, "replayed", "sign")
	})
	t.Run("the same sign from another caller is accepted", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		if err := verify(v, body, "daojia"); err != nil {
			t.Fatalf("callback: %v", err)
		}
		if err := verify(v, body, "partner-speaking-daojia"); err != nil {
			t.Fatalf("partner: %v", err)
		}
	})
	t.Run("a forged call does not use up the sign", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		forged := []byte(daojiaJSONBody(strings.Replace(vectorUserJSON, `"userStatus":1`, `"userStatus":0`, 1), vectorUserSign, false, nil))
		wantAPIError(t, verify(v, forged, "daojia"), 401, "invalid_signature", "")
		if err := verify(v, body, "daojia"); err != nil {
			t.Fatalf("the genuine call after a forgery with its sign: %v", err)
		}
	})
	t.Run("an unreachable nonce store refuses with 503", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		v.Nonces = failingStore{}
		wantAPIError(t, verify(v, body, "daojia"), 503, "state_unavailable", "replay protection is unavailable")
	})
	t.Run("an empty secret is a wiring bug, never a pass", func(t *testing.T) {
		v, _ := newTestVerifier(vectorTime)
		err := v.VerifyDaojia(ctx, body, jsonType, "daojia", vectorServiceKey, "")
		wantAPIError(t, err, 500, "internal", "")
	})
}

// 58到家's timestamps are GMT+8 whatever TZ the gateway runs in.
func TestVerifyDaojiaTimeZoneIndependent(t *testing.T) {
	for _, zone := range []string{"America/New_York", "UTC", "Asia/Shanghai", "Pacific/Kiritimati"} {
		t.Run(zone, func(t *testing.T) {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			saved := time.Local
			time.Local = loc
			t.Cleanup(func() { time.Local = saved })

			body := []byte(daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil))
			// The gateway's clock reads the same instant in its own zone.
			v, _ := newTestVerifier(vectorTime.In(time.Local))
			if err := v.VerifyDaojia(context.Background(), body, jsonType, "daojia", vectorServiceKey, vectorSecret); err != nil {
				t.Fatalf("TZ=%s: %v", zone, err)
			}
		})
	}
}

func BenchmarkVerifyDaojia(b *testing.B) {
	body := []byte(daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil))
	v := &Verifier{Nonces: alwaysFresh{}, Now: func() time.Time { return vectorTime }}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyDaojia(context.Background(), body, jsonType, "daojia", vectorServiceKey, vectorSecret); err != nil {
			b.Fatal(err)
		}
	}
}

// alwaysFresh accepts every key, so a benchmark can verify one signed body repeatedly
// and measure parsing and signing rather than the store.
type alwaysFresh struct{}

func (alwaysFresh) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

// FuzzVerifyDaojia feeds arbitrary bodies to the verifier: it must never panic, and
// every refusal must be an *apierror.Error, so the gateway never answers a 500 for a
// caller's bad input.
func FuzzVerifyDaojia(f *testing.F) {
	f.Add(daojiaJSONBody(vectorUserJSON, vectorUserSign, false, nil), jsonType)
	f.Add(daojiaJSONBody(vectorSmallJSON, vectorSmallSign, true, nil), jsonType)
	f.Add(daojiaFormBody(vectorUserJSON, vectorUserSign), formType)
	f.Add(`{"sign":null,"timestamp":1,"serviceKey":{}}`, jsonType)
	f.Add(`{"sign":"A","timestamp":"2016-01-10 10:00:00","serviceKey":"1"}`, "")
	f.Add("sign=a&timestamp=2016-01-10+10%3A00%3A00&serviceKey=1", formType)
	f.Fuzz(func(t *testing.T, body, contentType string) {
		v, _ := newTestVerifier(vectorTime)
		err := v.VerifyDaojia(context.Background(), []byte(body), contentType, "daojia", vectorServiceKey, vectorSecret)
		if err == nil {
			return // a genuinely signed body; the seeds include them
		}
		var e *apierror.Error
		if !errors.As(err, &e) || e.Status >= 500 {
			t.Fatalf("VerifyDaojia(%q, %q) = %v, want a 4xx *apierror.Error", body, contentType, err)
		}
		wantNoLeak(t, err, vectorSecret)
	})
}

package daojia

import (
	"strings"
	"testing"
	"time"
)

// DESIGN.md's test vectors, verbatim.
func TestSignVectors(t *testing.T) {
	base := map[string]string{
		"accessToken": "64256A615F66CC8FBE38AFCFD26EA744",
		"serviceKey":  "2801209652",
		"format":      "json",
		"timestamp":   "2016-01-10 10:00:00",
	}
	with := func(daojiaJSON string) map[string]string {
		p := map[string]string{"daojiaJson": daojiaJSON}
		for k, v := range base {
			p[k] = v
		}
		return p
	}
	tests := []struct {
		name   string
		secret string
		params map[string]string
		want   string
	}{
		{"three plain parameters", "secret", map[string]string{"foo": "1", "bar": "2", "baz": "3"}, "154BB085DE3628B5B6D6E3262F1C7EA7"},
		{"system parameters and a small daojiaJson", "testSecret123", with(`{"userId":"1"}`), "D00D9B214EBF79F7F5F4BE28AF7E8CE3"},
		{"daojiaJson with Chinese text and numbers", "testSecret123", with(`{"userId":"1","userName":"张XX","userPhone":"15888888888","userAge":18,"userSex":1,"userRemark":"精通java,PHP","userStatus":1,"createTime":"2015-01-01 12:00:00"}`), "98208A1239AC3542392AAE4613D1B33E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sign(tt.params, tt.secret); got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
			withSign := map[string]string{SignParam: "ignored"}
			for k, v := range tt.params {
				withSign[k] = v
			}
			if got := Sign(withSign, tt.secret); got != tt.want {
				t.Errorf("Sign with a sign parameter = %s, want %s: sign must not be signed", got, tt.want)
			}
		})
	}
}

func TestParseParamsKeepsNestedBytes(t *testing.T) {
	body := `{"accessToken":"64256A615F66CC8FBE38AFCFD26EA744","serviceKey":"2801209652","format":"json","timestamp":"2016-01-10 10:00:00","sign":"D00D9B214EBF79F7F5F4BE28AF7E8CE3","daojiaJson":{"userId":"1"}}`
	p, err := ParseParams([]byte(body), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	if p["daojiaJson"] != `{"userId":"1"}` || p["sign"] != "D00D9B214EBF79F7F5F4BE28AF7E8CE3" {
		t.Fatalf("params %v", p)
	}
	if got := Sign(p, "testSecret123"); got != p["sign"] {
		t.Fatalf("a body signed by the vector does not verify: %s", got)
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name, body, contentType string
		want                    map[string]string
		wantErr                 string
	}{
		{"daojiaJson as a string", `{"a":"x","daojiaJson":"{\"userId\":\"1\"}"}`, "application/json",
			map[string]string{"a": "x", "daojiaJson": `{"userId":"1"}`}, ""},
		{"nested object kept byte for byte", `{"daojiaJson": { "b" : 1,"a":[1, 2] } }`, "application/json",
			map[string]string{"daojiaJson": `{ "b" : 1,"a":[1, 2] }`}, ""},
		{"numbers as written", `{"n":18,"f":1.50}`, "", map[string]string{"n": "18", "f": "1.50"}, ""},
		{"form body", "serviceKey=2801209652&timestamp=2016-01-10+10%3A00%3A00", "application/x-www-form-urlencoded; charset=utf-8",
			map[string]string{"serviceKey": "2801209652", "timestamp": "2016-01-10 10:00:00"}, ""},
		{"duplicate JSON key", `{"sign":"A","sign":"B"}`, "application/json", nil, `"sign" given twice`},
		{"duplicate form key", "sign=A&sign=B", "application/x-www-form-urlencoded", nil, `"sign" given 2 times`},
		{"not an object", `[1,2]`, "application/json", nil, "not a JSON object"},
		{"truncated", `{"a":"b"`, "application/json", nil, "JSON body"},
		{"trailing data", `{"a":"b"} {}`, "application/json", nil, "data after the object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParams([]byte(tt.body), tt.contentType)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestTimestampIsGMT8WhateverTheZone(t *testing.T) {
	utc := time.Date(2016, 1, 10, 2, 0, 0, 0, time.UTC)
	ny, _ := time.LoadLocation("America/New_York")
	for _, at := range []time.Time{utc, utc.In(ny), utc.Local()} {
		if got := Timestamp(at); got != "2016-01-10 10:00:00" {
			t.Errorf("Timestamp(%v) = %s", at, got)
		}
	}
	back, err := ParseTimestamp("2016-01-10 10:00:00")
	if err != nil || !back.Equal(utc) {
		t.Fatalf("ParseTimestamp = %v, %v", back, err)
	}
}

func FuzzParseParams(f *testing.F) {
	f.Add([]byte(`{"daojiaJson":{"userId":"1"},"sign":"X"}`), "application/json")
	f.Add([]byte("a=1&b=2"), "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		p, err := ParseParams(body, contentType)
		if err == nil {
			_ = Sign(p, "s")
		}
	})
}

func BenchmarkDaojiaSign(b *testing.B) {
	p := map[string]string{
		"accessToken": "64256A615F66CC8FBE38AFCFD26EA744", "serviceKey": "2801209652", "format": "json",
		"timestamp": "2016-01-10 10:00:00", "daojiaJson": `{"userId":"1","userName":"张XX","userPhone":"15888888888"}`,
	}
	b.ReportAllocs()
	for b.Loop() {
		Sign(p, "testSecret123")
	}
}

package cache

import (
	"net/http"
	"testing"
	"time"
)

func TestStorable(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const ttl = time.Minute
	vary := []string{"Accept-Language"}
	tests := []struct {
		name    string
		status  int
		header  http.Header
		wantTTL time.Duration
		why     string
		pass    bool
		noStale bool
	}{
		{"plain 200", 200, nil, ttl, "", false, false},
		{"204, 301, 404, 410 too", 404, nil, ttl, "", false, false},
		{"a 500 is not stored, nor marked", 500, nil, 0, "status", false, false},
		{"a 302 is not stored", 302, nil, 0, "status", false, false},
		{"a 206 is not stored", 206, nil, 0, "status", false, false},
		{"Set-Cookie", 200, http.Header{"Set-Cookie": {"sid=1"}}, 0, "set-cookie", true, false},
		{"no-store", 200, http.Header{"Cache-Control": {"no-store"}}, 0, "no-store", true, false},
		{"private, among others", 200, http.Header{"Cache-Control": {"max-age=600, Private"}}, 0, "private", true, false},
		{"private with a field list", 200, http.Header{"Cache-Control": {`private="Set-Cookie, X-A", max-age=60`}}, 0, "private", true, false},
		{"no-cache", 200, http.Header{"Cache-Control": {"no-cache"}}, 0, "no-cache", true, false},
		{"max-age shortens", 200, http.Header{"Cache-Control": {"public, max-age=10"}}, 10 * time.Second, "", false, false},
		{"max-age never lengthens", 200, http.Header{"Cache-Control": {"max-age=3600"}}, ttl, "", false, false},
		{"s-maxage wins over max-age, and forbids stale", 200, http.Header{"Cache-Control": {"max-age=5, s-maxage=20"}}, 20 * time.Second, "", false, true},
		{"the upstream's Age counts", 200, http.Header{"Cache-Control": {"max-age=30"}, "Age": {"25"}}, 5 * time.Second, "", false, false},
		{"max-age=0", 200, http.Header{"Cache-Control": {"max-age=0"}}, 0, "max-age", false, false},
		{"must-revalidate forbids stale", 200, http.Header{"Cache-Control": {"must-revalidate"}}, ttl, "", false, true},
		{"Expires shortens", 200, http.Header{"Date": {now.Format(http.TimeFormat)}, "Expires": {now.Add(30 * time.Second).Format(http.TimeFormat)}}, 30 * time.Second, "", false, false},
		{"Expires 0 is expired", 200, http.Header{"Expires": {"0"}}, 0, "expires", false, false},
		{"Vary by a header in the key", 200, http.Header{"Vary": {"accept-language, Accept-Encoding"}}, ttl, "", false, false},
		{"Vary by a header not in the key", 200, http.Header{"Vary": {"Accept-Language", "Cookie"}}, 0, "vary", true, false},
		{"Vary *", 200, http.Header{"Vary": {"*"}}, 0, "vary", true, false},
		{"an event stream", 200, http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}}, 0, "stream", true, false},
		{"trailers", 200, http.Header{"Trailer": {"X-Sum"}}, 0, "trailer", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			d := Storable(tt.status, h, ttl, vary, now)
			if d.TTL != tt.wantTTL || d.Why != tt.why || d.Pass != tt.pass || (d.TTL > 0 && d.NoStale != tt.noStale) {
				t.Fatalf("Storable = %+v, want ttl %v why %q pass %v noStale %v", d, tt.wantTTL, tt.why, tt.pass, tt.noStale)
			}
		})
	}
}

func TestEntryRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p := Policy{TTL: time.Minute, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 10 * time.Minute}
	e := newEntry(200, http.Header{"Content-Type": {"application/json"}, "Vary": {"Accept-Language", "Accept-Encoding"}}, []byte(`{"a":1}`), now, 40*time.Second, p)
	v := encode(e, 40*time.Second, p)

	later := now.Add(15 * time.Second)
	got, err := decode(v, later, 25*time.Second, 25*time.Second+10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || string(got.Body) != `{"a":1}` || got.Header.Get("Content-Type") != "application/json" || len(got.Header["Vary"]) != 2 {
		t.Fatalf("decoded %+v", got)
	}
	if !got.Stored.Equal(now) || !got.Fresh.Equal(now.Add(40*time.Second)) || !got.StaleUntil.Equal(got.Fresh.Add(30*time.Second)) || !got.ErrorUntil.Equal(got.Fresh.Add(10*time.Minute)) {
		t.Fatalf("times: stored %v fresh %v stale %v error %v", got.Stored, got.Fresh, got.StaleUntil, got.ErrorUntil)
	}
	// Stale: the fresh marker is gone, and what Redis has left places it.
	got, err = decode(v, now.Add(50*time.Second), -2*time.Millisecond, 10*time.Minute-10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Stored.Equal(now) {
		t.Fatalf("stale entry stored at %v, want %v", got.Stored, now)
	}
	for _, bad := range [][]byte{nil, {'X'}, {kindEntry}, {kindEntry, 0xff}, v[:12]} {
		if e, err := decode(bad, now, time.Second, time.Second); err == nil {
			t.Errorf("decode(%q) = %+v, want an error", bad, e)
		}
	}
}

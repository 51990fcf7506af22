package server

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/leakcheck"
)

// The owner data a framework-style backend holds, in the forms owners type it.
const (
	ownerOrder = `{"orderId":"2026112300012","service":"日常保洁","owner":{"name":"张三","phone":"13812345678"},` +
		`"contactPhone":13912345678,"remark":"到了请打 137 1234 5678 或 １５８１２３４５６７８","price":"50.00"}`
	ownerCSV  = "orderId,owner,phone,remark\n2026112300012,张三,13812345678,备用 139-1234-5678\n"
	ownerYAML = "orders:\n  - id: 2026112300012\n    phone: \"13812345678\"\n    backup: 139.1234.5678\n"
	ownerNDJ  = `{"orderId":"1","phone":"13812345678"}` + "\n" + `{"orderId":"2","note":"tel 13912345678"}` + "\n"
)

// bodyModTime is the Last-Modified of every fixture resource.
var bodyModTime = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// bodyETag is how common frameworks name a representation: a hash of its bytes.
func bodyETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// frameworkUpstream behaves as ordinary web frameworks and static-file servers do:
// body-hash ETags and Range, If-None-Match, If-Match, If-Modified-Since and If-Range
// honoured by http.ServeContent; CSV, NDJSON, YAML and PDF exports; server-sent
// events with long lines; gzip and deflate; trailers; and a few answers no polite
// backend gives but a buggy one does.
func frameworkUpstream(t *testing.T) *httptest.Server {
	serve := func(w http.ResponseWriter, r *http.Request, ctype string, body []byte) {
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		} else {
			w.Header()["Content-Type"] = nil // no type at all, and no sniffing
		}
		w.Header().Set("ETag", bodyETag(body))
		http.ServeContent(w, r, "", bodyModTime, bytes.NewReader(body))
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/orders/1":
			serve(w, r, "application/json; charset=utf-8", []byte(ownerOrder))
		case "/api/orders/1.gz": // a precompressed file, as static servers keep them
			w.Header().Set("Content-Encoding", "gzip")
			serve(w, r, "application/json", gz(t, []byte(ownerOrder)))
		case "/api/export.csv":
			serve(w, r, "text/csv; charset=utf-8", []byte(ownerCSV))
		case "/api/export.ndjson":
			serve(w, r, "application/x-ndjson", []byte(ownerNDJ))
		case "/api/export.yaml":
			serve(w, r, "application/yaml", []byte(ownerYAML))
		case "/api/export.pdf":
			serve(w, r, "application/pdf", []byte("%PDF-1.4\n(Owner 13812345678) Tj\n"))
		case "/api/export.bin":
			serve(w, r, "application/vnd.signgate-test.export", []byte("owner\t13812345678\n"))
		case "/api/export.xlsx":
			serve(w, r, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", []byte("PK\x03\x04 13812345678"))
		case "/api/export.zip":
			serve(w, r, "application/zip", []byte("PK\x03\x04 13812345678"))
		case "/api/utf16":
			serve(w, r, "text/plain; charset=utf-16le", []byte("1\x003\x008\x001\x002\x003\x004\x005\x006\x007\x008\x00"))
		case "/api/utf16-bom":
			serve(w, r, "text/plain", []byte("\xff\xfe1\x003\x008\x001\x002\x003\x004\x005\x006\x007\x008\x00"))
		case "/api/untyped":
			serve(w, r, "", []byte("owner 13812345678"))
		case "/api/badly-typed":
			serve(w, r, "text/plain; charset=\"", []byte("owner 13812345678"))
		case "/api/map.svg":
			serve(w, r, "image/svg+xml", []byte(`<svg><text>13812345678</text></svg>`))
		case "/api/two-types":
			w.Header().Add("Content-Type", "image/png")
			w.Header().Add("Content-Type", "text/plain")
			w.Write([]byte("owner 13812345678"))
		case "/api/headers":
			h := w.Header()
			h.Set("X-Owner-Phone", "13812345678")
			h.Set("Location", "/api/orders?phone=13812345678")
			h.Set("Content-Disposition", `attachment; filename="13812345678.csv"`)
			h.Set("Link", `</api/owners/13812345678>; rel="owner"`)
			h.Add("Set-Cookie", "last_owner=13812345678; Path=/")
			h.Set("X-Owner-13812345678", "1")
			h.Set("Content-Type", "application/json")
			w.Write([]byte(`{"code":0}`))
		case "/api/trailers":
			w.Header().Set("Trailer", "X-Owner-Phone, X-Row-Count")
			w.Header().Set("Content-Type", "text/csv")
			w.Write([]byte("orderId\n1\n"))
			w.(http.Flusher).Flush()
			w.Header().Set("X-Owner-Phone", "13812345678")
			w.Header().Set("X-Row-Count", "1")
			w.Header().Set(http.TrailerPrefix+"X-Late-Phone", "13912345678")
		case "/api/digests":
			body := []byte(ownerOrder)
			md := md5.Sum(body)
			sh := sha256.Sum256(body)
			w.Header().Set("Content-MD5", base64.StdEncoding.EncodeToString(md[:]))
			w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sh[:])+":")
			w.Header().Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sh[:])+":")
			w.Header().Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sh[:]))
			serve(w, r, "application/json", body)
		case "/api/feed":
			// Server-sent events whose lines are longer than any read buffer, a
			// number straddling the 4 KB and 64 KB marks, written in odd chunks.
			w.Header().Set("Content-Type", "text/event-stream")
			for _, pad := range []int{4096 - 9, 65536 - 6, 10} {
				line := "data: " + strings.Repeat("x", pad) + " 13812345678 ok\n\n"
				for len(line) > 0 {
					n := min(len(line), 1000+pad%7)
					w.Write([]byte(line[:n]))
					w.(http.Flusher).Flush()
					line = line[n:]
				}
			}
		case "/api/feed.gz":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			fmt.Fprintf(zw, "data: %s 13812345678\n\n", strings.Repeat("y", 5000))
			zw.Flush()
			w.(http.Flusher).Flush()
			fmt.Fprintf(zw, "data: second 13912345678\n\n")
			zw.Close()
		case "/api/deflate":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "deflate")
			zw := zlib.NewWriter(w)
			zw.Write([]byte(ownerOrder))
			zw.Close()
		case "/api/double-gzip":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip, gzip")
			w.Write(gz(t, gz(t, []byte(ownerOrder))))
		case "/api/two-encodings":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Add("Content-Encoding", "identity")
			w.Header().Add("Content-Encoding", "gzip")
			w.Write(gz(t, []byte(ownerOrder)))
		case "/api/brotli":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte("owner 13812345678"))
		case "/api/bomb":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz(t, append(bytes.Repeat([]byte{' '}, 1<<20), " 13812345678"...)))
		case "/api/partial-anyway":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Range", "bytes 40-70/200")
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte(`phone":"13812345678","x`))
		case "/api/early-hints":
			w.Header().Set("Link", "</api/owners/13812345678>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"code":0}`))
		case "/api/picture.png":
			serve(w, r, "image/png", []byte("\x89PNG\r\n\x1a\nIHDR"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// failClosedConfig is maskingConfig with a larger masking limit (the SSE lines are
// 64 KB) and the refusal of compressed bodies over it still within reach.
func failClosedConfig(upstreamURL string) string {
	return strings.Replace(maskingConfig(upstreamURL, ""), "max_body_bytes: 4096", "max_body_bytes: 262144", 1)
}

// received is everything a caller got: status line, headers, body as sent on the
// wire (Content-Encoding not undone), and trailers.
type received struct {
	status  int
	header  http.Header
	body    []byte
	trailer http.Header
}

// fetch sends a request as key with hdr (pairs) and reads all of the answer. The
// Accept-Encoding is always set, so the client never decodes behind the test's back.
func (g *testGateway) fetch(t *testing.T, method, path, key string, hdr ...string) received {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Accept-Encoding", "identity")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return received{status: resp.StatusCode, header: resp.Header, body: body, trailer: resp.Trailer}
}

// receivedLeaks lists every full mobile number in what a caller received: the status line,
// every header name and value, the body (decoded too, when it is compressed) and
// every trailer.
func receivedLeaks(a received) []string {
	var found []string
	look := func(where string, b []byte) {
		for _, n := range leakcheck.Find(b) {
			found = append(found, where+": "+n)
		}
	}
	look("status", []byte(fmt.Sprint(a.status)))
	for k, vs := range a.header {
		look("header name", []byte(k))
		for _, v := range vs {
			look("header "+k, []byte(v))
		}
	}
	for k, vs := range a.trailer {
		look("trailer name", []byte(k))
		for _, v := range vs {
			look("trailer "+k, []byte(v))
		}
	}
	// Compressed bytes are looked at decoded: deflate's output can hold a run of
	// ASCII digits by chance, which is no owner's number.
	encoded := false
	for _, enc := range a.header.Values("Content-Encoding") {
		encoded = encoded || !strings.EqualFold(strings.TrimSpace(enc), "identity")
	}
	if !encoded {
		look("body", a.body)
	}
	for _, enc := range a.header.Values("Content-Encoding") {
		switch strings.ToLower(strings.TrimSpace(enc)) {
		case "gzip":
			if zr, err := gzip.NewReader(bytes.NewReader(a.body)); err == nil {
				plain, _ := io.ReadAll(zr)
				look("gzip body", plain)
			}
		case "deflate":
			if zr, err := zlib.NewReader(bytes.NewReader(a.body)); err == nil {
				plain, _ := io.ReadAll(zr)
				look("deflate body", plain)
			}
		}
	}
	if mt, params, err := mime.ParseMediaType(a.header.Get("Content-Type")); err == nil && mt == "multipart/byteranges" && !encoded {
		mr := multipart.NewReader(bytes.NewReader(a.body), params["boundary"])
		for p, err := mr.NextPart(); err == nil; p, err = mr.NextPart() {
			b, _ := io.ReadAll(p)
			look("part", b)
		}
	}
	return found
}

func wantNoLeak(t *testing.T, what string, a received) {
	t.Helper()
	if l := receivedLeaks(a); len(l) > 0 {
		t.Errorf("%s: a full number reached the provider (%d %v):\n%v\nbody: %.300q", what, a.status, a.header, l, a.body)
	}
}

// TestHostileProviderLearnsNoNumber runs every answer a framework-style backend
// gives through the gateway as a mask role, and checks every byte the caller
// receives.
func TestHostileProviderLearnsNoNumber(t *testing.T) {
	up := frameworkUpstream(t)
	g := startGateway(t, failClosedConfig(up.URL))

	cases := []struct {
		name, path string
		hdr        []string
		status     int    // 0: any 2xx
		contains   string // the masked body holds this
	}{
		{name: "JSON with body-hash ETag", path: "/api/orders/1", contains: `"phone":"138****5678"`},
		{name: "precompressed JSON, identity asked", path: "/api/orders/1.gz"},
		{name: "precompressed JSON, gzip asked", path: "/api/orders/1.gz", hdr: []string{"Accept-Encoding", "gzip"}},
		{name: "CSV export", path: "/api/export.csv", contains: "138****5678"},
		{name: "NDJSON export", path: "/api/export.ndjson", contains: "138****5678"},
		{name: "YAML export", path: "/api/export.yaml", contains: "138****5678"},
		{name: "PDF export: its text streams are compressed", path: "/api/export.pdf", status: 502},
		{name: "spreadsheet export: a zip", path: "/api/export.xlsx", status: 502},
		{name: "zip download", path: "/api/export.zip", status: 502},
		{name: "UTF-16 by charset", path: "/api/utf16", status: 502},
		{name: "UTF-16 by byte order mark", path: "/api/utf16-bom", status: 502},
		{name: "a vendor type nobody listed", path: "/api/export.bin", contains: "138****5678"},
		{name: "no Content-Type at all", path: "/api/untyped", contains: "138****5678"},
		{name: "a Content-Type that does not parse", path: "/api/badly-typed", contains: "138****5678"},
		{name: "SVG is an image that carries text", path: "/api/map.svg", contains: "138****5678"},
		{name: "two Content-Types, one of them media", path: "/api/two-types", contains: "138****5678"},
		{name: "numbers in response headers", path: "/api/headers"},
		{name: "numbers in trailers", path: "/api/trailers"},
		{name: "digests of the unmasked body", path: "/api/digests"},
		{name: "SSE with lines longer than any buffer", path: "/api/feed", contains: "138****5678 ok"},
		{name: "gzip SSE", path: "/api/feed.gz", hdr: []string{"Accept-Encoding", "gzip"}},
		{name: "zlib deflate", path: "/api/deflate", hdr: []string{"Accept-Encoding", "gzip"}},
		{name: "Content-Encoding stated twice in one line", path: "/api/double-gzip", status: 502},
		{name: "Content-Encoding in two header lines", path: "/api/two-encodings", status: 502},
		{name: "an encoding the gateway cannot read", path: "/api/brotli", status: 502},
		{name: "a compressed body over the limit once decoded", path: "/api/bomb", status: 502},
		{name: "206 nobody asked for", path: "/api/partial-anyway", status: 502},
		{name: "single range", path: "/api/orders/1", hdr: []string{"Range", "bytes=0-80"}},
		{name: "range cutting a number in two", path: "/api/orders/1", hdr: []string{"Range", "bytes=84-90"}},
		{name: "multiple ranges", path: "/api/orders/1", hdr: []string{"Range", "bytes=0-10,80-100,150-"}},
		{name: "range on the precompressed file", path: "/api/orders/1.gz", hdr: []string{"Range", "bytes=0-30", "Accept-Encoding", "gzip"}},
		{name: "HEAD", path: "/api/orders/1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := "GET"
			if c.name == "HEAD" {
				method = "HEAD"
			}
			a := g.fetch(t, method, c.path, providerKey, c.hdr...)
			wantNoLeak(t, c.name, a)
			switch {
			case c.status != 0 && a.status != c.status:
				t.Errorf("status %d, want %d: %s", a.status, c.status, a.body)
			case c.status == 0 && (a.status < 200 || a.status > 299):
				t.Errorf("status %d, want a 2xx: %s", a.status, a.body)
			}
			if c.status == 502 && code(t, a.body) != "upstream_error" {
				t.Errorf("body %s, want the upstream_error envelope", a.body)
			}
			if c.contains != "" && !bytes.Contains(a.body, []byte(c.contains)) {
				t.Errorf("body lacks %q: %.400q", c.contains, a.body)
			}
		})
	}

	t.Run("informational answers", func(t *testing.T) {
		var interim []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			interim = append(interim, fmt.Sprint(code, h))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", g.url+"/api/early-hints", nil)
		req.Header.Set("X-Api-Key", providerKey)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantNoLeak(t, "final answer", received{status: resp.StatusCode, header: resp.Header, body: body, trailer: resp.Trailer})
		if len(interim) == 0 {
			t.Fatal("the 103 never arrived; the test proves nothing")
		}
		for _, h := range interim {
			if l := leakcheck.Find([]byte(h)); len(l) > 0 {
				t.Errorf("a 1xx answer carried %v: %s", l, h)
			}
		}
	})
	t.Run("media that cannot carry text passes untouched", func(t *testing.T) {
		a := g.fetch(t, "GET", "/api/picture.png", providerKey)
		if a.status != 200 || string(a.body) != "\x89PNG\r\n\x1a\nIHDR" {
			t.Fatalf("%d %q", a.status, a.body)
		}
	})
	t.Run("unmask role gets the representation as the backend sent it", func(t *testing.T) {
		a := g.fetch(t, "GET", "/api/orders/1", opsKey, "Range", "bytes=0-9")
		if a.status != 206 || string(a.body) != ownerOrder[:10] {
			t.Fatalf("%d %q", a.status, a.body)
		}
	})
}

// TestNoOracleOnTheUnmaskedBody: a mask role that guesses the unmasked body (it
// knows all of it but four digits) and asks the upstream to compare its guess,
// through a validator or a range, gets the same answer for a right guess as for a
// wrong one. Validators it sees name the masked bytes, and its conditional
// requests are decided on them, so polling with If-None-Match still gets 304.
func TestNoOracleOnTheUnmaskedBody(t *testing.T) {
	up := frameworkUpstream(t)
	g := startGateway(t, failClosedConfig(up.URL))

	rightGuess := bodyETag([]byte(ownerOrder))
	wrongGuess := bodyETag([]byte(strings.Replace(ownerOrder, "13812345678", "13800005678", 1)))
	masked := g.fetch(t, "GET", "/api/orders/1", providerKey)
	if masked.status != 200 {
		t.Fatalf("plain GET: %d %s", masked.status, masked.body)
	}
	maskedETag := masked.header.Get("ETag")
	if maskedETag == "" || maskedETag == rightGuess {
		t.Fatalf("ETag %q: want one naming the masked bytes, not the upstream's %q", maskedETag, rightGuess)
	}
	if want := strongETagOf(masked.body); maskedETag != want {
		t.Errorf("ETag %s, want %s (a hash of the masked bytes)", maskedETag, want)
	}

	same := func(t *testing.T, hdrName string, right, wrong string) {
		t.Helper()
		a := g.fetch(t, "GET", "/api/orders/1", providerKey, hdrName, right)
		b := g.fetch(t, "GET", "/api/orders/1", providerKey, hdrName, wrong)
		wantNoLeak(t, "right guess", a)
		wantNoLeak(t, "wrong guess", b)
		sameBody := bytes.Equal(a.body, b.body)
		if a.status >= 400 && b.status >= 400 {
			sameBody = code(t, a.body) == code(t, b.body) // the envelopes differ by request id
		}
		if a.status != b.status || !sameBody || a.header.Get("Content-Range") != b.header.Get("Content-Range") {
			t.Errorf("%s: a right guess answers %d (%d bytes), a wrong one %d (%d bytes): an oracle",
				hdrName, a.status, len(a.body), b.status, len(b.body))
		}
	}
	t.Run("If-None-Match", func(t *testing.T) { same(t, "If-None-Match", rightGuess, wrongGuess) })
	t.Run("If-Match", func(t *testing.T) { same(t, "If-Match", rightGuess, wrongGuess) })
	t.Run("If-Range", func(t *testing.T) {
		a := g.fetch(t, "GET", "/api/orders/1", providerKey, "If-Range", rightGuess, "Range", "bytes=0-10")
		b := g.fetch(t, "GET", "/api/orders/1", providerKey, "If-Range", wrongGuess, "Range", "bytes=0-10")
		if a.status != b.status || !bytes.Equal(a.body, b.body) {
			t.Errorf("If-Range: right guess %d, wrong guess %d", a.status, b.status)
		}
		wantNoLeak(t, "If-Range", a)
	})

	t.Run("polling with the masked ETag gets 304", func(t *testing.T) {
		a := g.fetch(t, "GET", "/api/orders/1", providerKey, "If-None-Match", maskedETag)
		if a.status != 304 || len(a.body) != 0 {
			t.Fatalf("%d %q, want 304", a.status, a.body)
		}
		wantNoLeak(t, "304", a)
	})
	t.Run("If-Modified-Since decided at the gateway", func(t *testing.T) {
		a := g.fetch(t, "GET", "/api/orders/1", providerKey, "If-Modified-Since", bodyModTime.Format(http.TimeFormat))
		if a.status != 304 {
			t.Fatalf("%d, want 304", a.status)
		}
	})
	t.Run("If-Match with the masked ETag passes, with another fails 412", func(t *testing.T) {
		a := g.fetch(t, "GET", "/api/orders/1", providerKey, "If-Match", maskedETag)
		if a.status != 200 || !bytes.Equal(a.body, masked.body) {
			t.Fatalf("%d, want 200 with the masked body", a.status)
		}
		b := g.fetch(t, "GET", "/api/orders/1", providerKey, "If-Match", wrongGuess)
		if b.status != 412 || code(t, b.body) != "precondition_failed" {
			t.Fatalf("%d %s, want 412 precondition_failed", b.status, b.body)
		}
	})
	t.Run("ranges are cut from the masked bytes", func(t *testing.T) {
		for _, r := range [][2]int{{0, 80}, {84, 90}, {100, len(masked.body) - 1}} {
			a := g.fetch(t, "GET", "/api/orders/1", providerKey, "Range", fmt.Sprintf("bytes=%d-%d", r[0], r[1]))
			if a.status != 206 || !bytes.Equal(a.body, masked.body[r[0]:r[1]+1]) {
				t.Errorf("range %v: %d %q, want 206 %q", r, a.status, a.body, masked.body[r[0]:r[1]+1])
			}
			if want := fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], len(masked.body)); a.header.Get("Content-Range") != want {
				t.Errorf("Content-Range %q, want %q", a.header.Get("Content-Range"), want)
			}
		}
		a := g.fetch(t, "GET", "/api/orders/1", providerKey, "Range", "bytes=100000-")
		if a.status != 416 || code(t, a.body) != "range_not_satisfiable" {
			t.Errorf("unsatisfiable range: %d %s, want 416 range_not_satisfiable", a.status, a.body)
		}
	})
	t.Run("HEAD says what GET sends", func(t *testing.T) {
		a := g.fetch(t, "HEAD", "/api/orders/1", providerKey)
		if a.status != 200 || a.header.Get("ETag") != maskedETag || a.header.Get("Content-Length") != fmt.Sprint(len(masked.body)) {
			t.Fatalf("HEAD %d ETag %s Content-Length %s; GET had %s and %d bytes",
				a.status, a.header.Get("ETag"), a.header.Get("Content-Length"), maskedETag, len(masked.body))
		}
	})
	t.Run("a write with preconditions is refused, not applied unconditionally", func(t *testing.T) {
		a := g.fetch(t, "PUT", "/api/orders/1", providerKey, "If-Match", maskedETag)
		if a.status != 400 || code(t, a.body) != "bad_request" {
			t.Fatalf("%d %s, want 400 bad_request", a.status, a.body)
		}
	})
}

// strongETagOf is the ETag the gateway gives masked bytes: SHA-256 in letters.
func strongETagOf(b []byte) string {
	sum := sha256.Sum256(b)
	tag := `"sg-`
	for _, c := range sum[:12] {
		tag += string(rune('a'+c>>4)) + string(rune('a'+c&0xf))
	}
	return tag + `"`
}

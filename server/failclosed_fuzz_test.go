package server

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// fuzzAnswer is one upstream answer the fuzzer makes up.
type fuzzAnswer struct {
	status     int
	ctype      string
	enc        uint8
	header     string
	trailer    string
	body       []byte
	chunked    bool
	splitAfter int
}

// encodings the fuzzer picks from, by enc % len: none, the readable ones, and the
// ones the gateway must refuse.
var fuzzEncodings = []string{"", "gzip", "deflate", "gzip, gzip", "br", "identity\ngzip", "GZIP", "x-gzip"}

func (a *fuzzAnswer) serve(w http.ResponseWriter) {
	h := w.Header()
	if a.ctype != "" {
		h.Set("Content-Type", a.ctype)
	} else {
		h["Content-Type"] = nil
	}
	body := a.body
	enc := fuzzEncodings[int(a.enc)%len(fuzzEncodings)]
	for _, e := range strings.Split(enc, "\n") {
		if e != "" {
			h.Add("Content-Encoding", e)
		}
	}
	switch strings.ToLower(enc) {
	case "gzip", "x-gzip", "identity\ngzip":
		body = gzipBytes(body)
	case "gzip, gzip":
		body = gzipBytes(gzipBytes(body))
	case "deflate":
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
	}
	h.Set("X-Owner-Note", a.header)
	h.Set("ETag", bodyETag(a.body))
	if a.trailer != "" {
		h.Set("Trailer", "X-Owner-Trailer")
	}
	if !a.chunked {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(a.status)
	cut := min(a.splitAfter, len(body))
	w.Write(body[:cut])
	if f, ok := w.(http.Flusher); ok && a.chunked {
		f.Flush()
	}
	w.Write(body[cut:])
	if a.trailer != "" {
		h.Set("X-Owner-Trailer", a.trailer)
	}
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// FuzzMaskedAnswer makes up upstream answers (status, content type, encoding,
// framing, headers, trailers) and requests (ranges, validators, HEAD), runs them
// through the real gateway as a mask role, and fails when anything the caller
// receives holds a full mobile number, save the body of media types (image/*,
// audio/*, video/*, font/*), which pass as they are.
func FuzzMaskedAnswer(f *testing.F) {
	var mu sync.Mutex
	var current *fuzzAnswer
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := current
		mu.Unlock()
		a.serve(w)
	}))
	defer up.Close()
	cfg, err := parseConfig(maskingConfig(up.URL, ""))
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	defer srv.gw.Load().retire(nil)
	gw := httptest.NewServer(http.HandlerFunc(srv.serveGateway))
	defer gw.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	seeds := []struct {
		status                     int
		ctype                      string
		enc                        uint8
		header, trailer, rng, cond string
		body                       string
		chunked                    bool
		split                      int
		head                       bool
	}{
		{200, "application/json", 0, "", "", "", "", ownerOrder, false, 0, false},
		{200, "application/json", 1, "13812345678", "13912345678", "bytes=0-20,40-", "", ownerOrder, true, 90, false},
		{200, "text/csv", 2, "", "", "bytes=30-40", `"x"`, ownerCSV, true, 33, true},
		{200, "text/event-stream", 0, "", "tel 13812345678", "", "", "data: 13812345678\n\ndata: 138", true, 26, false},
		{200, "application/x-ndjson", 1, "", "", "", "", ownerNDJ, true, 5, false},
		{404, "", 0, "+86 138 1234 5678", "", "", "", "owner 13812345678", false, 0, false},
		{200, "image/png", 0, "138-1234-5678", "13812345678", "bytes=0-3", "", "\x89PNG 13812345678", false, 0, false},
		{500, "application/yaml", 3, "", "", "", "", ownerYAML, false, 0, false},
	}
	for _, s := range seeds {
		f.Add(s.status, s.ctype, s.enc, s.header, s.trailer, s.rng, s.cond, []byte(s.body), s.chunked, s.split, s.head)
	}
	f.Fuzz(func(t *testing.T, status int, ctype string, enc uint8, header, trailer, rng, cond string, body []byte, chunked bool, split int, head bool) {
		statuses := []int{200, 201, 203, 204, 206, 301, 304, 404, 410, 500}
		a := &fuzzAnswer{
			status: statuses[(status%len(statuses)+len(statuses))%len(statuses)], ctype: ctype, enc: enc,
			header: header, trailer: trailer, body: body, chunked: chunked, splitAfter: max(split, 0),
		}
		for _, v := range []string{ctype, header, trailer, rng, cond} {
			if !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n") {
				return // no client or upstream can send it: not an answer to test
			}
		}
		mu.Lock()
		current = a
		mu.Unlock()
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		req, _ := http.NewRequest(method, gw.URL+"/api/orders/1", nil)
		req.Header.Set("X-Api-Key", providerKey)
		req.Header.Set("Accept-Encoding", "gzip")
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		if cond != "" {
			req.Header.Set("If-None-Match", cond)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body) // a cut stream is an error here, and fine
		resp.Body.Close()
		r := received{status: resp.StatusCode, header: resp.Header, body: got, trailer: resp.Trailer}
		if kindOf([]string{ctype}) == kindMedia && len(resp.Header.Values("Content-Type")) == 1 {
			r.body = nil
		}
		if l := receivedLeaks(r); len(l) > 0 {
			t.Fatalf("a full number reached the mask role: %v\nstatus %d header %v", l, resp.StatusCode, resp.Header)
		}
	})
}

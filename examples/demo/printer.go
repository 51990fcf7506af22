package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// printer writes the tour as a tutorial reads: a heading per step, a few words on
// what happens, and every request and answer as it crossed the wire.
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// heading starts a step; text is a paragraph, wrapped by hand.
func (p *printer) heading(title, text string) {
	p.printf("\n\n━━ %s\n\n%s\n", title, strings.TrimSpace(text))
}

// note is a line of commentary between exchanges.
func (p *printer) note(format string, args ...any) {
	p.printf("\n%s\n", indent(fmt.Sprintf(format, args...), "   "))
}

// client returns an HTTP client whose every exchange is printed as caller's.
func (p *printer) client(caller string, base http.RoundTripper) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &printingTransport{p: p, caller: caller, base: base}}
}

// The request headers worth showing: who calls, and the signature.
var shownHeaders = []string{"X-Api-Key", "Authorization", "Referer", "X-Timestamp", "X-Nonce", "X-Signature", "X-Request-Id"}

// The response headers worth showing: what the response cache did.
var shownResponseHeaders = []string{"Cache-Status", "Age"}

type printingTransport struct {
	p      *printer
	caller string
	base   http.RoundTripper
}

func (t *printingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n   %s ▶ %s %s\n", t.caller, req.Method, req.URL.RequestURI())
	for _, h := range shownHeaders {
		if v := req.Header.Get(h); v != "" {
			fmt.Fprintf(&b, "       %s: %s\n", h, v)
		}
	}
	if req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			body, _ := io.ReadAll(rc)
			rc.Close()
			if len(body) > 0 {
				fmt.Fprintf(&b, "       %s\n", body)
			}
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		fmt.Fprintf(&b, "   ◀ %v\n", err)
		t.p.printf("%s", b.String())
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "   ◀ %s\n", resp.Status)
	for _, h := range shownResponseHeaders {
		if v := resp.Header.Get(h); v != "" {
			fmt.Fprintf(&b, "       %s: %s\n", h, v)
		}
	}
	if len(bytes.TrimSpace(data)) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, bytes.TrimSpace(data), "       ", "  ") == nil {
			data = pretty.Bytes()
		}
		fmt.Fprintf(&b, "       %s\n", data)
	}
	t.p.printf("%s", b.String())
	return resp, nil
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

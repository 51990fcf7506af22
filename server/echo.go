package server

import (
	"encoding/json"
	"io"
	"net/http"
)

// EchoHandler is the built-in upstream of the embedded default config: it answers
// every request with what it received, so a first run shows what the gateway passes
// on (identity headers added, credentials stripped). GET /healthz answers ok.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		headers := make(map[string]string, len(r.Header))
		for k := range r.Header {
			headers[k] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{
			"method":  r.Method,
			"path":    r.URL.Path,
			"query":   r.URL.RawQuery,
			"headers": headers,
			"body":    string(body),
		})
	})
}

package server

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/mask"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/reqinfo"
)

// newMasker compiles the masking section. Logs use the same masker whatever the
// role, so what a provider cannot see never reaches a log line either.
func newMasker(mc config.Masking) *mask.Masker {
	return mask.New(mask.Rules{
		Fields:       mc.Fields,
		DetectMobile: slices.Contains(mc.Detect, "cn_mobile"),
		DetectIDCard: slices.Contains(mc.Detect, "cn_id_card"),
		Names:        mc.Names,
	})
}

// masking applies a config's masking rules to one route's traffic.
type masking struct {
	masker  *mask.Masker
	maxBody int64
	logger  *slog.Logger
	audit   *slog.Logger
}

// maskResponses masks the upstream's answer for clients whose roles say mask, and
// writes an audit line for each answer a client sees unmasked through an unmask role.
func maskResponses(m *masking) middleware { return byRole(m, m.maskProxied) }

// maskRelayResponses does the same for 58到家's answers on a relay route.
func maskRelayResponses(m *masking) middleware { return byRole(m, m.maskCaptured) }

// byRole runs the rest of the chain as the client's roles say: through mask for a
// mask role, with an audit line after for an unmask role, as it is otherwise.
func byRole(m *masking, mask func(next http.Handler, w http.ResponseWriter, r *http.Request)) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := clientFrom(r.Context())
			switch {
			case c == nil:
				next.ServeHTTP(w, r)
			case c.UnmaskRole != "":
				next.ServeHTTP(w, r)
				m.auditUnmasked(r, c)
			case c.Mask:
				mask(next, w, r)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// maskProxied has the proxy mask the upstream's answer as it arrives (maskResponse).
func (m *masking) maskProxied(next http.Handler, w http.ResponseWriter, r *http.Request) {
	// Ask only for encodings we can read back: gzip when the caller takes it (the
	// answer goes back in the encoding it came in), else identity.
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		r.Header.Set("Accept-Encoding", "gzip")
	} else {
		r.Header.Set("Accept-Encoding", "identity")
	}
	next.ServeHTTP(w, r.WithContext(proxy.WithResponseHook(r.Context(), m.maskResponse)))
}

// maskCaptured masks an answer next writes whole: the relay has 58到家's answer in
// memory already (a small JSON body), so it is captured, masked and written.
func (m *masking) maskCaptured(next http.Handler, w http.ResponseWriter, r *http.Request) {
	cw := &capturingWriter{header: w.Header()}
	next.ServeHTTP(cw, r)
	body := cw.body.Bytes()
	if masked, changed, err := m.masker.JSON(nil, body); err == nil && changed {
		body = masked
	} else if err != nil {
		body, _ = m.masker.Text(nil, body)
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(cw.statusOr200())
	_, _ = w.Write(body)
}

// auditUnmasked writes the audit line of an answer c saw unmasked: who, by which
// role, what (method, path, route) and which request, to join with the access log.
func (m *masking) auditUnmasked(r *http.Request, c *auth.Client) {
	info := reqinfo.Of(r)
	m.audit.LogAttrs(r.Context(), slog.LevelInfo, "audit",
		slog.String("client", c.ID), slog.String("role", c.UnmaskRole),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("route", info.Route), slog.String("request_id", info.RequestID))
}

// capturingWriter keeps a handler's answer in memory; the header map is the real
// writer's.
type capturingWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (cw *capturingWriter) Header() http.Header { return cw.header }
func (cw *capturingWriter) WriteHeader(code int) {
	if cw.status == 0 {
		cw.status = code
	}
}
func (cw *capturingWriter) Write(p []byte) (int, error) { return cw.body.Write(p) }
func (cw *capturingWriter) statusOr200() int {
	if cw.status == 0 {
		return http.StatusOK
	}
	return cw.status
}

func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// bodyKind is how a body is masked, by its Content-Type.
type bodyKind int

const (
	kindOpaque bodyKind = iota // images, archives: no phone number to read
	kindJSON
	kindText
	kindEventStream
)

func kindOf(contentType string) bodyKind {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// An unreadable or missing type could hold anything: treat it as text.
		return kindText
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return kindJSON
	case mt == "text/event-stream":
		return kindEventStream
	case strings.HasPrefix(mt, "text/"), mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/x-www-form-urlencoded", mt == "application/javascript", mt == "application/octet-stream":
		return kindText
	}
	return kindOpaque
}

// errMaskRefused is a response that must be masked but cannot be: passing it on
// unmasked is not an option, so the caller gets 502 upstream_error.
type errMaskRefused struct{ why string }

func (e errMaskRefused) Error() string { return "response not passed on unmasked: " + e.why }

// maskResponse is the proxy's response hook for masked callers.
func (m *masking) maskResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified || resp.Request.Method == http.MethodHead {
		return nil
	}
	kind := kindOf(resp.Header.Get("Content-Type"))
	if kind == kindOpaque {
		return nil
	}
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	if enc != "" && enc != "identity" && enc != "gzip" && enc != "x-gzip" && enc != "deflate" {
		return m.refuse(resp, "content encoding "+enc+" cannot be read for masking")
	}
	if kind == kindEventStream && (enc == "" || enc == "identity") {
		// Events stream: mask line by line as they pass, never buffer the stream.
		resp.Body = m.lineMasker(resp.Body)
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return nil
	}
	bufs := getBuffers()
	raw, err := readBody(bufs.raw[:0], resp.Body, resp.ContentLength, m.maxBody)
	resp.Body.Close()
	bufs.raw = raw
	if err != nil {
		bufs.release()
		return fmt.Errorf("reading the upstream body: %w", err)
	}
	if int64(len(raw)) > m.maxBody {
		bufs.release()
		return m.refuse(resp, fmt.Sprintf("body larger than masking.max_body_bytes (%d)", m.maxBody))
	}
	plain, err := decode(raw, enc, m.maxBody)
	if err != nil {
		bufs.release()
		return m.refuse(resp, err.Error())
	}
	var masked []byte
	var changed bool
	if kind == kindJSON {
		masked, changed, err = m.masker.JSON(bufs.out[:0], plain)
		if err != nil {
			// JSON that does not parse is still masked, as text.
			masked, changed = m.masker.Text(bufs.out[:0], plain)
		}
	} else {
		masked, changed = m.masker.Text(bufs.out[:0], plain)
	}
	bufs.out = masked
	out := raw
	if changed {
		if out, err = encode(masked, enc); err != nil {
			bufs.release()
			return err
		}
		// The representation changed, so the upstream's validator no longer names it.
		if resp.Header.Get("ETag") != "" {
			sum := sha256.Sum256(out)
			resp.Header.Set("ETag", `"sg-`+hex.EncodeToString(sum[:12])+`"`)
		}
	}
	resp.Body = &pooledBody{Reader: bytes.NewReader(out), bufs: bufs}
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// maskBuffers are the read and output buffers of one masked response, reused across
// responses: masking must read the whole body, and at gateway rates fresh buffers
// for every response are most of its garbage.
type maskBuffers struct{ raw, out []byte }

var maskBufferPool = sync.Pool{New: func() any { return &maskBuffers{} }}

func getBuffers() *maskBuffers { return maskBufferPool.Get().(*maskBuffers) }

// largestPooled keeps one huge body from pinning its buffers in the pool forever.
const largestPooled = 256 << 10

func (b *maskBuffers) release() {
	if cap(b.raw) > largestPooled || cap(b.out) > largestPooled {
		return
	}
	maskBufferPool.Put(b)
}

// pooledBody hands the masked body to the proxy and its buffers back when closed.
type pooledBody struct {
	*bytes.Reader
	bufs *maskBuffers
	once sync.Once
}

func (p *pooledBody) Close() error {
	p.once.Do(func() { p.bufs.release() })
	return nil
}

// readBody reads r into buf, sized by Content-Length when it is known, up to limit+1
// bytes so the caller can tell a body over the limit.
func readBody(buf []byte, r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength > 0 && contentLength <= limit && int64(cap(buf)) < contentLength+1 {
		buf = make([]byte, 0, contentLength+1)
	}
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (m *masking) refuse(resp *http.Response, why string) error {
	info := reqinfo.Of(resp.Request)
	m.logger.Warn("response refused: it must be masked and cannot be", "reason", why,
		"request_id", info.RequestID, "route", info.Route)
	resp.Body.Close()
	return errMaskRefused{why}
}

func decode(raw []byte, enc string, limit int64) ([]byte, error) {
	var r io.ReadCloser
	switch enc {
	case "", "identity":
		return raw, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %v", err)
		}
		r = zr
	case "deflate":
		r = flate.NewReader(bytes.NewReader(raw))
	}
	defer r.Close()
	plain, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s body: %v", enc, err)
	}
	if int64(len(plain)) > limit {
		return nil, fmt.Errorf("decoded body larger than masking.max_body_bytes (%d)", limit)
	}
	return plain, nil
}

func encode(plain []byte, enc string) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "", "identity":
		return plain, nil
	case "gzip", "x-gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
		if err != nil {
			return nil, err
		}
		w = fw
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// lineMasker masks a text stream line by line as it is read, so server-sent events
// keep flowing while numbers in them are masked.
func (m *masking) lineMasker(body io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReader(body)
		var out []byte
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				out, _ = m.masker.Text(out[:0], line)
				if _, werr := pw.Write(out); werr != nil {
					body.Close()
					return
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				body.Close()
				if err == io.EOF {
					err = nil
				}
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// maskRequests masks the request body on routes with mask_request: true, after
// authentication (a signature covers the body as the caller sent it).
func maskRequests(m *masking) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := bufferBody(r)
			if err != nil {
				apierror.Write(w, r, err)
				return
			}
			if len(body) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			var masked []byte
			var changed bool
			if kindOf(r.Header.Get("Content-Type")) == kindJSON {
				masked, changed, err = m.masker.JSON(nil, body)
				if err != nil {
					masked, changed = m.masker.Text(nil, body)
				}
			} else {
				masked, changed = m.masker.Text(nil, body)
			}
			if changed {
				r.Body = io.NopCloser(bytes.NewReader(masked))
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(masked)), nil }
				r.ContentLength = int64(len(masked))
			}
			next.ServeHTTP(w, r)
		})
	}
}

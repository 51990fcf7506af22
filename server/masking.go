package server

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/mask"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/reqinfo"
	"github.com/signgate/signgate/tracing"
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
	// tracer, when tracing is on, gives the masking of a large relay answer a span
	// (proxied answers get theirs from traceMasking).
	tracer *tracing.Tracer
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

// maskProxied has the proxy mask the upstream's answer as it arrives
// (maskResponse), after making the request one whose answer can be masked whole:
//   - only encodings the gateway can read back are asked for: gzip when the caller
//     takes it (the answer goes back in the encoding it came in), else identity;
//     and no charset (Accept-Charset goes);
//   - HEAD goes upstream as GET, so the headers a HEAD gets (Content-Length, ETag)
//     describe the masked body a GET gets, not the unmasked one;
//   - conditional headers and Range never reach the upstream, which would decide
//     them on the unmasked bytes: a 304, 412 or 206 there tells a caller who guessed
//     the unmasked body whether the guess was right. The gateway decides them on the
//     masked bytes instead (answerConditional). A write carrying preconditions is
//     refused: its validators can only name the masked representation, which the
//     upstream never saw, and applying it unconditionally would lose what the
//     precondition was for.
func (m *masking) maskProxied(next http.Handler, w http.ResponseWriter, r *http.Request) {
	var cond *conditions
	if hasConditions(r.Header) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			apierror.Write(w, r, errMaskedPrecondition)
			return
		}
		cond = takeConditions(r)
	}
	// A framework that honours Accept-Charset could answer in UTF-16, where no
	// digit is an ASCII byte.
	r.Header.Del("Accept-Charset")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		r.Header.Set("Accept-Encoding", "gzip")
	} else {
		r.Header.Set("Accept-Encoding", "identity")
	}
	out := r
	if r.Method == http.MethodHead {
		out = r.Clone(r.Context())
		out.Method = http.MethodGet
	}
	hook := func(resp *http.Response) error { return m.maskResponse(resp, cond) }
	next.ServeHTTP(&interimMasker{ResponseWriter: w, m: m}, out.WithContext(proxy.WithResponseHook(out.Context(), hook)))
}

// interimMasker masks the headers of the informational (1xx) answers the proxy
// passes on as they come (103 Early Hints' Link fields), which the response hook
// never sees.
type interimMasker struct {
	http.ResponseWriter
	m *masking
}

func (w *interimMasker) WriteHeader(code int) {
	if code < 200 {
		w.m.maskHeader(w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushes, deadlines).
func (w *interimMasker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errMaskedPrecondition answers a masked client's write that carries preconditions.
var errMaskedPrecondition = apierror.BadRequest("conditional headers (If-Match, If-None-Match, If-Modified-Since, " +
	"If-Unmodified-Since, If-Range) and Range are taken on GET and HEAD only from this client: its validators name the masked representation")

// maskCaptured masks an answer next writes whole: the relay has 58到家's answer in
// memory already (a small JSON body), so it is captured, masked and written.
func (m *masking) maskCaptured(next http.Handler, w http.ResponseWriter, r *http.Request) {
	cw := &capturingWriter{header: w.Header()}
	next.ServeHTTP(cw, r)
	body := cw.body.Bytes()
	start := time.Now()
	if masked, changed, err := m.masker.JSON(nil, body); err == nil && changed {
		body = masked
	} else if err != nil {
		body, _ = m.masker.Text(nil, body)
	}
	if m.tracer != nil && cw.body.Len() > maskedBodySpan && tracing.Recording(r.Context()) {
		m.tracer.Record(r.Context(), "mask response", start, time.Now(),
			attribute.Int64("signgate.body_bytes", int64(cw.body.Len())))
	}
	m.maskHeader(w.Header())
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
	kindText        bodyKind = iota // masked by pattern: anything not known to be otherwise
	kindJSON                        // masked by structure (and as text when it does not parse)
	kindEventStream                 // masked line by line as it streams
	kindLines                       // NDJSON: masked line by line, each line as JSON
	kindMedia                       // images, sound, video, fonts: cannot carry text
	kindSealed                      // archives, PDF, UTF-16: text the pattern cannot see
)

// kindOf says how a body of the given Content-Type values is masked. It is a
// deny-list of what cannot carry text, not an allow-list of text: a type nobody
// thought of (application/yaml, text/csv, application/pdf, a vendor type), a
// missing or unreadable one, or one stated twice, is masked as text. An image
// type that is markup (image/svg+xml) is text.
func kindOf(types []string) bodyKind {
	if len(types) != 1 {
		return kindText
	}
	mt, params, err := mime.ParseMediaType(types[0])
	if err != nil {
		return kindText
	}
	if cs := strings.ToLower(params["charset"]); strings.HasPrefix(cs, "utf-16") || strings.HasPrefix(cs, "utf-32") ||
		strings.HasPrefix(cs, "ucs-") || cs == "utf-7" || cs == "unicode" {
		return kindSealed // digits are not ASCII bytes there
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return kindJSON
	case mt == "text/event-stream":
		return kindEventStream
	case mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/x-jsonlines":
		return kindLines
	case strings.HasSuffix(mt, "+xml"):
		return kindText
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"), strings.HasPrefix(mt, "font/"):
		return kindMedia
	case sealedTypes[mt], strings.HasSuffix(mt, "+zip"), strings.HasPrefix(mt, "application/vnd.openxmlformats-officedocument."),
		strings.HasPrefix(mt, "application/vnd.oasis.opendocument."):
		return kindSealed
	}
	return kindText
}

// sealedTypes are containers whose text is compressed inside them (PDF streams
// are deflated as a rule), so a pattern over their bytes finds nothing: a masked
// caller is refused them rather than handed them unread.
var sealedTypes = map[string]bool{
	"application/zip": true, "application/gzip": true, "application/x-gzip": true, "application/x-bzip2": true,
	"application/x-xz": true, "application/zstd": true, "application/x-7z-compressed": true, "application/vnd.rar": true,
	"application/x-rar-compressed": true, "application/x-tar": true, "application/java-archive": true,
	"application/pdf": true, "application/msword": true, "application/vnd.ms-excel": true,
	"application/x-protobuf": true, "application/protobuf": true, "application/vnd.google.protobuf": true,
	"application/x-msgpack": true, "application/msgpack": true, "application/cbor": true, "application/bson": true,
}

// errMaskRefused is a response that must be masked but cannot be: passing it on
// unmasked is not an option, so the caller gets 502 upstream_error.
type errMaskRefused struct{ why string }

func (e errMaskRefused) Error() string { return "response not passed on unmasked: " + e.why }

// bodyDigests are response headers that hash the body: of the unmasked body, they
// let a caller who knows all of it but the masked digits try the 10 000 guesses
// offline. They go when the body changed, from the header and the trailers; the
// ETag is recomputed. isBodyDigest also knows the object stores' checksum fields.
var bodyDigests = [...]string{"Content-Md5", "Digest", "Content-Digest", "Repr-Digest"}

// isBodyDigest reports whether the field name (canonical form) carries a hash or
// checksum of the body: the standard fields, and the families object stores and
// their clients pass on (X-Amz-Checksum-*, X-Goog-Hash, X-Checksum-*, *-Md5,
// *-Sha256, *-Crc32).
func isBodyDigest(name string) bool {
	for _, d := range bodyDigests {
		if name == d {
			return true
		}
	}
	n := strings.ToLower(name)
	return strings.Contains(n, "checksum") || strings.Contains(n, "digest") || n == "x-goog-hash" ||
		strings.HasSuffix(n, "-md5") || strings.HasSuffix(n, "-sha1") || strings.HasSuffix(n, "-sha256") ||
		strings.HasSuffix(n, "-sha512") || strings.HasSuffix(n, "-crc32") || strings.HasSuffix(n, "-crc32c") ||
		n == "etag"
}

// dropDigests removes the body's hashes from h (a header or trailer map).
func dropDigests(h http.Header) {
	for k := range h {
		if isBodyDigest(k) {
			delete(h, k)
		}
	}
}

// maskResponse is the proxy's response hook for masked callers: every byte the
// caller will receive (status line, headers, body, trailers) is masked, or the
// answer is refused. cond, when not nil, are the caller's conditional headers,
// decided here on the masked bytes.
func (m *masking) maskResponse(resp *http.Response, cond *conditions) error {
	m.maskHeader(resp.Header)
	// Trailer names are announced before the body; their values come after it.
	for k := range resp.Trailer {
		if m.leaks(k) {
			delete(resp.Trailer, k)
		}
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		// The gateway never forwards Range for a masked caller, so this part of a
		// representation was not asked for, and the numbers it cuts cannot be found.
		return m.refuse(resp, "a partial answer (206) nobody asked for")
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified || resp.StatusCode < 200:
		return nil
	}
	kind := kindOf(resp.Header.Values("Content-Type"))
	switch kind {
	case kindMedia:
		resp.Body = &trailerMasker{ReadCloser: resp.Body, resp: resp, m: m}
		return nil
	case kindSealed:
		return m.refuse(resp, "a body whose text the gateway cannot read for masking: "+resp.Header.Get("Content-Type"))
	}
	enc, ok := contentCoding(resp.Header.Values("Content-Encoding"))
	if !ok {
		return m.refuse(resp, "a Content-Encoding the gateway cannot read: "+strings.Join(resp.Header.Values("Content-Encoding"), ", "))
	}
	if kind == kindEventStream || kind == kindLines {
		return m.maskStream(resp, enc, kind)
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
	m.maskHeader(resp.Trailer) // read to the end: the trailers are in
	plain, err := decode(raw, enc, m.maxBody)
	if err != nil {
		bufs.release()
		return m.refuse(resp, err.Error())
	}
	if utf16(plain) {
		bufs.release()
		return m.refuse(resp, "a UTF-16 or UTF-32 body, whose digits are not ASCII bytes")
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
		// The representation changed: the upstream's validator and digests name
		// the unmasked bytes, in the header and in the trailers.
		hadETag := resp.Header.Get("ETag") != ""
		dropDigests(resp.Header)
		dropDigests(resp.Trailer)
		if hadETag {
			resp.Header.Set("ETag", maskedETag(out))
		}
	}
	if cond != nil && resp.StatusCode == http.StatusOK {
		if resp.Header.Get("ETag") == "" {
			// If-None-Match and If-Range need a validator to compare with.
			resp.Header.Set("ETag", maskedETag(out))
		}
		out = answerConditional(resp, cond, out)
	}
	resp.Body = &pooledBody{Reader: bytes.NewReader(out), bufs: bufs}
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// utf16 reports whether b starts with a UTF-16 or UTF-32 byte order mark.
func utf16(b []byte) bool {
	return len(b) >= 2 && (b[0] == 0xFF && b[1] == 0xFE || b[0] == 0xFE && b[1] == 0xFF) ||
		len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0xFE && b[3] == 0xFF
}

// maskedETag is the strong validator of masked bytes: 96 bits of their SHA-256,
// written with the letters a-p rather than hex, so that no run of digits in it can
// look like a phone number to the caller's scanners or to the gateway's own masker.
func maskedETag(b []byte) string {
	sum := sha256.Sum256(b)
	var tag [3 + 24 + 2]byte
	copy(tag[:], `"sg-`)
	for i, c := range sum[:12] {
		tag[4+2*i], tag[5+2*i] = 'a'+c>>4, 'a'+c&0xf
	}
	tag[len(tag)-1] = '"'
	return string(tag[:])
}

// maskHeader masks every value in h, and drops the fields whose name holds a
// number. Header values with no digits, nearly all, cost a scan and no allocation.
func (m *masking) maskHeader(h http.Header) {
	for k, vs := range h {
		if m.leaks(k) {
			delete(h, k)
			continue
		}
		for i, v := range vs {
			vs[i] = m.masker.String(v)
		}
	}
}

// leaks reports whether s holds something the masker would mask.
func (m *masking) leaks(s string) bool { return m.masker.String(s) != s }

// contentCoding reads a response's Content-Encoding field values as one coding the
// gateway can decode and encode again ("" for none). Two codings, stated in one
// line or two (identity included: clients differ on which line counts), and codings
// it does not know are not readable.
func contentCoding(values []string) (string, bool) {
	if len(values) > 1 {
		return "", false
	}
	coding := ""
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			c := strings.ToLower(strings.TrimSpace(part))
			switch c {
			case "identity", "gzip", "x-gzip", "deflate":
			default:
				return "", false
			}
			if coding != "" {
				return "", false
			}
			coding = c
		}
	}
	if coding == "identity" {
		coding = ""
	}
	return coding, true
}

// trailerMasker masks the response's trailers once the body has been read to its
// end, which is when the transport fills them in.
type trailerMasker struct {
	io.ReadCloser
	resp *http.Response
	m    *masking
}

func (t *trailerMasker) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		t.m.maskHeader(t.resp.Trailer)
	}
	return n, err
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

// decode undoes enc ("" for none). deflate is zlib as RFC 9110 has it, or the raw
// deflate some servers send instead.
func decode(raw []byte, enc string, limit int64) ([]byte, error) {
	var r io.Reader
	switch enc {
	case "":
		return raw, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %v", err)
		}
		r = zr
	case "deflate":
		if zr, err := zlib.NewReader(bytes.NewReader(raw)); err == nil {
			r = zr
		} else {
			r = flate.NewReader(bytes.NewReader(raw))
		}
	default:
		return nil, fmt.Errorf("content encoding %s cannot be read", enc)
	}
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
	case "":
		return plain, nil
	case "gzip", "x-gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	default:
		return nil, fmt.Errorf("content encoding %s cannot be written", enc)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maskStream masks a streamed body (server-sent events, NDJSON) line by line as it
// passes, so events keep flowing. A line is masked whole whatever its length, up to
// masking.max_body_bytes; a longer line ends the stream there, since masking part
// of it could cut a number in two. A compressed stream is decoded as it arrives and
// passed on decoded. Validators and digests go: they name the unmasked stream.
func (m *masking) maskStream(resp *http.Response, enc string, kind bodyKind) error {
	var src io.Reader = resp.Body
	if enc != "" {
		var err error
		if src, err = streamDecoder(resp.Body, enc); err != nil {
			return m.refuse(resp, err.Error())
		}
		resp.Header.Del("Content-Encoding")
	}
	dropDigests(resp.Header)
	for k := range resp.Trailer {
		if isBodyDigest(k) {
			delete(resp.Trailer, k) // announced now; the stream never sends them
		}
	}
	for _, k := range [...]string{"Content-Length", "Etag", "Accept-Ranges", "Content-Range"} {
		delete(resp.Header, k)
	}
	resp.ContentLength = -1
	resp.Body = &streamMasker{m: m, resp: resp, body: resp.Body, src: bufio.NewReaderSize(src, 16<<10), asJSON: kind == kindLines}
	return nil
}

// streamDecoder reads a compressed stream as it arrives.
func streamDecoder(body io.Reader, enc string) (io.Reader, error) {
	switch enc {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("gzip stream: %v", err)
		}
		zr.Multistream(false)
		return zr, nil
	case "deflate":
		return zlib.NewReader(body)
	}
	return nil, fmt.Errorf("content encoding %s cannot be read", enc)
}

// errLineTooLong ends a stream whose line is longer than masking.max_body_bytes.
var errLineTooLong = errors.New("a streamed line longer than masking.max_body_bytes: the stream is cut there")

// streamMasker is a streamed body read a whole line at a time, each line masked (as
// JSON first when asJSON) before any of it is handed on. It reads on the proxy's
// own goroutine, when the proxy asks for bytes: the transport fills in the
// response's trailers on the goroutine that reads the body's end, and they are
// masked there, before the proxy sends them.
type streamMasker struct {
	m      *masking
	resp   *http.Response
	body   io.Closer
	src    *bufio.Reader
	asJSON bool

	line, out []byte
	off       int   // out[off:] is still to be handed on
	err       error // what comes after out: the end, or why the stream stops
}

func (l *streamMasker) Read(p []byte) (int, error) {
	for l.off >= len(l.out) {
		if l.err != nil {
			return 0, l.err
		}
		l.next()
	}
	n := copy(p, l.out[l.off:])
	l.off += n
	return n, nil
}

// next reads and masks the next line into out.
func (l *streamMasker) next() {
	l.line, l.out, l.off = l.line[:0], l.out[:0], 0
	for {
		chunk, err := l.src.ReadSlice('\n')
		l.line = append(l.line, chunk...)
		if int64(len(l.line)) > l.m.maxBody {
			l.err = errLineTooLong
			return
		}
		if err == bufio.ErrBufferFull {
			continue // a line longer than the buffer: gather it whole
		}
		if err == io.EOF {
			l.m.maskHeader(l.resp.Trailer) // read to its end: the trailers are in
			dropDigests(l.resp.Trailer)
		}
		l.err = err
		break
	}
	if len(l.line) > 0 {
		l.out = l.m.maskLine(l.out, l.line, l.asJSON)
	}
}

func (l *streamMasker) Close() error { return l.body.Close() }

// maskLine masks one line of a stream.
func (m *masking) maskLine(dst, line []byte, asJSON bool) []byte {
	if asJSON {
		body, nl := line, []byte(nil)
		if n := len(body); n > 0 && body[n-1] == '\n' {
			body, nl = body[:n-1], body[n-1:]
		}
		if out, _, err := m.masker.JSON(dst, body); err == nil {
			return append(out, nl...)
		}
	}
	out, _ := m.masker.Text(dst, line)
	return out
}

// maskRequests masks what the upstream reads of the request on routes with
// mask_request: true, after authentication (a signature covers the request as the
// caller sent it): the body, and the query's values, decoded as frameworks decode
// them (a form's "+" and %20 are spaces, so "138+1234+5678" is a number). A body
// the gateway cannot read as the upstream will (a Content-Encoding, which
// body-parsers inflate; a charset other than UTF-8; Content-Type stated twice,
// where frameworks parse by one and the gateway would mask by another) is refused
// with 400 bad_request rather than passed on unmasked.
func maskRequests(m *masking) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RawQuery != "" {
				if q, changed := m.maskForm(r.URL.RawQuery); changed {
					r.URL.RawQuery = q
				}
			}
			body, err := bufferBody(r)
			if err != nil {
				apierror.Write(w, r, err)
				return
			}
			if len(body) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			if e := unreadableRequestBody(r.Header); e != nil {
				apierror.Write(w, r, e)
				return
			}
			var masked []byte
			var changed bool
			types := r.Header.Values("Content-Type")
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			switch {
			case kindOf(types) == kindJSON:
				masked, changed, err = m.masker.JSON(nil, body)
				if err != nil {
					masked, changed = m.masker.Text(nil, body)
				}
			case mt == "application/x-www-form-urlencoded":
				var form string
				form, changed = m.maskForm(string(body))
				masked = []byte(form)
			default:
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

// errUnmaskableRequest answers a mask_request body the gateway cannot read as the
// upstream will.
func errUnmaskableRequest(why string) *apierror.Error {
	return apierror.BadRequest("this route masks request bodies, and cannot read this one: " + why)
}

// unreadableRequestBody says why a request body with header h cannot be masked
// as the upstream will read it, or nil.
func unreadableRequestBody(h http.Header) *apierror.Error {
	if ce := h.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return errUnmaskableRequest("a Content-Encoding (send it uncompressed)")
	}
	types := h.Values("Content-Type")
	if len(types) > 1 {
		return errUnmaskableRequest("Content-Type is stated more than once")
	}
	if len(types) == 1 {
		if _, params, err := mime.ParseMediaType(types[0]); err == nil {
			if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" {
				return errUnmaskableRequest("a charset other than UTF-8")
			}
		}
	}
	return nil
}

// maskForm masks the values of a query or urlencoded form as a framework decodes
// them, re-encoding only the values it changed; names and the order stay.
func (m *masking) maskForm(q string) (string, bool) {
	var b strings.Builder
	changed := false
	first := true
	for part := range strings.SplitSeq(q, "&") {
		if !first {
			b.WriteByte('&')
		}
		first = false
		name, value, hasValue := strings.Cut(part, "=")
		dec, err := url.QueryUnescape(value)
		if err != nil {
			dec = unescapeLenient(value)
		}
		if masked := m.masker.String(dec); hasValue && masked != dec {
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(masked))
			changed = true
			continue
		}
		b.WriteString(part)
	}
	if !changed {
		return q, false
	}
	return b.String(), true
}

package server

import (
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/signgate/signgate/mask"
)

// accessRecord is one access-log line's fields, in the order they are written.
type accessRecord struct {
	requestID, client, route, method, path string
	user                                   string // the owner's openid; written only when not ""
	status                                 int
	durationMS                             float64
	bytesIn, bytesOut                      int64
	remoteIP, proto                        string
	query, errCode                         string // written only when not ""
	cache                                  string // the response cache's result; written only when not ""
	traceID                                string // the trace id when the request's span records; written only when not ""
}

// attrs appends the record's fields as slog attributes.
func (a *accessRecord) attrs(out []slog.Attr) []slog.Attr {
	out = append(out,
		slog.String("request_id", a.requestID),
		slog.String("client", a.client),
	)
	if a.user != "" {
		out = append(out, slog.String("user", a.user))
	}
	out = append(out,
		slog.String("route", a.route),
		slog.String("method", a.method),
		slog.String("path", a.path),
		slog.Int("status", a.status),
		slog.Float64("duration_ms", a.durationMS),
		slog.Int64("bytes_in", a.bytesIn),
		slog.Int64("bytes_out", a.bytesOut),
		slog.String("remote_ip", a.remoteIP),
		slog.String("proto", a.proto),
	)
	if a.query != "" {
		out = append(out, slog.String("query", a.query))
	}
	if a.errCode != "" {
		out = append(out, slog.String("error", a.errCode))
	}
	if a.cache != "" {
		out = append(out, slog.String("cache", a.cache))
	}
	if a.traceID != "" {
		out = append(out, slog.String("trace_id", a.traceID))
	}
	return out
}

// accessWriter writes access lines straight to w, byte for byte as
// slog.NewJSONHandler(w, nil) wrapped in mask.NewHandler would write them, without
// slog's per-record machinery: the line is the gateway's one log write per
// request, and going through slog cost about 7 % of a plain route's CPU (2 % now)
// (docs/performance.md). Every string is masked, as the log wrapper would.
type accessWriter struct {
	w      io.Writer // safe for concurrent Writes of whole lines, as an *os.File is
	masker *mask.Masker
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (aw *accessWriter) write(t time.Time, a *accessRecord) error {
	bp := lineBufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request"`...)
	b = aw.str(b, "request_id", a.requestID)
	b = aw.str(b, "client", a.client)
	if a.user != "" {
		b = aw.str(b, "user", a.user)
	}
	b = aw.str(b, "route", a.route)
	b = aw.str(b, "method", a.method)
	b = aw.str(b, "path", a.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(a.status), 10)
	if masked, ok := aw.masker.Float(a.durationMS); ok {
		// As the slog handler writes it: a float that spells a number to mask is
		// a masked string (never a real duration; the fuzzer makes them up).
		b = aw.str(b, "duration_ms", masked)
	} else {
		b = append(b, `,"duration_ms":`...)
		b = appendJSONFloat(b, a.durationMS)
	}
	b = aw.int(b, "bytes_in", a.bytesIn)
	b = aw.int(b, "bytes_out", a.bytesOut)
	b = aw.str(b, "remote_ip", a.remoteIP)
	b = aw.str(b, "proto", a.proto)
	if a.query != "" {
		b = aw.str(b, "query", a.query)
	}
	if a.errCode != "" {
		b = aw.str(b, "error", a.errCode)
	}
	if a.cache != "" {
		b = aw.str(b, "cache", a.cache)
	}
	if a.traceID != "" {
		b = aw.str(b, "trace_id", a.traceID)
	}
	b = append(b, "}\n"...)
	_, err := aw.w.Write(b)
	if cap(b) <= 16<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
	return err
}

// str appends `,"key":"value"` with value masked and escaped.
func (aw *accessWriter) str(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":"`...)
	b = appendEscapedJSONString(b, aw.masker.String(value))
	return append(b, '"')
}

// int appends `,"key":n`. Like the log wrapper, it writes an integer long enough
// to be a phone number as a masked string when the masker finds one in it.
func (aw *accessWriter) int(b []byte, key string, n int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if n < 1e10 && n > -1e10 {
		return strconv.AppendInt(b, n, 10)
	}
	var buf [24]byte
	digits := strconv.AppendInt(buf[:0], n, 10)
	if masked, changed := aw.masker.Text(nil, digits); changed {
		b = append(b, '"')
		b = appendEscapedJSONString(b, string(masked))
		return append(b, '"')
	}
	return append(b, digits...)
}

// appendJSONFloat formats f as encoding/json does (and so slog's JSON handler).
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// encoding/json refuses these; slog then writes the error text. A
		// duration never is one.
		return append(b, '0')
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendEscapedJSONString escapes s as slog's JSON handler does: encoding/json's
// rules without HTML escaping, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendEscapedJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

package mask

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strconv"
)

// NewHandler wraps next so that no log line it writes holds a full mobile number
// (or ID-card number, when m detects them), whoever logged it: the message, every
// attribute key and string value, nested groups, values a LogValuer resolves to,
// errors and fmt.Stringers (logged as their masked string), integers and floats
// that are or spell phone numbers (logged as a masked string), and any other
// value (marshaled to JSON, masked as a JSON body with detection on, and logged
// as that JSON when anything was masked). Attributes given to WithAttrs are
// masked once, there.
func NewHandler(next slog.Handler, m *Masker) slog.Handler {
	return &handler{next: next, m: m}
}

var _ slog.Handler = (*handler)(nil)

type handler struct {
	next slog.Handler
	m    *Masker
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	msg, changed := h.m.maskString(r.Message)
	// Masked attributes are collected as they are checked; a record with nothing to
	// mask, the usual case, is passed on as it came.
	var inline [16]slog.Attr // the access log line has up to 13
	attrs := inline[:0]
	r.Attrs(func(a slog.Attr) bool {
		a, c := h.m.attr(a)
		attrs = append(attrs, a)
		changed = changed || c
		return true
	})
	if !changed {
		return h.next.Handle(ctx, r)
	}
	masked := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	masked.AddAttrs(attrs...)
	return h.next.Handle(ctx, masked)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i], _ = h.m.attr(a)
	}
	return &handler{next: h.next.WithAttrs(masked), m: h.m}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(h.m.String(name)), m: h.m}
}

// attr masks one attribute and says whether it changed.
func (m *Masker) attr(a slog.Attr) (slog.Attr, bool) {
	key, changed := m.maskString(a.Key)
	v, vc := m.logValue(a.Value)
	return slog.Attr{Key: key, Value: v}, changed || vc
}

func (m *Masker) logValue(v slog.Value) (slog.Value, bool) {
	if v.Kind() == slog.KindLogValuer {
		// Resolved here, the value is passed on resolved, so its LogValue runs once.
		rv, _ := m.logValue(v.Resolve())
		return rv, true
	}
	switch v.Kind() {
	case slog.KindString:
		if s, c := m.maskString(v.String()); c {
			return slog.StringValue(s), true
		}
	case slog.KindInt64:
		// strconv into a stack buffer: most integers are far too short to be a
		// phone, and those are not even formatted.
		if n := v.Int64(); n >= 1e10 || n <= -1e10 {
			var buf [24]byte
			return m.logDigits(v, strconv.AppendInt(buf[:0], n, 10))
		}
	case slog.KindUint64:
		if n := v.Uint64(); n >= 1e10 {
			var buf [24]byte
			return m.logDigits(v, strconv.AppendUint(buf[:0], n, 10))
		}
	case slog.KindFloat64:
		return m.logFloat(v)
	case slog.KindGroup:
		group := v.Group()
		var masked []slog.Attr
		for i, a := range group {
			ma, c := m.attr(a)
			if c && masked == nil {
				masked = make([]slog.Attr, len(group))
				copy(masked, group[:i])
			}
			if masked != nil {
				masked[i] = ma
			}
		}
		if masked != nil {
			return slog.GroupValue(masked...), true
		}
	case slog.KindAny:
		return m.logAny(v)
	}
	return v, false
}

// logDigits masks an integer spelled in digits: a phone kept as a number is still
// a phone, and is logged as its masked string.
func (m *Masker) logDigits(v slog.Value, digits []byte) (slog.Value, bool) {
	if s, c := m.maskDigits(digits); c {
		return slog.StringValue(s), true
	}
	return v, false
}

// logFloat masks a float that is a phone number, or whose spelling holds one:
// handlers print floats as 1.3812345678e+10 (text) or 13812345678 (JSON).
// Float is how a float log value is masked: the masked text, and true, when the
// number spells one to mask (the logs write it as a string then); false otherwise.
// Writers that format log lines themselves use it to write what the handler does.
func (m *Masker) Float(f float64) (string, bool) {
	v, changed := m.logFloat(slog.Float64Value(f))
	if !changed {
		return "", false
	}
	return v.String(), true
}

func (m *Masker) logFloat(v slog.Value) (slog.Value, bool) {
	f := v.Float64()
	var buf [32]byte
	if a := math.Abs(f); a >= 1e10 && a < 1e13 && a == math.Trunc(a) {
		// A whole number is masked as the integer it is: 1.38e10 is 13800000000.
		if s, c := m.maskDigits(strconv.AppendFloat(buf[:0], a, 'f', 0, 64)); c {
			return slog.StringValue(s), true
		}
	}
	g := strconv.AppendFloat(buf[:0], f, 'g', -1, 64)
	n := 0
	for _, c := range g {
		if isDigit(c) {
			n++
		}
	}
	if n < 11 {
		return v, false // too few digits to spell a phone, whatever the notation
	}
	if s, c := m.maskDigits(g); c {
		return slog.StringValue(s), true
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 { // encoding/json's plain notation
		if s, c := m.maskDigits(strconv.AppendFloat(buf[:0], f, 'f', -1, 64)); c {
			return slog.StringValue(s), true
		}
	}
	return v, false
}

// maskDigits masks a formatted number, without allocating unless it changes.
func (m *Masker) maskDigits(b []byte) (string, bool) {
	var out [40]byte
	masked, c := m.Text(out[:0], b)
	if !c {
		return "", false
	}
	return string(masked), true
}

// logAny masks a value slog would print with its Error, String or MarshalJSON.
// Errors and Stringers are logged as their masked string, whatever their JSON
// form: the string is what their author meant to be read, and the JSON form of a
// Stringer (a *url.URL, say) is rarely better.
func (m *Masker) logAny(v slog.Value) (slog.Value, bool) {
	switch x := v.Any().(type) {
	case error:
		return slog.StringValue(m.String(safeString(x, x.Error))), true
	case fmt.Stringer:
		return slog.StringValue(m.String(safeString(x, x.String))), true
	case nil, []byte:
		// Bytes are logged base64-encoded: nothing a matcher could find.
		return v, false
	default:
		b, err := marshalJSON(x)
		if err != nil {
			// The handler below fails on it the same way and logs the error.
			return v, false
		}
		masked, c, err := m.rewrite(nil, b, true)
		if err != nil || !c {
			return v, false
		}
		return slog.AnyValue(jsonValue(masked)), true
	}
}

// safeString calls f, which may be a method of a nil pointer or may panic, and
// answers as fmt would rather than bring down the logging goroutine.
func safeString(x any, f func() string) (s string) {
	defer func() {
		if p := recover(); p != nil {
			if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() {
				s = "<nil>"
				return
			}
			s = fmt.Sprintf("!PANIC: %v", p)
		}
	}()
	return f()
}

func marshalJSON(x any) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("marshaling a log value: %v", p)
		}
	}()
	return json.Marshal(x)
}

// jsonValue is a value's masked JSON form: the JSON handler writes it as it is,
// the text handler as text.
type jsonValue []byte

func (j jsonValue) MarshalJSON() ([]byte, error) { return j, nil }
func (j jsonValue) MarshalText() ([]byte, error) { return j, nil }

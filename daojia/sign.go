package daojia

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// SignParam is the name of the parameter that carries the signature; it is the one
// parameter not signed.
const SignParam = "sign"

// Sign returns the 58到家 signature of params:
// upper(hex(md5(secret + k1 + v1 + k2 + v2 + … + secret))) over every parameter but
// "sign", sorted by name in byte order. Values are used exactly as given: a
// daojiaJson object must be passed as the exact bytes it is sent as.
func Sign(params map[string]string, secret string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != SignParam {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	h := md5.New()
	h.Write([]byte(secret))
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte(params[k]))
	}
	h.Write([]byte(secret))
	var sum [md5.Size]byte
	var out [2 * md5.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return string(bytes.ToUpper(out[:]))
}

// gmt8 is 58到家's clock: China Standard Time, fixed, whatever TZ the server has.
var gmt8 = time.FixedZone("GMT+8", 8*60*60)

// TimestampLayout is the layout of the timestamp parameter.
const TimestampLayout = "2006-01-02 15:04:05"

// Timestamp formats t as 58到家's timestamp parameter, in GMT+8.
func Timestamp(t time.Time) string { return t.In(gmt8).Format(TimestampLayout) }

// ParseTimestamp reads a timestamp parameter as GMT+8.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.ParseInLocation(TimestampLayout, s, gmt8)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not yyyy-MM-dd HH:mm:ss", s)
	}
	return t, nil
}

// ParseParams reads the top-level parameters of a 58到家 call from its body: a JSON
// object, or a form when contentType says application/x-www-form-urlencoded. In
// JSON, a string value is its content, and any other value (a nested daojiaJson
// object, a number) is its exact bytes in the body, which is what the sender signed.
// A parameter given twice is an error: which one was signed would be ambiguous.
func ParseParams(body []byte, contentType string) (map[string]string, error) {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/x-www-form-urlencoded") {
		return parseForm(body)
	}
	return parseJSON(body)
}

func parseForm(body []byte) (map[string]string, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("form body: %v", err)
	}
	params := make(map[string]string, len(values))
	for k, vs := range values {
		if len(vs) != 1 {
			return nil, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
		params[k] = vs[0]
	}
	return params, nil
}

func parseJSON(body []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("body is not a JSON object")
	}
	params := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("JSON body: %v", err)
		}
		key := tok.(string) // inside an object, Token returns keys as strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("JSON body, parameter %q: %v", key, err)
		}
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("parameter %q given twice", key)
		}
		var value string
		switch raw[0] {
		case '"':
			if err := json.Unmarshal(raw, &value); err != nil {
				return nil, fmt.Errorf("JSON body, parameter %q: %v", key, err)
			}
		case 'n':
			value = ""
		default:
			value = string(raw)
		}
		params[key] = value
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("JSON body: %v", err)
	}
	if dec.More() {
		return nil, errors.New("JSON body: data after the object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("JSON body: data after the object")
	}
	return params, nil
}

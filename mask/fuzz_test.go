package mask

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// FuzzMaskJSON feeds arbitrary bytes to JSON under two rule sets. It must never
// panic; it must refuse exactly what encoding/json refuses; valid input must come
// out valid, and unchanged input byte for byte; with cn_mobile no mobile number may
// survive in any string, member names included; with fields alone, none under a
// masked field, where no number may survive either.
func FuzzMaskJSON(f *testing.F) {
	for _, s := range []string{
		`{"orderId":"2026112300012","owner":{"name":"张三","phone":"13812345678"}}`,
		`[{"name":"欧阳娜娜","phone":"+86 139-1234-5678"},{"mobile":[13812345678,"8613812345678"]}]`,
		`{"userPhone":13812345678,"remark":"请联系 138-1234-5678 或 +86 139 1234 5678"}`,
		`{"name":"\u5f20\u4e09","ph\u006fne":"\u0031\u00338\u0031\u0032345678","x":"\ud842\udfb7"}`,
		`{"contactPhone":{"countryCode":"86","number":"0086 13812345678"}}`,
		`{"idCard":"11010119900307123X","old":"110101900307123","orderId":"20261123138123456789"}`,
		`{"13812345678":{"ts":1763900000000,"price":138.00}}`,
		"{\n  \"z\": 1.0e+3,\n  \"phone\" : \"13812345678\" ,\n\t\"a\": [ -0, true, null ]\r\n}\n",
		`{"a":1,}`, `{"phone":"1381234`, `"\u12G4"`, "\"a\tb\"", `[1 2]`, `01`,
		string(orderList(1 << 10)),
	} {
		f.Add([]byte(s))
	}
	detect := New(Rules{Fields: ownerRules.Fields, DetectMobile: true, DetectIDCard: true, Names: ownerRules.Names})
	fieldsOnly := New(Rules{Fields: ownerRules.Fields, Names: ownerRules.Names})
	fields := map[string]bool{}
	for _, n := range ownerRules.Fields {
		fields[n] = true
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		valid := json.Valid(src)
		for _, m := range []*Masker{detect, fieldsOnly} {
			out, changed, err := m.JSON(nil, src)
			if valid != (err == nil) {
				t.Fatalf("json.Valid = %v but JSON error = %v for %q", valid, err, src)
			}
			if err != nil {
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("JSON(%q) = %q: not valid JSON", src, out)
			}
			if changed != !bytes.Equal(out, src) {
				t.Fatalf("JSON(%q) = %q, changed = %v", src, out, changed)
			}
			if err := checkMasked(out, fields, m == detect); err != nil {
				t.Fatalf("JSON(%q) = %q: %v", src, out, err)
			}
		}
	})
}

// checkMasked walks the tokens of a masked body with encoding/json, so duplicate
// member names are all seen: under a field no mobile number nor any JSON number may
// be left, and, everywhere, none anywhere.
func checkMasked(body []byte, fields map[string]bool, everywhere bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	stack := []frame{{}}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		top := &stack[len(stack)-1]
		if top.object && top.wantName {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				afterValue(stack)
				continue
			}
			name := tok.(string)
			if everywhere && fullMobile.MatchString(name) {
				return errors.New("mobile number in member name " + name)
			}
			top.memberIsField = top.field || fields[name]
			top.wantName = false
			continue
		}
		field := top.field || top.object && top.memberIsField
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{object: true, wantName: true, field: field})
			case '[':
				stack = append(stack, frame{field: field})
			case ']':
				stack = stack[:len(stack)-1]
				afterValue(stack)
			}
			continue
		case string:
			if (everywhere || field) && fullMobile.MatchString(v) {
				return errors.New("mobile number in " + v)
			}
		case json.Number:
			if field {
				return errors.New("number left in a masked field: " + string(v))
			}
		}
		afterValue(stack)
	}
}

// frame is one open object or array in checkMasked's walk.
type frame struct {
	object, wantName bool
	field            bool // the container is inside a masked field
	memberIsField    bool // the current member's value is a masked field
}

// afterValue notes that a value is complete: an object now wants a member name.
func afterValue(stack []frame) {
	if top := &stack[len(stack)-1]; top.object {
		top.wantName = true
	}
}

// FuzzMaskText feeds arbitrary text to Text and String: they must never panic,
// agree with each other, keep the length (only digits become stars), and leave no
// full mobile number behind.
func FuzzMaskText(f *testing.F) {
	for _, s := range []string{
		"13812345678", "+86 138 1234 5678", "8613812345678", "0086-13812345678",
		"请联系 138-1234-5678 或 +86 139 1234 5678", "20261123138123456789",
		"11010119900307123X", "110101900307123", "1763900000000", "138-1234-56789",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, idCard bool) {
		m := New(Rules{DetectIDCard: idCard})
		out, changed := m.Text(nil, []byte(in))
		if s := m.String(in); s != string(out) {
			t.Fatalf("String = %q, Text = %q", s, out)
		}
		if len(out) != len(in) || changed != (string(out) != in) {
			t.Fatalf("Text(%q) = %q, changed %v", in, out, changed)
		}
		if fullMobile.Match(out) {
			t.Fatalf("Text(%q) = %q: a mobile number got through", in, out)
		}
	})
}

// TestCheckMaskedCatchesLeaks keeps FuzzMaskJSON's oracle honest: it must see a
// leak wherever one can hide.
func TestCheckMaskedCatchesLeaks(t *testing.T) {
	fields := map[string]bool{"phone": true}
	tests := []struct {
		body       string
		everywhere bool
		leak       bool
	}{
		{`{"phone":"13812345678"}`, false, true},
		{`{"a":[{"b":1},{"phone":{"n":[1]}}]}`, false, true},
		{`{"phone":"138****5678","phone":"13812345678"}`, false, true},
		{`{"x":"13812345678"}`, false, false},
		{`{"x":"13812345678"}`, true, true},
		{`{"13812345678":1}`, true, true},
		{`["a",{"b":["c","call 13812345678"]}]`, true, true},
		{`{"phone":"138****5678","x":[{"y":"2026112300012"}],"n":13812345678}`, true, false},
	}
	for _, tt := range tests {
		err := checkMasked([]byte(tt.body), fields, tt.everywhere)
		if (err != nil) != tt.leak {
			t.Errorf("checkMasked(%s, everywhere=%v) = %v; want leak %v", tt.body, tt.everywhere, err, tt.leak)
		}
	}
}

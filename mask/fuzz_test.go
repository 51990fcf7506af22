package mask

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/signgate/signgate/internal/leakcheck"
)

// FuzzMaskJSON feeds arbitrary bytes to JSON under two rule sets. It must never
// panic; it must refuse exactly what encoding/json refuses; valid input must come
// out valid, and unchanged input byte for byte; with cn_mobile no mobile number may
// survive anywhere, in any form (internal/leakcheck reads the raw body, escapes
// and all), nor any JSON number whose value is one; with fields alone, none under
// a masked field, where no number may survive either.
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
		`{"remark":"１３８－１２３４－５６７８","note":"138.1234.5678 或 1 3 8 1 2 3 4 5 6 7 8","x":"\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18"}`,
		`{"𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖":[13812345678,8613812345678,-13812345678,1.3812345678E10,13812345678.0,1381234567.8e1,1.38e10,1381234.5678]}`,
		`["13812345 1391234 5678","110101199003071381 2345678","\ud835\udfcf\ud835\udfd1812345678"]`,
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
			if leaks := leakcheck.Find(out); m == detect && len(leaks) > 0 {
				t.Fatalf("JSON(%q) = %q: leaks %q", src, out, leaks)
			}
		}
	})
}

// checkMasked walks the tokens of a masked body with encoding/json, so duplicate
// member names are all seen: under a field no mobile number nor any JSON number may
// be left, and, everywhere, none anywhere: no string nor member name may hold one,
// as decoded, and no number may be one by its value.
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
			if everywhere && len(leakcheck.FindString(name)) > 0 {
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
			if (everywhere || field) && len(leakcheck.FindString(v)) > 0 {
				return errors.New("mobile number in " + v)
			}
		case json.Number:
			if field {
				return errors.New("number left in a masked field: " + string(v))
			}
			if everywhere && isMobileValue(string(v)) {
				return errors.New("mobile number as a number: " + string(v))
			}
		}
		afterValue(stack)
	}
}

// isMobileValue is the fuzzers' own idea of a JSON number that is a phone: its exact
// value, by math/big, is an integer that leakcheck takes for a mobile number.
func isMobileValue(n string) bool {
	if e := strings.IndexAny(n, "eE"); e >= 0 && len(n)-e > 6 {
		return false // an exponent of 10^5 or more: far from any phone, and slow to compute
	}
	r, ok := new(big.Rat).SetString(n)
	if !ok || !r.IsInt() {
		return false
	}
	return leakcheck.IsMobile([]byte(new(big.Int).Abs(r.Num()).String()))
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

// textSeeds are inputs for the text fuzzers: every form of a number the tests
// know, and the inputs where stars leave pieces that complete another number.
var textSeeds = []string{
	"13812345678", "+86 138 1234 5678", "8613812345678", "0086-13812345678",
	"请联系 138-1234-5678 或 +86 139 1234 5678", "20261123138123456789",
	"11010119900307123X", "110101900307123", "1763900000000", "138-1234-56789",
	"138.1234.5678", "1 3 8 1 2 3 4 5 6 7 8", "12 138 1234 5678", "86138 1234 5678",
	"１３８－１２３４－５６７８", "𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "١٣٨١٢٣٤٥٦٧٨", "138\u30001234\u00a05678",
	`\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038`, `\\u0031\u0033`,
	`\ud835\udfcf\ud835\udfd1812345678`, "13812345 1391234 5678", "138 12341381 2345678",
	"13812345 110101199003071234", "110101199003071381 2345678",
}

// FuzzMaskText feeds arbitrary text to Text and String: they must never panic,
// agree with each other, only ever replace characters by one star each, and leave
// no mobile number behind in any form.
func FuzzMaskText(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, idCard bool) {
		m := New(Rules{DetectIDCard: idCard})
		out, changed := m.Text(nil, []byte(in))
		if s := m.String(in); s != string(out) {
			t.Fatalf("String = %q, Text = %q", s, out)
		}
		if changed != (string(out) != in) || len(out) > len(in) {
			t.Fatalf("Text(%q) = %q, changed %v", in, out, changed)
		}
		// A star stands for one character, so where characters are plain runes
		// (no escapes, no invalid bytes) their count holds.
		if utf8.ValidString(in) && !strings.Contains(in, `\`) && utf8.RuneCount(out) != utf8.RuneCountInString(in) {
			t.Fatalf("Text(%q) = %q: characters added or lost", in, out)
		}
		if leaks := leakcheck.Find(out); len(leaks) > 0 {
			t.Fatalf("Text(%q) = %q: leaks %q", in, out, leaks)
		}
	})
}

// FuzzFinderAgreesWithLeakcheck holds the masker and the reference to one
// definition from the other side: text is masked exactly when leakcheck finds a
// number in it, and a single-number text is masked where leakcheck says.
func FuzzFinderAgreesWithLeakcheck(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s)
	}
	m := New(Rules{})
	f.Fuzz(func(t *testing.T, in string) {
		leaks := leakcheck.FindString(in)
		out, changed := m.Text(nil, []byte(in))
		if changed != (len(leaks) > 0) {
			t.Fatalf("Text(%q) = %q, changed %v; leakcheck finds %q", in, out, changed, leaks)
		}
		if len(leaks) == 1 && strings.Count(in, leaks[0]) == 1 {
			// The number is masked where it is, and nothing else is touched.
			i := strings.Index(in, leaks[0])
			if !strings.HasPrefix(string(out), in[:i]) {
				t.Fatalf("Text(%q) = %q: changed before the number %q", in, out, leaks[0])
			}
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
		{`{"n":13812345678}`, true, true},
		{`{"n":1381234567.8e1}`, true, true},
		{`{"x":"１３８ １２３４ ５６７８"}`, true, true},
		{`{"x":"\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"}`, true, true},
		{`{"phone":"138****5678","x":[{"y":"2026112300012"}],"n":1763900000000,"m":1e99999}`, true, false},
	}
	for _, tt := range tests {
		err := checkMasked([]byte(tt.body), fields, tt.everywhere)
		if (err != nil) != tt.leak {
			t.Errorf("checkMasked(%s, everywhere=%v) = %v; want leak %v", tt.body, tt.everywhere, err, tt.leak)
		}
	}
}

// TestMaskTextDenseChains is FuzzMaskText's property over text that random bytes
// seldom make: long chains of short runs in mixed spellings, where stars leave
// pieces that complete other numbers, and ID cards next to phones.
func TestMaskTextDenseChains(t *testing.T) {
	alphabet := []string{
		"1", "1", "1", "3", "3", "8", "8", "6", "6", "0", "0", "2", "4", "5", "7", "9",
		" ", " ", "-", ".", "\u3000", "\t", "x", "*", ",",
		"１", "３", "８", "\\u0031", "\\u0033", "𝟖", "X",
		"1391234", "13812345", "5678", "11010119900307", "1381", "86", "0086", "．", "·", ".", ". ",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 30000 {
		var b strings.Builder
		for range 8 + rng.IntN(48) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		in := b.String()
		for _, idCard := range []bool{false, true} {
			m := New(Rules{DetectIDCard: idCard})
			out := m.String(in)
			if leaks := leakcheck.FindString(out); len(leaks) > 0 {
				t.Fatalf("case %d: String(%q) = %q (idCard %v): leaks %q", n, in, out, idCard, leaks)
			}
			if !idCard && (out != in) != (len(leakcheck.FindString(in)) > 0) {
				t.Fatalf("case %d: String(%q) = %q, but leakcheck finds %q", n, in, out, leakcheck.FindString(in))
			}
			body, err := json.Marshal(map[string]string{in: in})
			if err != nil {
				t.Fatal(err)
			}
			masked, _, err := New(Rules{DetectMobile: true, DetectIDCard: idCard}).JSON(nil, body)
			if err != nil {
				t.Fatal(err)
			}
			if leaks := leakcheck.Find(masked); len(leaks) > 0 {
				t.Fatalf("case %d: JSON(%s) = %s: leaks %q", n, body, masked, leaks)
			}
		}
	}
}

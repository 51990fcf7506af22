package mask

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/signgate/signgate/internal/leakcheck"
)

// ownerRules is the masking section of the shipped config.yaml, with names on.
var ownerRules = Rules{
	Fields:       []string{"phone", "mobile", "userPhone", "contactPhone"},
	DetectMobile: true,
	Names:        []string{"name", "userName"},
}

func TestJSON(t *testing.T) {
	idRules := ownerRules
	idRules.DetectIDCard = true
	fieldsOnly := Rules{Fields: ownerRules.Fields}

	tests := []struct {
		name  string
		rules *Rules // nil: ownerRules
		in    string
		want  string // "" when the body must come out unchanged
	}{
		{
			name: "order with its owner",
			in:   `{"orderId":"2026112300012","owner":{"name":"张三","phone":"13812345678"}}`,
			want: `{"orderId":"2026112300012","owner":{"name":"张*","phone":"138****5678"}}`,
		},
		{
			name: "array of owners",
			in:   `[{"name":"张三丰","phone":"13812345678"},{"name":"欧阳娜娜","phone":"+86 139-1234-5678"}]`,
			want: `[{"name":"张**","phone":"138****5678"},{"name":"欧***","phone":"+86 139-****-5678"}]`,
		},
		{
			name: "nested staff info in a 58到家 answer",
			in:   `{"code":0,"message":"ok","data":{"list":[{"orderId":"2026112300012","staff":{"staffId":1024,"userName":"李四","mobile":"15912345678","skills":["保洁","做饭"]}}],"total":1}}`,
			want: `{"code":0,"message":"ok","data":{"list":[{"orderId":"2026112300012","staff":{"staffId":1024,"userName":"李*","mobile":"159****5678","skills":["保洁","做饭"]}}],"total":1}}`,
		},
		{
			name: "phone kept as a JSON number becomes a string",
			in:   `{"userPhone":13812345678,"userAge":18,"userSex":1}`,
			want: `{"userPhone":"138****5678","userAge":18,"userSex":1}`,
		},
		{
			name: "phone fields holding something else are still masked",
			in:   `{"contactPhone":"010-12345678","phone":"12345","mobile":12012345678,"userPhone":1.5e3}`,
			want: `{"contactPhone":"010*****5678","phone":"*****","mobile":"120****5678","userPhone":"*****"}`,
		},
		{
			name: "list of phones in a phone field",
			in:   `{"mobile":["13812345678",13912345678,null]}`,
			want: `{"mobile":["138****5678","139****5678",null]}`,
		},
		{
			name: "object under a phone field",
			in:   `{"contactPhone":{"countryCode":"86","number":"13812345678","verified":true}}`,
			want: `{"contactPhone":{"countryCode":"**","number":"138****5678","verified":true}}`,
		},
		{
			name: "empty, null and already masked phones stay as they are",
			in:   `{"phone":"","mobile":null,"userPhone":"138****5678","contactPhone":true}`,
		},
		{
			name: "escaped Unicode name keeps its escape",
			in:   `{"name":"\u5f20\u4e09","phone":"13812345678"}`,
			want: `{"name":"\u5f20*","phone":"138****5678"}`,
		},
		{
			name: "surrogate pair counts as one character",
			in:   `{"userName":"\ud842\udfb7\u4e09"}`,
			want: `{"userName":"\ud842\udfb7*"}`,
		},
		{
			name: "escaped digits cannot hide a phone",
			in:   `{"remark":"call \u0031\u00338\u0031\u0032345678 now"}`,
			want: `{"remark":"call \u0031\u00338****5678 now"}`,
		},
		{
			name: "escaped phone field keeps the escapes it shows",
			in:   `{"phone":"\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"}`,
			want: `{"phone":"\u0031\u0033\u0038****\u0035\u0036\u0037\u0038"}`,
		},
		{
			name: "phones in free text",
			in:   `{"remark":"请联系 138-1234-5678 或 +86 139 1234 5678","ok":true}`,
			want: `{"remark":"请联系 138-****-5678 或 +86 139 **** 5678","ok":true}`,
		},
		{
			name: "+86, 86 and 0086 forms",
			in:   `{"a":"+8613812345678","b":"8613812345678","c":"0086 13812345678","d":"+86 13812345678"}`,
			want: `{"a":"+86138****5678","b":"86138****5678","c":"0086 138****5678","d":"+86 138****5678"}`,
		},
		{
			name: "numbers that are not phones stay",
			in:   `{"orderId":"20261123138123456789","createTime":1763900000000,"ts":"1763900000000","price":138.00,"amount":12012345678,"big":1.2e10,"ref":"1381234567","ref12":"138123456789","landline":"12012345678","createdAt":"2026-11-23 10:00:00","n":[1381234567,138123456789,-0.5,1e400,0.0,1700000000.5,13812345.678,13.812345678]}`,
		},
		{
			name: "a phone kept as a number in any member becomes a string",
			in:   `{"amount":13812345678,"list":[8613812345678,-13812345678],"deep":{"a":[{"b":15912345678}]}}`,
			want: `{"amount":"138****5678","list":["86138****5678","138****5678"],"deep":{"a":[{"b":"159****5678"}]}}`,
		},
		{
			name: "a phone spelt as a number in any notation becomes its masked string",
			in:   `[1.3812345678E10,13812345678.0,1381234567.8e1,138123456780e-1,0.0013812345678e13,1.38e10,8.613812345678e12]`,
			want: `["138****5678","138****5678","138****5678","138****5678","138****5678","138****0000","86138****5678"]`,
		},
		{
			name: "a number whose digits spell a phone is masked as text",
			in:   `{"a":1381234.5678,"b":13812345678e5,"c":-0.13812345678}`,
			want: `{"a":"138****.5678","b":"138****5678e5","c":"-0.138****5678"}`,
		},
		{
			name:  "numbers outside fields are left alone without cn_mobile",
			rules: &fieldsOnly,
			in:    `{"amount":13812345678,"x":1.3812345678E10}`,
		},
		{
			name: "full-width digits in a string",
			in:   `{"remark":"业主电话：１３８１２３４５６７８"}`,
			want: `{"remark":"业主电话：１３８****５６７８"}`,
		},
		{
			name: "escaped full-width digits",
			in:   `{"remark":"\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18"}`,
			want: `{"remark":"\uff11\uff13\uff18****\uff15\uff16\uff17\uff18"}`,
		},
		{
			name: "escaped mathematical digits",
			in:   `{"remark":"\ud835\udfcf\ud835\udfd1\ud835\udfd6\ud835\udfcf\ud835\udfd0\ud835\udfd1\ud835\udfd2\ud835\udfd3\ud835\udfd4\ud835\udfd5\ud835\udfd6"}`,
			want: `{"remark":"\ud835\udfcf\ud835\udfd1\ud835\udfd6****\ud835\udfd3\ud835\udfd4\ud835\udfd5\ud835\udfd6"}`,
		},
		{
			name: "groups separated by dots, spaces and dashes in strings",
			in:   `{"a":"138.1234.5678","b":"1 3 8 1 2 3 4 5 6 7 8","c":"12 138 1234 5678","d":"138\t1234\u00a05678","e":"１３８－１２３４－５６７８"}`,
			want: `{"a":"138.****.5678","b":"1 3 8 * * * * 5 6 7 8","c":"12 138 **** 5678","d":"138\t****\u00a05678","e":"１３８－****－５６７８"}`,
		},
		{
			name: "member names in any form",
			in:   `{"１３８１２３４５６７８":1,"138-1234-5678":2,"\u0031\u0033\u0038 1234 5678":3}`,
			want: `{"１３８****５６７８":1,"138-****-5678":2,"\u0031\u0033\u0038 **** 5678":3}`,
		},
		{
			name:  "ID-card numbers in any form",
			rules: &idRules,
			in:    `{"a":"１１０１０１１９９００３０７１２３４","b":"\u0031\u00310101199003071234"}`,
			want:  `{"a":"１１０***********１２３４","b":"\u0031\u00310***********1234"}`,
		},
		{
			name: "spacing, key order and number spellings kept",
			in:   "{\n  \"z\": 1.0e+3,\n  \"phone\" : \"13812345678\" ,\n\t\"a\": [ -0, 1E-2, true, null, {} , [] ]\r\n}\n",
			want: "{\n  \"z\": 1.0e+3,\n  \"phone\" : \"138****5678\" ,\n\t\"a\": [ -0, 1E-2, true, null, {} , [] ]\r\n}\n",
		},
		{
			name: "member named by a phone number",
			in:   `{"13812345678":{"orders":3}}`,
			want: `{"138****5678":{"orders":3}}`,
		},
		{
			name: "escaped member name still names a field",
			in:   `{"ph\u006fne":"12012345678"}`,
			want: `{"ph\u006fne":"120****5678"}`,
		},
		{
			name:  "field names are case-sensitive",
			rules: &Rules{Fields: []string{"phone"}},
			in:    `{"Phone":"12012345678","PHONE":"x"}`,
		},
		{
			name: "a one-character name has nothing to hide",
			in:   `{"name":"张","userName":""}`,
		},
		{
			name: "a number under a name member is left alone",
			in:   `{"name":42}`,
		},
		{
			name: "names inside a phone field are masked as a phone",
			in:   `{"contactPhone":{"name":"张三丰"}}`,
			want: `{"contactPhone":{"name":"***"}}`,
		},
		{
			name: "escapes without digits copied as they are",
			in:   `{"msg":"line\nbreak \"quoted\" \\ \/ \u5f20 \b\f\r\t"}`,
		},
		{
			name:  "ID cards with cn_id_card",
			rules: &idRules,
			in:    `{"idCard":"110101199003071234","old":"110101900307123","x":"11010119900307123X","orderId":"202611230001234567"}`,
			want:  `{"idCard":"110***********1234","old":"110********7123","x":"110***********123X","orderId":"202611230001234567"}`,
		},
		{
			name: "ID cards left alone without cn_id_card",
			in:   `{"idCard":"110101199003071234"}`,
		},
		{
			name:  "without cn_mobile only fields are masked",
			rules: &fieldsOnly,
			in:    `{"remark":"call 13812345678","phone":"13812345678","name":"张三"}`,
			want:  `{"remark":"call 13812345678","phone":"138****5678","name":"张三"}`,
		},
		{
			name:  "no rules, no change",
			rules: &Rules{},
			in:    `{"phone":"13812345678","name":"张三"}`,
		},
		{
			name: "top-level string and number",
			in:   ` "13812345678" `,
			want: ` "138****5678" `,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := ownerRules
			if tt.rules != nil {
				rules = *tt.rules
			}
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got, changed, err := New(rules).JSON([]byte("prefix:"), []byte(tt.in))
			if err != nil {
				t.Fatalf("JSON(%s): %v", tt.in, err)
			}
			if string(got) != "prefix:"+want {
				t.Errorf("JSON(%s)\n got %s\nwant %s", tt.in, got[len("prefix:"):], want)
			}
			if changed != (want != tt.in) {
				t.Errorf("changed = %v; want %v", changed, want != tt.in)
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestJSONRefusesInvalidJSON(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty body", ""},
		{"only white space", " \n"},
		{"truncated object", `{"orderId":"2026112300012","owner":{"phone":"13812345678"}`},
		{"truncated string", `{"phone":"1381234`},
		{"truncated escape", `{"phone":"\u00`},
		{"trailing garbage", `{"phone":"13812345678"}x`},
		{"two documents", `{"a":1}{"b":2}`},
		{"missing colon", `{"phone" "13812345678"}`},
		{"single quotes", `{'phone':'13812345678'}`},
		{"unquoted name", `{phone:1}`},
		{"trailing comma in object", `{"a":1,}`},
		{"trailing comma in array", `[1,]`},
		{"leading comma", `[,1]`},
		{"missing comma", `[1 2]`},
		{"leading zero", `{"phone":013812345678}`},
		{"bare minus", `-`},
		{"dot without digits", `1.`},
		{"leading dot", `.5`},
		{"plus sign", `+1`},
		{"exponent without digits", `1e+`},
		{"hex number", `0x1F`},
		{"bad escape", `"\x41"`},
		{"bad unicode escape", `"\u12G4"`},
		{"raw tab in a string", "\"a\tb\""},
		{"raw newline in a string", "\"a\nb\""},
		{"misspelt literal", `tru`},
		{"literal run on", `nulll`},
		{"NaN", `NaN`},
		{"nested deeper than 10000", strings.Repeat("[", 10001) + strings.Repeat("]", 10001)},
		{"unclosed deep nesting", strings.Repeat(`{"a":[`, 3000)},
	}
	m := New(ownerRules)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if json.Valid([]byte(tt.in)) {
				t.Fatalf("test case is valid JSON to encoding/json: %q", tt.in)
			}
			if _, _, err := m.JSON(nil, []byte(tt.in)); err == nil {
				t.Errorf("JSON(%q) gave no error", tt.in)
			}
		})
	}
}

func TestJSONAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	for _, in := range []string{
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), // encoding/json's own limit
		"\"\xff\xfe invalid UTF-8 is passed through\"",
		`"\ud800 lone surrogate"`,
		`0`, `-0.0e-0`, `[]`, `{}`, ` true `,
	} {
		if !json.Valid([]byte(in)) {
			t.Fatalf("test case is not valid JSON: %.40q", in)
		}
		got, changed, err := New(ownerRules).JSON(nil, []byte(in))
		if err != nil || changed || string(got) != in {
			t.Errorf("JSON(%.40q) = %.40q, %v, %v; want it unchanged", in, got, changed, err)
		}
	}
}

func TestJSONIsSafeForConcurrentUse(t *testing.T) {
	m := New(ownerRules)
	body := orderList(4 << 10)
	want, _, err := m.JSON(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var dst []byte
			for range 50 {
				dst, _, _ = m.JSON(dst[:0], body)
				if string(dst) != string(want) {
					t.Error("concurrent JSON gave a different answer")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestBenchmarkBodiesComeOutMasked(t *testing.T) {
	fields := map[string]bool{}
	for _, f := range ownerRules.Fields {
		fields[f] = true
	}
	for _, body := range [][]byte{orderList(256 << 10), asciiOnly(orderList(4 << 10))} {
		if len(leakcheck.Find(body)) == 0 {
			t.Fatal("the benchmark body holds no phone to mask")
		}
		out, changed, err := New(ownerRules).JSON(nil, body)
		if err != nil || !changed {
			t.Fatalf("JSON: changed %v, %v", changed, err)
		}
		if err := checkMasked(out, fields, true); err != nil {
			t.Error(err)
		}
		if leaks := leakcheck.Find(out); len(leaks) > 0 {
			t.Errorf("masked benchmark body leaks %q", leaks)
		}
	}
}

// TestJSONDoesNotAllocateOnNewForms keeps the hot path free of garbage for the
// forms DetectMobile learnt: full-width and escaped digits, groups, numbers.
func TestJSONDoesNotAllocateOnNewForms(t *testing.T) {
	m := New(ownerRules)
	body := []byte(`{"a":"１３８－１２３４－５６７８","b":"\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",` +
		`"1 3 8 1 2 3 4 5 6 7 8":[13812345678,1.3812345678E10,1381234.5678,1763900000000],"c":"13812345 1391234 5678"}`)
	dst := make([]byte, 0, 2*len(body))
	m.JSON(dst[:0], body) // fills the pool
	if n := testing.AllocsPerRun(100, func() { dst, _, _ = m.JSON(dst[:0], body) }); n != 0 {
		t.Errorf("JSON allocates %v times", n)
	}
	if leaks := leakcheck.Find(dst); len(leaks) > 0 {
		t.Errorf("JSON = %s: leaks %q", dst, leaks)
	}
}

package mask

import (
	"testing"

	"github.com/signgate/signgate/internal/leakcheck"
)

func TestText(t *testing.T) {
	tests := []struct {
		name   string
		idCard bool
		in     string
		want   string
	}{
		{name: "bare mobile", in: "13812345678", want: "138****5678"},
		{name: "+86 and a space", in: "+86 13812345678", want: "+86 138****5678"},
		{name: "+86 run together", in: "+8613812345678", want: "+86138****5678"},
		{name: "86 run together", in: "8613812345678", want: "86138****5678"},
		{name: "0086 and a space", in: "0086 13812345678", want: "0086 138****5678"},
		{name: "0086 run together", in: "008613812345678", want: "0086138****5678"},
		{name: "+86 and a dash", in: "+86-13812345678", want: "+86-138****5678"},
		{name: "dashes at 3|4|4", in: "138-1234-5678", want: "138-****-5678"},
		{name: "spaces at 3|4|4", in: "138 1234 5678", want: "138 **** 5678"},
		{name: "one separator only", in: "1381234 5678", want: "138**** 5678"},
		{name: "prefix, spaces and groups", in: "+86 139 1234 5678", want: "+86 139 **** 5678"},
		{name: "phones in free text", in: "请联系 138-1234-5678 或 +86 139 1234 5678", want: "请联系 138-****-5678 或 +86 139 **** 5678"},
		{name: "letters around a phone", in: "tel13812345678ext", want: "tel138****5678ext"},
		{name: "two phones in a list", in: "13812345678,19912345678", want: "138****5678,199****5678"},
		{name: "phone in a query string", in: "/api/orders?phone=15912345678&page=2", want: "/api/orders?phone=159****5678&page=2"},
		{name: "mobile prefixes 14 to 18", in: "14812345678 16812345678 17812345678 18812345678", want: "148****5678 168****5678 178****5678 188****5678"},

		// Numbers in any form (DESIGN.md "Numbers in any form").
		{name: "dots at 3|4|4", in: "138.1234.5678", want: "138.****.5678"},
		{name: "every digit apart", in: "1 3 8 1 2 3 4 5 6 7 8", want: "1 3 8 * * * * 5 6 7 8"},
		{name: "groups of 2-3-3-3", in: "13 812 345 678", want: "13 8** **5 678"},
		{name: "runs before the number", in: "12 138 1234 5678", want: "12 138 **** 5678"},
		{name: "86 run into the first group", in: "86138 1234 5678", want: "86138 **** 5678"},
		{name: "0086, dashes and groups", in: "0086-138-1234-5678", want: "0086-138-****-5678"},
		{name: "three separators between groups", in: "138 - 1234 - 5678", want: "138 - **** - 5678"},
		{name: "two separators between groups", in: "138  1234\t 5678", want: "138  ****\t 5678"},
		{name: "tab between groups", in: "138\t1234\t5678", want: "138\t****\t5678"},
		{name: "full-width digits", in: "１３８１２３４５６７８", want: "１３８****５６７８"},
		{name: "full-width digits and hyphens", in: "１３８－１２３４－５６７８", want: "１３８－****－５６７８"},
		{name: "full-width digits and full stops", in: "１３８．１２３４．５６７８", want: "１３８．****．５６７８"},
		{name: "full-width digits in a sentence", in: "业主电话：１３８１２３４５６７８，谢谢", want: "业主电话：１３８****５６７８，谢谢"},
		{name: "ideographic spaces", in: "138\u30001234\u30005678", want: "138\u3000****\u30005678"},
		{name: "no-break spaces", in: "+86\u00a0138\u00a01234\u00a05678", want: "+86\u00a0138\u00a0****\u00a05678"},
		{name: "em dashes", in: "138—1234—5678", want: "138—****—5678"},
		{name: "zero-width space", in: "1381234\u200b5678", want: "138****\u200b5678"},
		{name: "mathematical bold digits", in: "𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", want: "𝟏𝟑𝟖****𝟓𝟔𝟕𝟖"},
		{name: "mathematical monospace digits", in: "tel 𝟷𝟹𝟾 𝟷𝟸𝟹𝟺 𝟻𝟼𝟽𝟾", want: "tel 𝟷𝟹𝟾 **** 𝟻𝟼𝟽𝟾"},
		{name: "Arabic-Indic digits", in: "١٣٨١٢٣٤٥٦٧٨", want: "١٣٨****٥٦٧٨"},
		{name: "Devanagari digits", in: "१३८१२३४५६७८", want: "१३८****५६७८"},
		{name: "scripts mixed", in: "13８1234５６78", want: "13８****５６78"},
		{name: "JSON-escaped digits in text", in: `{"p":"\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"`, want: `{"p":"\u0031\u0033\u0038****\u0035\u0036\u0037\u0038"`},
		{name: "JSON-escaped full-width digits in text", in: `\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18`, want: `\uff11\uff13\uff18****\uff15\uff16\uff17\uff18`},
		{name: "JSON-escaped tab between groups", in: `138\t1234\t5678`, want: `138\t****\t5678`},

		// What starring leaves can complete a number: it is starred too.
		{name: "front of a starred group completes a number", in: "13812345 1391234 5678", want: "13812345 ******* 5678"},
		{name: "back of a starred group starts a number", in: "138 12341381 2345678", want: "138 ****138* ***5678"},

		{name: "four separators", in: "138    12345678", want: "138    12345678"},
		{name: "commas", in: "138,1234,5678", want: "138,1234,5678"},
		{name: "slashes", in: "138/1234/5678", want: "138/1234/5678"},
		{name: "line breaks", in: "138\n1234\n5678", want: "138\n1234\n5678"},
		{name: "escaped backslashes are no escapes", in: `\\u0031\\u0033\\u0038\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038`, want: `\\u0031\\u0033\\u0038\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038`},
		{name: "13 digits in groups not after 86", in: "26138 1234 5678", want: "26138 1234 5678"},
		{name: "Chinese numerals", in: "一三八一二三四五六七八", want: "一三八一二三四五六七八"},
		{name: "IP address", in: "192.168.100.200", want: "192.168.100.200"},
		{name: "dots after 86 and as grouped", in: "+86.138.1234.5678", want: "+86.138.****.5678"},
		{name: "middle dots", in: "138·1234·5678", want: "138·****·5678"},
		{name: "dot after the seventh digit", in: "1381234.5678", want: "138****.5678"},
		{name: "a dot and a space join anywhere", in: "13812345. 678", want: "138****5. 678"},
		{name: "decimal", in: "13812345.678", want: "13812345.678"},
		{name: "fraction of a second", in: `"time":"2026-12-06T00:47:15.253444101Z"`, want: `"time":"2026-12-06T00:47:15.253444101Z"`},
		{name: "Unix seconds with a fraction", in: "X-Timestamp: 1700000000.5", want: "X-Timestamp: 1700000000.5"},
		{name: "IPv4 address", in: "client=18.204.123.100", want: "client=18.204.123.100"},

		{name: "order number with a phone inside", in: "order 20261123138123456789", want: "order 20261123138123456789"},
		{name: "13-digit millisecond timestamp", in: "ts=1763900000000", want: "ts=1763900000000"},
		{name: "12012345678 is not a mobile prefix", in: "12012345678", want: "12012345678"},
		{name: "11-prefix is not a mobile", in: "11012345678", want: "11012345678"},
		{name: "10 digits", in: "1381234567", want: "1381234567"},
		{name: "12 digits", in: "138123456789", want: "138123456789"},
		{name: "price", in: "¥138.50", want: "¥138.50"},
		{name: "date and time", in: "2026-11-23 10:00:00", want: "2026-11-23 10:00:00"},
		{name: "separated but a digit too many", in: "138-1234-56789", want: "138-1234-56789"},
		{name: "ID card is not a phone", in: "110101199003071234", want: "110101199003071234"},
		{name: "ID cards left alone without cn_id_card", in: "11010119900307123X", want: "11010119900307123X"},
		{name: "empty", in: "", want: ""},

		{name: "18-digit ID card", idCard: true, in: "身份证 110101199003071234。", want: "身份证 110***********1234。"},
		{name: "ID card ending in X", idCard: true, in: "11010119900307123X", want: "110***********123X"},
		{name: "ID card ending in x", idCard: true, in: "id=11010119900307123x&", want: "id=110***********123x&"},
		{name: "15-digit ID card", idCard: true, in: "110101900307123", want: "110********7123"},
		{name: "ID card and phone", idCard: true, in: "110101199003071234/13812345678", want: "110***********1234/138****5678"},
		{name: "18-digit order number", idCard: true, in: "202611230001234567", want: "202611230001234567"},
		{name: "18 digits with month 13", idCard: true, in: "110101199013071234", want: "110101199013071234"},
		{name: "19 digits", idCard: true, in: "1101011990030712345", want: "1101011990030712345"},
		{name: "15-digit IMEI", idCard: true, in: "354881234567890", want: "354881234567890"},
		{name: "0086 phone is not an ID card", idCard: true, in: "008613812345678", want: "0086138****5678"},
		{name: "full-width ID card", idCard: true, in: "１１０１０１１９９００３０７１２３４", want: "１１０***********１２３４"},
		{name: "front of an ID card completes a number", idCard: true, in: "13812345 110101199003071234", want: "13812345 **************1234"},
		{name: "back of an ID card starts a number", idCard: true, in: "110101199003071381 2345678", want: "110***********138* ***5678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Rules{DetectIDCard: tt.idCard})
			got, changed := m.Text([]byte("prefix:"), []byte(tt.in))
			if string(got) != "prefix:"+tt.want || changed != (tt.in != tt.want) {
				t.Errorf("Text(%q) = %q, %v; want %q, %v", tt.in, got[len("prefix:"):], changed, tt.want, tt.in != tt.want)
			}
			if s := m.String(tt.in); s != tt.want {
				t.Errorf("String(%q) = %q; want %q", tt.in, s, tt.want)
			}
			if leaks := leakcheck.FindString(tt.want); len(leaks) > 0 {
				t.Errorf("the expected output leaks %q", leaks)
			}
		})
	}
}

func TestStringDoesNotAllocateWhenNothingIsMasked(t *testing.T) {
	m := New(Rules{DetectIDCard: true})
	for _, s := range []string{"GET /api/orders/2026112300012?page=2", "request", "203.0.113.7", "1763900000000",
		"２０２６年１１月２３日 10:00", `{"a":"\u5f20\u0031"}`, "2026-11-23 10:00:00.123456", "138-1234-567"} {
		if n := testing.AllocsPerRun(100, func() { _ = m.String(s) }); n != 0 {
			t.Errorf("String(%q) allocates %v times", s, n)
		}
	}
}

func TestNilMaskerStillMasksText(t *testing.T) {
	var m *Masker
	if got := m.String("call 13812345678"); got != "call 138****5678" {
		t.Errorf("nil Masker String = %q", got)
	}
	if got, _, err := m.JSON(nil, []byte(`{"phone":"13812345678"}`)); err != nil || string(got) != `{"phone":"13812345678"}` {
		t.Errorf("nil Masker JSON = %s, %v; want the body unchanged", got, err)
	}
}

func TestMobile(t *testing.T) {
	tests := []struct{ in, want string }{
		{"13812345678", "138****5678"},
		{"+86 138-1234-5678", "+86 138-****-5678"},
		{"+8613812345678", "+86138****5678"},
		{"8613812345678", "86138****5678"},
		{"0086 13812345678", "0086 138****5678"},
		{"138 1234 5678", "138 **** 5678"},
		{"12012345678", "120****5678"},   // not a mobile, but never passed whole
		{"010-12345678", "010*****5678"}, // a landline
		{"13812345678,13912345678", "138****************5678"},
		{"1234567", "*******"},
		{"", ""},
		{"张三李四王五赵六", "张三李*王五赵六"},
	}
	for _, tt := range tests {
		if got := Mobile(tt.in); got != tt.want {
			t.Errorf("Mobile(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

package leakcheck

import (
	"slices"
	"testing"
	"unicode"
)

func TestFind(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "bare", in: "13812345678", want: []string{"13812345678"}},
		{name: "in a sentence", in: "请联系13812345678谢谢", want: []string{"13812345678"}},
		{name: "86 run together", in: "8613812345678", want: []string{"8613812345678"}},
		{name: "0086 run together", in: "008613812345678", want: []string{"008613812345678"}},
		{name: "+86 and a space", in: "+86 13812345678", want: []string{"86 13812345678"}},
		{name: "dashes at 3|4|4", in: "138-1234-5678", want: []string{"138-1234-5678"}},
		{name: "spaces at 3|4|4", in: "138 1234 5678", want: []string{"138 1234 5678"}},
		{name: "dots", in: "138.1234.5678", want: []string{"138.1234.5678"}},
		{name: "every digit apart", in: "1 3 8 1 2 3 4 5 6 7 8", want: []string{"1 3 8 1 2 3 4 5 6 7 8"}},
		{name: "runs before the number", in: "12 138 1234 5678", want: []string{"138 1234 5678"}},
		{name: "86 as a run of its own", in: "+86 138 1234 5678", want: []string{"86 138 1234 5678"}},
		{name: "86 run into the first group", in: "86138 1234 5678", want: []string{"86138 1234 5678"}},
		{name: "three separators", in: "138 - 1234 - 5678", want: []string{"138 - 1234 - 5678"}},
		{name: "full-width digits", in: "１３８１２３４５６７８", want: []string{"１３８１２３４５６７８"}},
		{name: "full-width hyphens", in: "１３８－１２３４－５６７８", want: []string{"１３８－１２３４－５６７８"}},
		{name: "mathematical bold digits", in: "𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", want: []string{"𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖"}},
		{name: "mathematical monospace digits", in: "𝟷𝟹𝟾𝟷𝟸𝟹𝟺𝟻𝟼𝟽𝟾", want: []string{"𝟷𝟹𝟾𝟷𝟸𝟹𝟺𝟻𝟼𝟽𝟾"}},
		{name: "Arabic-Indic digits", in: "١٣٨١٢٣٤٥٦٧٨", want: []string{"١٣٨١٢٣٤٥٦٧٨"}},
		{name: "Devanagari digits", in: "१३८१२३४५६७८", want: []string{"१३८१२३४५६७८"}},
		{name: "scripts mixed", in: "13８1234５６78", want: []string{"13８1234５６78"}},
		{name: "ideographic space and no-break space", in: "138\u30001234\u00a05678", want: []string{"138\u30001234\u00a05678"}},
		{name: "zero-width space", in: "1381234\u200b5678", want: []string{"1381234\u200b5678"}},
		{name: "em dashes", in: "138—1234—5678", want: []string{"138—1234—5678"}},
		{name: "JSON escapes", in: `"\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"`, want: []string{`\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038`}},
		{name: "escaped full-width digits", in: `\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18`, want: []string{`\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18`}},
		{name: "escaped surrogate pairs", in: `\ud835\udfcf\ud835\udfd1812345678`, want: []string{`\ud835\udfcf\ud835\udfd1812345678`}},
		{name: "escaped tab between groups", in: `138\t1234\t5678`, want: []string{`138\t1234\t5678`}},
		{name: "dot after the seventh digit", in: "1381234.5678", want: []string{"1381234.5678"}},
		{name: "dots after 86 and as grouped", in: "+86.138.1234.5678", want: []string{"86.138.1234.5678"}},
		{name: "dots and spaces", in: "138.1234 5678", want: []string{"138.1234 5678"}},
		{name: "a space joins anywhere", in: "13812345 678", want: []string{"13812345 678"}},
		{name: "middle dots", in: "138·1234·5678", want: []string{"138·1234·5678"}},
		{name: "dot and a space join anywhere", in: "13812345. 678", want: []string{"13812345. 678"}},
		{name: "JSON number with a fraction", in: `[13812345678.0]`, want: []string{"13812345678"}},
		{name: "two numbers", in: "13812345678,13912345678", want: []string{"13812345678", "13912345678"}},

		{name: "masked", in: "138****5678"},
		{name: "masked with separators", in: "+86 138-****-5678"},
		{name: "masked full-width", in: "１３８****５６７８"},
		{name: "order number with a phone inside", in: "20261123138123456789"},
		{name: "13-digit number not starting 86", in: "2613812345678"},
		{name: "millisecond timestamp", in: "1763900000000"},
		{name: "ID card", in: "110101199003071234"},
		{name: "12 digits", in: "138123456789"},
		{name: "10 digits", in: "1381234567"},
		{name: "not a mobile prefix", in: "12012345678"},
		{name: "four separators", in: "138    12345678"},
		{name: "comma", in: "138,1234,5678"},
		{name: "slash", in: "138/1234/5678"},
		{name: "line break", in: "138\n1234\n5678"},
		{name: "escaped line break", in: `138\n12345678`},
		{name: "escaped backslash before u", in: `\\u0031\\u0033\\u0038\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038`},
		{name: "separators alone do not make a run", in: "1381234 - - 5678"},
		{name: "date and time", in: "2026-11-23 10:00:00"},
		{name: "fraction of a second", in: `{"time":"2026-12-06T00:47:15.253444101Z"}`},
		{name: "Unix seconds with a fraction", in: "1700000000.5"},
		{name: "decimal", in: "13812345.678"},
		{name: "IPv4 address", in: "client 18.204.123.100"},
		{name: "JSON number with an exponent", in: `{"n":1.3812345678E10}`},
		{name: "dot inside 0086", in: "0.086138.1234.5678"},
		{name: "Chinese numerals are not digits", in: "一三八一二三四五六七八"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FindString(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("FindString(%q) = %q; want %q", tt.in, got, tt.want)
			}
			if got := Find([]byte(tt.in)); !slices.Equal(got, tt.want) {
				t.Errorf("Find(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDigitValue(t *testing.T) {
	for _, tt := range []struct {
		r    rune
		want int
	}{{'0', 0}, {'9', 9}, {'０', 0}, {'７', 7}, {'٣', 3}, {'३', 3}, {'𝟎', 0}, {'𝟗', 9}, {'𝟘', 0}, {'𝟿', 9}} {
		if v, ok := DigitValue(tt.r); !ok || v != tt.want {
			t.Errorf("DigitValue(%q) = %d, %v; want %d", tt.r, v, ok, tt.want)
		}
	}
	for _, r := range []rune{'a', '一', '〇', '²', '½', 'Ⅷ', '*', 0x10FFFF} {
		if v, ok := DigitValue(r); ok {
			t.Errorf("DigitValue(%q) = %d, true; want not a digit", r, v)
		}
	}
}

// TestDecimalDigitsComeInTens holds Unicode to the promise DigitValue relies on.
func TestDecimalDigitsComeInTens(t *testing.T) {
	check := func(lo, hi, stride uint32) {
		if stride != 1 || (hi-lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U (stride %d) is not whole runs of ten", lo, hi, stride)
		}
	}
	for _, rg := range unicode.Nd.R16 {
		check(uint32(rg.Lo), uint32(rg.Hi), uint32(rg.Stride))
	}
	for _, rg := range unicode.Nd.R32 {
		check(rg.Lo, rg.Hi, rg.Stride)
	}
}

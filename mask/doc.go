// Package mask hides owners' personal data (mobile numbers, ID-card numbers,
// names) in JSON bodies, text bodies and log lines, as DESIGN.md "Masking" promises:
// providers see 138****5678, and no log line ever holds a full number.
//
// A Masker is built once from Rules (per config load) and is then used from any
// number of goroutines. JSON bodies are rewritten in one pass by a small scanner
// rather than encoding/json, because a decode/encode round trip would reorder keys,
// respell numbers and escapes, and cost several times as much; everything that is
// not masked stays byte for byte as the upstream sent it. The scanner also
// validates: a body that is not JSON is an error, and the caller decides what to do
// with it (the gateway masks it as text by pattern).
//
// What each rule masks:
//
//   - Fields: the value of a member with one of these names, at any depth. A string
//     that is a mobile number keeps its prefix, separators, first 3 and last 4
//     national digits (+86 138****5678); any other string keeps its first 3 and
//     last 4 characters when it has at least 8, and is all stars otherwise. A number
//     is masked the same way and becomes a JSON string ("138****5678"), because a
//     JSON number cannot hold '*'. An array or object under such a name has every
//     string and number inside it masked: a field named phone that holds a list or
//     a {"countryCode","number"} pair is still a phone.
//   - Names: the value of a member with one of these names keeps its first
//     character, and each further character becomes one star (张三丰 -> 张**).
//     Numbers, booleans and null under such a name are left alone.
//   - DetectMobile: any string anywhere, object member names included, has every
//     mainland mobile number in it masked, also inside free text. JSON numbers
//     outside Fields are not touched: turning a number into a string would change a
//     body's types behind the backend's back, so a phone kept as a JSON number must
//     be listed in Fields.
//   - DetectIDCard: 18-digit (the last may be X) and 15-digit ID-card numbers in
//     strings keep their first 3 and last 4 digits.
//
// A mobile number is 1[3-9] and 9 more digits, optionally split 3-4-4 by one space
// or dash, optionally after 86 or 0086 (with or without + and one separator), and
// never part of a longer run of digits: an order number, a 13-digit millisecond
// timestamp or an ID-card number is not a phone.
package mask

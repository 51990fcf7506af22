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
//     mainland mobile number in it masked, also inside free text, and so does any
//     JSON number, in any member: a number whose value is a mobile number
//     (13812345678, 8613812345678, -1.3812345678E10, 13812345678.0) becomes the
//     string "138****5678" ("86138****5678"), and one whose spelling holds one
//     (1381234.5678) becomes that spelling masked, "138****.5678". A JSON number
//     cannot hold a star, and a phone kept as a number is still a phone.
//   - DetectIDCard: 18-digit (the last may be X) and 15-digit ID-card numbers in
//     strings keep their first 3 and last 4 digits.
//
// A mobile number is found in any digit form and grouping, as
// internal/leakcheck defines it (that package's comment is the reference, and the
// fuzz targets hold the masker to it): Unicode decimal digits of any script
// (full-width １３８, mathematical 𝟏𝟑𝟖, Arabic-Indic, ...), JSON escapes of them
// (\u0031, \uff11), and runs of digits joined by one to three spaces, dashes or
// dots ("138 1234 5678", "1 3 8 1 2 3 4 5 6 7 8", "１３８－１２３４－５６７８"; dots
// alone only as phones are grouped, "138.1234.5678", so that decimals, fractions
// of a second and IPv4 addresses are not phones), spelling 1[3-9] and nine more
// digits, perhaps after 86 or 0086. Its 4th to 7th national digits become one
// star each (a multi-byte or escaped digit too); everything else keeps its
// spelling. A number inside a longer run of digits is not a phone: an order
// number, a 13-digit millisecond timestamp or an ID-card number. Text and log lines are read the same way, JSON escapes included, so
// that a JSON body masked line by line as text (a stream) leaks nothing either.
//
// What stars leave can complete a number that was not there before ("13812345
// 1391234 5678": starring 1234 would leave 13812345 and 139, eleven digits), so
// such a piece is starred too; nothing that comes out holds a number, whatever
// came in.
package mask

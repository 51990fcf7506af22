package apispec

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeJSON holds the strict decoder to encoding/json's own reading: it takes
// exactly the documents json.Unmarshal takes, less those that name a member twice
// in one object, in any letter case (found here by a slow token walk), and never
// panics.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"a":1,"b":[1,{"a":2}]}`, `{"a":1,"a":2}`, `{"\u0061":1,"a":2}`, `[{"x":{}},{"x":{"y":1,"y":2}}]`,
		`"str\"ing"`, `{"a\\":1,"a":2}`, `{} {}`, `[1,2,]`, "{\"a\":\"\xff\"}", ` { "a" : [ ] , "b" : { } } `,
		`{"a":{"b":1},"b":{"b":1},"a ":1}`, `{"a":1,"A":2}`, `{"k":1,"\u212a":2}`, `{"ss":1,"ß":2}`, strings.Repeat(`{"k":`, 40) + "1" + strings.Repeat("}", 40),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeJSON(body)
		var ref any
		valid := utf8.Valid(body) && json.Unmarshal(body, &ref) == nil
		switch {
		case !valid && err == nil:
			t.Fatalf("accepted what json.Unmarshal refuses: %q", body)
		case valid && hasDuplicate(body) != (err != nil):
			t.Fatalf("duplicate found %v, error %v, for %q", hasDuplicate(body), err, body)
		case err == nil && v == nil && !bytes.Equal(bytes.TrimSpace(body), []byte("null")):
			t.Fatalf("no value for %q", body)
		}
	})
}

// hasDuplicate walks body's tokens for an object naming a member twice, as
// strings.EqualFold compares names.
func hasDuplicate(body []byte) bool {
	d := json.NewDecoder(bytes.NewReader(body))
	var objects [][]string // one per open object, its names so far; nil for an array
	expectKey := func() bool { return len(objects) > 0 && objects[len(objects)-1] != nil }
	afterKey := false
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch x := tok.(type) {
		case json.Delim:
			switch x {
			case '{':
				objects = append(objects, []string{})
			case '[':
				objects = append(objects, nil)
			default:
				objects = objects[:len(objects)-1]
			}
			afterKey = false
			continue
		case string:
			if expectKey() && !afterKey {
				names := objects[len(objects)-1]
				if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, x) }) {
					return true
				}
				objects[len(objects)-1] = append(names, x)
				afterKey = true
				continue
			}
		}
		afterKey = false
	}
}

package jsonstrict_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/custody-dev/custody/internal/jsonstrict"
)

var checkCases = []struct {
	name, in string
	want     error
}{
	{"object", `{"a":1,"b":[true,false,null,"x",-1.5e3],"c":{"a":2}}`, nil},
	{"same name in another object", `{"a":{"a":1},"b":{"a":2}}`, nil},
	{"white space", " \t\n[1]\r\n", nil},
	{"utf-8", `{"name":"café ✓ 𝄞"}`, nil},
	{"escaped pair", `"\ud834\udd1e"`, nil},
	{"escapes", `"\"\\\/\b\f\n\r\t\u00e9"`, nil},
	{"duplicate", `{"subject":[],"predicateType":"x","subject":[{"name":"a"}]}`, jsonstrict.ErrDuplicate},
	{"duplicate nested", `{"a":[{"b":1,"b":2}]}`, jsonstrict.ErrDuplicate},
	{"duplicate escaped", `{"a":1,"\u0061":2}`, jsonstrict.ErrDuplicate},
	{"duplicate among many", `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"a3":3}`, jsonstrict.ErrDuplicate},
	{"invalid utf-8", "{\"name\":\"caf\xe9\"}", jsonstrict.ErrInvalidUTF8},
	{"invalid utf-8 in a name", "{\"\xff\":1}", jsonstrict.ErrInvalidUTF8},
	{"lone high surrogate", `"\ud800"`, jsonstrict.ErrInvalidUTF8},
	{"lone low surrogate", `"\udc00x"`, jsonstrict.ErrInvalidUTF8},
	{"high then escape", `"\ud800\n"`, jsonstrict.ErrInvalidUTF8},
	{"two highs", `"\ud800\ud800"`, jsonstrict.ErrInvalidUTF8},
	{"empty", ``, jsonstrict.ErrNotJSON},
	{"two values", `{} {}`, jsonstrict.ErrNotJSON},
	{"trailing comma", `[1,]`, jsonstrict.ErrNotJSON},
	{"bad escape", `"\x"`, jsonstrict.ErrNotJSON},
	{"control character", "\"a\x01\"", jsonstrict.ErrNotJSON},
	{"NUL after value", "{}\x00", jsonstrict.ErrNotJSON},
	{"too deep", strings.Repeat("[", jsonstrict.MaxDepth+1) + strings.Repeat("]", jsonstrict.MaxDepth+1), jsonstrict.ErrNotJSON},
}

func TestCheck(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			err := jsonstrict.Check([]byte(tc.in))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// Without StrictUTF8 the scanner reads strings as encoding/json does, as
// the admission webhook needs; duplicates are refused either way.
func TestScannerLaxUTF8(t *testing.T) {
	for _, in := range []string{"\"caf\xe9\"", `"\ud800"`} {
		var s jsonstrict.Scanner
		s.Reset([]byte(in))
		if !s.Value(s.Skip) || !s.End() || s.Err != nil {
			t.Errorf("%q: syntax %v, err %v", in, s.Syntax, s.Err)
		}
	}
}

// hasDuplicate finds a duplicate member name with encoding/json's token
// reader, an oracle independent of Scanner.
func hasDuplicate(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token of this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// FuzzCheck holds Check to encoding/json: it refuses as not JSON exactly
// what json.Valid refuses; what it accepts is valid UTF-8 without a
// duplicate name; and on valid UTF-8 without \u escapes it refuses a
// duplicate exactly when encoding/json's token reader sees one.
func FuzzCheck(f *testing.F) {
	for _, tc := range checkCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"00"}}],"predicateType":"p","predicate":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := jsonstrict.Check(b)
		if errors.Is(err, jsonstrict.ErrNotJSON) == json.Valid(b) {
			t.Fatalf("Check = %v, json.Valid = %v", err, json.Valid(b))
		}
		if err == nil && (!utf8.Valid(b) || hasDuplicate(b)) {
			t.Fatalf("accepted invalid UTF-8 or a duplicate name")
		}
		if json.Valid(b) && utf8.Valid(b) && !bytes.Contains(b, []byte(`\u`)) {
			if errors.Is(err, jsonstrict.ErrDuplicate) != hasDuplicate(b) || err != nil && !errors.Is(err, jsonstrict.ErrDuplicate) {
				t.Fatalf("Check = %v, duplicate by tokens = %v", err, hasDuplicate(b))
			}
		}
	})
}

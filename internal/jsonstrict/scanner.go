// Package jsonstrict reads JSON (RFC 8259, https://www.rfc-editor.org/rfc/rfc8259)
// from untrusted clients the way encoding/json does, except where two
// readers of the same bytes could disagree: a duplicate member name in any
// object is refused (encoding/json keeps the last, other parsers the
// first: a hidden first "subject"), and, with Scanner.StrictUTF8, so is a
// string that is not valid UTF-8 (encoding/json replaces its bytes with
// U+FFFD, so what is stored is not what was signed), including an escaped
// lone surrogate (RFC 8259 section 8.2, RFC 7493 section 2.1).
//
// Check validates a whole document. Scanner is the reader under it, which
// the admission webhook walks reviews with.
package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit: json.Valid refuses deeper.
const MaxDepth = 10000

// Errors of Check; the wrapping error says where.
var (
	// ErrNotJSON means the input is not one JSON value.
	ErrNotJSON = errors.New("not JSON")
	// ErrDuplicate means an object names a member twice.
	ErrDuplicate = errors.New("duplicate field")
	// ErrInvalidUTF8 means a string is not valid UTF-8 (StrictUTF8).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
)

// Check reports whether b is exactly one JSON value (surrounded by white
// space only) without a duplicate member name in any object and whose
// strings are all valid UTF-8. Its errors wrap ErrNotJSON, ErrDuplicate or
// ErrInvalidUTF8 and are one line.
func Check(b []byte) error {
	s := Scanner{StrictUTF8: true}
	s.Reset(b)
	if !s.Value(s.Skip) || !s.End() {
		return fmt.Errorf("%w: %v", ErrNotJSON, s.Syntax)
	}
	return s.Err
}

// Scanner reads JSON. Its methods return false at a syntax error (Syntax
// says which), after which nothing more is read. Errors of meaning (a
// duplicate name, invalid UTF-8, or the caller's own, such as a field of
// the wrong type) are kept in Err, the first only, and reading goes on, so
// that input that is not JSON is always told apart from JSON that is
// refused.
type Scanner struct {
	// B is the input and I the offset of the next byte to read.
	B []byte
	I int
	// Syntax is the first syntax error; Err the first error of meaning.
	Syntax error
	Err    error
	// NoDup > 0 while skipping a value whose duplicates are not this
	// scanner's to refuse.
	NoDup int
	// StrictUTF8 refuses strings that are not valid UTF-8 (Err wraps
	// ErrInvalidUTF8); without it they read as encoding/json reads them.
	StrictUTF8 bool

	depth int
	// keys holds the names of the members of the objects being read,
	// innermost last, for refusing duplicates.
	keys [][]byte
}

// Reset starts reading b.
func (s *Scanner) Reset(b []byte) {
	s.B, s.I, s.depth, s.Syntax, s.Err = b, 0, 0, nil, nil
	s.keys = s.keys[:0]
}

// Release drops the reference to the input and reports whether the
// scanner's buffers are small enough to keep for reuse.
func (s *Scanner) Release() bool {
	s.B = nil
	if cap(s.keys) > 4096 {
		return false
	}
	clear(s.keys[:cap(s.keys)])
	return true
}

// Fail records an error of meaning: the first one only.
func (s *Scanner) Fail(err error) {
	if s.Err == nil {
		s.Err = err
	}
}

// SynErr records a syntax error at the current offset and returns false.
func (s *Scanner) SynErr(msg string) bool {
	if s.Syntax == nil {
		s.Syntax = fmt.Errorf("%s at offset %d", msg, s.I)
	}
	return false
}

func (s *Scanner) ws() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Peek returns the next byte after white space, 0 at the end (and for a
// NUL byte, which is never valid JSON outside a string either).
func (s *Scanner) Peek() byte {
	s.ws()
	if s.I < len(s.B) {
		return s.B[s.I]
	}
	return 0
}

// Value reads the whole input as one value with fn.
func (s *Scanner) Value(fn func() bool) bool {
	if s.Peek() == 0 {
		return s.SynErr("unexpected end of JSON input")
	}
	return fn()
}

// End says whether only white space is left.
func (s *Scanner) End() bool {
	if s.Syntax != nil {
		return false
	}
	if s.ws(); s.I < len(s.B) { // not Peek: a NUL byte is not the end
		return s.SynErr("invalid character after top-level value")
	}
	return true
}

// Null consumes a null literal if one is next.
func (s *Scanner) Null() bool {
	if s.Peek() == 'n' && bytes.HasPrefix(s.B[s.I:], []byte("null")) {
		s.I += 4
		return true
	}
	return false
}

// RawString reads the string at s.I, returning its bytes between the
// quotes and whether they are their own value (no escapes, valid UTF-8).
func (s *Scanner) RawString() (raw []byte, plain, ok bool) {
	start := s.I + 1
	plain = true
	ascii := true
	high := false // the last escape was a high surrogate (StrictUTF8)
	for i := start; i < len(s.B); i++ {
		c := s.B[i]
		if high && c != '\\' {
			s.invalidUTF8(i, "a lone surrogate escape")
			high = false
		}
		switch {
		case c == '"':
			s.I = i + 1
			raw = s.B[start:i]
			if !ascii && !utf8.Valid(raw) {
				plain = false
				if s.StrictUTF8 {
					s.invalidUTF8(start+invalidAt(raw), "bytes that are not UTF-8")
				}
			}
			return raw, plain, true
		case c == '\\':
			plain = false
			i++
			if i >= len(s.B) {
				s.I = i
				return nil, false, s.SynErr("unexpected end of JSON input")
			}
			switch s.B[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				if high {
					s.invalidUTF8(i, "a lone surrogate escape")
					high = false
				}
			case 'u':
				if i+4 >= len(s.B) {
					s.I = len(s.B)
					return nil, false, s.SynErr("unexpected end of JSON input")
				}
				var r rune
				for _, h := range s.B[i+1 : i+5] {
					d, ok := hexDigit(h)
					if !ok {
						s.I = i
						return nil, false, s.SynErr("invalid character in \\u hexadecimal character escape")
					}
					r = r<<4 | d
				}
				if s.StrictUTF8 {
					switch {
					case 0xD800 <= r && r < 0xDC00:
						if high {
							s.invalidUTF8(i, "a lone surrogate escape")
						}
						high = true
					case 0xDC00 <= r && r < 0xE000:
						if !high {
							s.invalidUTF8(i, "a lone surrogate escape")
						}
						high = false
					default:
						if high {
							s.invalidUTF8(i, "a lone surrogate escape")
						}
						high = false
					}
				}
				i += 4
			default:
				s.I = i
				return nil, false, s.SynErr("invalid character in string escape code")
			}
		case c < 0x20:
			s.I = i
			return nil, false, s.SynErr("invalid character in string literal")
		case c >= 0x80:
			ascii = false
		}
	}
	s.I = len(s.B)
	return nil, false, s.SynErr("unexpected end of JSON input")
}

func (s *Scanner) invalidUTF8(at int, what string) {
	if s.StrictUTF8 {
		s.Fail(fmt.Errorf("%w: a string holds %s at offset %d", ErrInvalidUTF8, what, at))
	}
}

// invalidAt is the offset of the first byte of b that is not UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func hexDigit(h byte) (rune, bool) {
	switch {
	case '0' <= h && h <= '9':
		return rune(h - '0'), true
	case 'a' <= h && h <= 'f':
		return rune(h - 'a' + 10), true
	case 'A' <= h && h <= 'F':
		return rune(h - 'A' + 10), true
	}
	return 0, false
}

// Unquote returns the value of a valid JSON string's contents (as
// RawString returned them) as encoding/json does.
func Unquote(raw []byte, plain bool) string {
	if plain {
		return string(raw)
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var v string
	if err := json.Unmarshal(q, &v); err != nil {
		panic("jsonstrict: unquote of a validated string: " + err.Error())
	}
	return v
}

// Object reads an object, calling member with each member's (unquoted)
// name with s before its value, which member must read. A repeated name
// is an error of meaning wrapping ErrDuplicate (unless s.NoDup).
func (s *Scanner) Object(member func(key []byte) bool) bool {
	if s.Peek() != '{' {
		return s.SynErr("expected an object")
	}
	s.I++
	if s.depth++; s.depth > MaxDepth {
		return s.SynErr("exceeded max depth")
	}
	base := len(s.keys)
	var seen map[string]bool // when the object has many members
	defer func() { s.keys = s.keys[:base] }()
	if s.Peek() == '}' {
		s.I++
		s.depth--
		return true
	}
	for {
		if s.Peek() != '"' {
			return s.SynErr("invalid character looking for beginning of object key string")
		}
		raw, plain, ok := s.RawString()
		if !ok {
			return false
		}
		key := raw
		if !plain {
			key = []byte(Unquote(raw, false))
		}
		if s.NoDup == 0 {
			if n := len(s.keys) - base; n < 16 {
				for _, k := range s.keys[base:] {
					if bytes.Equal(k, key) {
						s.dup(key)
						break
					}
				}
				s.keys = append(s.keys, key)
			} else { // the first 16 names are in s.keys, and all in seen
				if seen == nil {
					seen = make(map[string]bool, 2*n)
					for _, k := range s.keys[base:] {
						seen[string(k)] = true
					}
				}
				if seen[string(key)] {
					s.dup(key)
				}
				seen[string(key)] = true
			}
		}
		if s.Peek() != ':' {
			return s.SynErr("invalid character after object key")
		}
		s.I++
		if s.Peek() == 0 {
			return s.SynErr("unexpected end of JSON input")
		}
		if !member(key) {
			return false
		}
		switch s.Peek() {
		case ',':
			s.I++
		case '}':
			s.I++
			s.depth--
			return true
		default:
			return s.SynErr("invalid character after object key:value pair")
		}
	}
}

func (s *Scanner) dup(key []byte) {
	s.Fail(fmt.Errorf("%w %q", ErrDuplicate, key))
}

// Array reads an array, calling elem with s before each element, which
// elem must read.
func (s *Scanner) Array(elem func() bool) bool {
	if s.Peek() != '[' {
		return s.SynErr("expected an array")
	}
	s.I++
	if s.depth++; s.depth > MaxDepth {
		return s.SynErr("exceeded max depth")
	}
	if s.Peek() == ']' {
		s.I++
		s.depth--
		return true
	}
	for {
		if s.Peek() == 0 {
			return s.SynErr("unexpected end of JSON input")
		}
		if !elem() {
			return false
		}
		switch s.Peek() {
		case ',':
			s.I++
		case ']':
			s.I++
			s.depth--
			return true
		default:
			return s.SynErr("invalid character after array element")
		}
	}
}

// Skip reads any value, refusing duplicate names in its objects.
func (s *Scanner) Skip() bool {
	switch c := s.Peek(); {
	case c == '{':
		return s.Object(func([]byte) bool { return s.Skip() })
	case c == '[':
		return s.Array(s.Skip)
	case c == '"':
		_, _, ok := s.RawString()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 0:
		return s.SynErr("unexpected end of JSON input")
	}
	return s.SynErr("invalid character looking for beginning of value")
}

func (s *Scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.B[s.I:], []byte(lit)) {
		return s.SynErr("invalid character in literal")
	}
	s.I += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *Scanner) number() bool {
	b, i := s.B, s.I
	digits := func() bool {
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		s.I = i
		return s.SynErr("invalid character in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			s.I = i
			return s.SynErr("invalid character after decimal point in numeric literal")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			s.I = i
			return s.SynErr("invalid character in exponent of numeric literal")
		}
	}
	s.I = i
	return true
}

//go:build !custody_norego

package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// regoMaxDepth is the deepest nesting of arrays and objects regoValue
// accepts: encoding/json's own limit, so that regoValue accepts exactly
// the documents json.Valid does and a hostile document cannot exhaust the
// stack.
const regoMaxDepth = 10000

// regoValue converts one JSON document to the ast.Value that
// ast.ValueFromReader gives for it, in a single pass over the bytes instead
// of decoding to interface{} and converting that: numbers are ast.Number of
// their literal text (OPA decodes with UseNumber), strings are decoded as
// encoding/json decodes them (invalid UTF-8 and lone surrogates become
// U+FFFD), and of duplicate object keys the last one wins (as it does in
// the map[string]any OPA decodes to). Unlike ast.ValueFromReader, which
// reads the first value from a stream and ignores what follows, anything
// after the document but whitespace is an error.
func regoValue(b []byte) (ast.Value, error) {
	p := regoParser{s: string(b)}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i < len(p.s) {
		return nil, p.errorf("invalid character %q after top-level value", p.s[p.i])
	}
	return v, nil
}

type regoParser struct {
	s string
	i int
	// vals is a stack of the values of the arrays and objects being built
	// (an object's as key, value, key, value...), shared by all levels.
	vals []ast.Value
}

var errRegoEOF = errors.New("unexpected end of JSON input")

func (p *regoParser) errorf(format string, a ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.i, fmt.Sprintf(format, a...))
}

func (p *regoParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *regoParser) value(depth int) (ast.Value, error) {
	if p.i >= len(p.s) {
		return nil, errRegoEOF
	}
	switch c := p.s[p.i]; c {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.InternedValue(s), nil
	case 't':
		return p.literal("true", ast.InternedValue(true))
	case 'f':
		return p.literal("false", ast.InternedValue(false))
	case 'n':
		return p.literal("null", ast.NullValue)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return nil, p.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (p *regoParser) literal(lit string, v ast.Value) (ast.Value, error) {
	if len(p.s)-p.i < len(lit) || p.s[p.i:p.i+len(lit)] != lit {
		if len(p.s)-p.i < len(lit) && p.s[p.i:] == lit[:len(p.s)-p.i] {
			return nil, errRegoEOF
		}
		return nil, p.errorf("invalid literal, want %s", lit)
	}
	p.i += len(lit)
	return v, nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and converts
// the text as ast.InterfaceToValue converts a json.Number.
func (p *regoParser) number() (ast.Value, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	if p.i >= len(p.s) {
		return nil, errRegoEOF
	}
	switch c := p.s[p.i]; {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return nil, p.errorf("invalid character %q in numeric literal", c)
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if err := p.needDigits(); err != nil {
			return nil, err
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if err := p.needDigits(); err != nil {
			return nil, err
		}
	}
	text := p.s[start:p.i]
	if t := ast.InternedIntNumberTermFromString(text); t != nil {
		return t.Value, nil
	}
	return ast.NumberChecked(text)
}

func (p *regoParser) digits() {
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
}

func (p *regoParser) needDigits() error {
	if p.i >= len(p.s) {
		return errRegoEOF
	}
	if c := p.s[p.i]; c < '0' || c > '9' {
		return p.errorf("invalid character %q in numeric literal", c)
	}
	p.digits()
	return nil
}

// str scans the string at p.i (at its opening quote). A string of
// printable ASCII or valid UTF-8 without escapes is sliced from the input;
// any other goes through encoding/json, which decodes escapes, surrogate
// pairs and invalid UTF-8 exactly as OPA's decoder does.
func (p *regoParser) str() (string, error) {
	start := p.i
	p.i++
	plain, ascii := true, true
	for {
		if p.i >= len(p.s) {
			return "", errRegoEOF
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			body := p.s[start+1 : p.i-1]
			if plain && (ascii || utf8.ValidString(body)) {
				return body, nil
			}
			var out string
			if err := json.Unmarshal([]byte(p.s[start:p.i]), &out); err != nil {
				return "", err
			}
			return out, nil
		case c == '\\':
			plain = false
			p.i++
			if p.i >= len(p.s) {
				return "", errRegoEOF
			}
			switch p.s[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for k := 0; k < 4; k++ {
					if p.i >= len(p.s) {
						return "", errRegoEOF
					}
					if !isHex(p.s[p.i]) {
						return "", p.errorf("invalid character %q in \\u hexadecimal character escape", p.s[p.i])
					}
					p.i++
				}
			default:
				return "", p.errorf("invalid character %q in string escape code", p.s[p.i])
			}
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			p.i++
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (p *regoParser) array(depth int) (ast.Value, error) {
	if depth > regoMaxDepth {
		return nil, p.errorf("exceeded max depth")
	}
	p.i++ // [
	base := len(p.vals)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return ast.NewArray(), nil
	}
	for {
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.vals = append(p.vals, v)
		p.ws()
		if p.i >= len(p.s) {
			return nil, errRegoEOF
		}
		c := p.s[p.i]
		p.i++
		if c == ']' {
			break
		}
		if c != ',' {
			p.i--
			return nil, p.errorf("invalid character %q after array element", c)
		}
	}
	vals := p.vals[base:]
	terms := make([]ast.Term, len(vals))
	ptrs := make([]*ast.Term, len(vals))
	for k, v := range vals {
		terms[k].Value = v
		ptrs[k] = &terms[k]
	}
	clear(vals)
	p.vals = p.vals[:base]
	return ast.NewArray(ptrs...), nil
}

// regoDupScan is the number of keys up to which duplicate keys are found
// by a linear scan rather than a map.
const regoDupScan = 16

func (p *regoParser) object(depth int) (ast.Value, error) {
	if depth > regoMaxDepth {
		return nil, p.errorf("exceeded max depth")
	}
	p.i++ // {
	base := len(p.vals)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return ast.NewObject(), nil
	}
	var seen map[string]int // key -> index in p.vals, past regoDupScan keys
	for {
		p.ws()
		if p.i >= len(p.s) {
			return nil, errRegoEOF
		}
		if p.s[p.i] != '"' {
			return nil, p.errorf("invalid character %q looking for beginning of object key string", p.s[p.i])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.s) {
			return nil, errRegoEOF
		}
		if p.s[p.i] != ':' {
			return nil, p.errorf("invalid character %q after object key", p.s[p.i])
		}
		p.i++
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		// A repeated key replaces the earlier value, as in a Go map.
		dup := -1
		n := (len(p.vals) - base) / 2
		if seen == nil && n < regoDupScan {
			for j := base; j < len(p.vals); j += 2 {
				if string(p.vals[j].(ast.String)) == k {
					dup = j
					break
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]int, 2*n)
				for j := base; j < len(p.vals); j += 2 {
					seen[string(p.vals[j].(ast.String))] = j
				}
			}
			if j, ok := seen[k]; ok {
				dup = j
			} else {
				seen[k] = len(p.vals)
			}
		}
		if dup >= 0 {
			p.vals[dup+1] = v
		} else {
			p.vals = append(p.vals, ast.InternedValue(k), v)
		}
		p.ws()
		if p.i >= len(p.s) {
			return nil, errRegoEOF
		}
		c := p.s[p.i]
		p.i++
		if c == '}' {
			break
		}
		if c != ',' {
			p.i--
			return nil, p.errorf("invalid character %q after object key:value pair", c)
		}
	}
	vals := p.vals[base:]
	terms := make([]ast.Term, len(vals))
	tuples := make([][2]*ast.Term, len(vals)/2)
	for k, v := range vals {
		terms[k].Value = v
		tuples[k/2][k%2] = &terms[k]
	}
	clear(vals)
	p.vals = p.vals[:base]
	return ast.NewObject(tuples...), nil
}

package osv

import (
	"bytes"
	"context"
	"strings"
	"time"
)

// LoadFor is Load restricted to what can affect targets: a file is parsed
// only when one of its "name" or "purl" string values names a target
// package (compared case-insensitively, a superset of what matches). A
// file whose names are written with JSON escapes is always parsed, so the
// shortcut never hides an advisory. Len still counts every entry file
// examined, and LastModified covers them all.
func LoadFor(ctx context.Context, dir string, targets []Target) (*DB, error) {
	want := make(map[string]bool, len(targets))
	for _, t := range targets {
		want[strings.ToLower(t.Name)] = true
	}
	return load(ctx, dir, func(b []byte) (bool, bool, time.Time) { return mayAffect(b, want) })
}

// mayAffect reports whether the raw entry might name a wanted package,
// whether it looks like an entry at all (has an "id" key), and, for an
// entry it drops, the entry's "modified" time when it can read it without
// parsing.
//
// encoding/json matches keys case-insensitively and decodes \u escapes in
// them: keys are compared ASCII case-insensitively (none of "id",
// "modified", "name", "purl" has a non-ASCII case fold), and anything with
// a \u escape is parsed. Only the first "id" and "modified" keys are read;
// every "name" and "purl" string value is compared, lowercased, with want.
// One pass over b, without copying it.
func mayAffect(b []byte, want map[string]bool) (keep, entry bool, mod time.Time) {
	if bytes.Contains(b, []byte(`\u`)) {
		return true, true, mod
	}
	var seenID, seenMod, hit bool
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			break
		}
		i += j
		rest := b[i:]
		if len(rest) < len(`"id"`) {
			break
		}
		switch c := rest[1] | 0x20; { // the first letter of a key, lowercased
		case c != 'i' && c != 'm' && c != 'n' && c != 'p':
		case hasPrefixFold(rest, `"id"`):
			if !seenID {
				seenID = true
				_, entry = stringValue(rest[len(`"id"`):])
				if !entry {
					return false, false, mod
				}
			}
		case hasPrefixFold(rest, `"modified"`):
			if !seenMod {
				seenMod = true
				if v, ok := stringValue(rest[len(`"modified"`):]); ok {
					mod, _ = time.Parse(time.RFC3339Nano, strings.ToUpper(v))
				}
			}
		case !hit && hasPrefixFold(rest, `"name"`):
			hit = namesWanted(rest[len(`"name"`):], false, want)
		case !hit && hasPrefixFold(rest, `"purl"`):
			hit = namesWanted(rest[len(`"purl"`):], true, want)
		}
		if hit && entry {
			return true, true, mod // parsed: its modified time is read then
		}
	}
	if !entry {
		return false, false, mod
	}
	return hit, true, mod
}

// namesWanted reports whether the string value at the start of b (after a
// "name" or "purl" key) may name a wanted package: it does, or it is
// written with an escape.
func namesWanted(b []byte, isPURL bool, want map[string]bool) bool {
	v, ok := stringValue(b)
	if !ok {
		return false // not followed by a plain string: a value, or escaped
	}
	if strings.ContainsRune(v, '\\') {
		return true
	}
	v = strings.ToLower(v)
	if isPURL {
		if _, name, ok := ecosystemFromPURL(v); ok {
			v = strings.ToLower(name)
		}
	}
	return want[v]
}

// hasPrefixFold reports whether b starts with key, a lowercase ASCII
// string, ignoring ASCII case.
func hasPrefixFold(b []byte, key string) bool {
	if len(b) < len(key) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != key[i] {
			return false
		}
	}
	return true
}

// stringValue reads `: "VALUE"` (with optional whitespace) at the start of
// b. A value with a backslash is returned with it, raw, so callers can
// tell it was escaped.
func stringValue(b []byte) (string, bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return "", false
	}
	i++
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '"' {
		return "", false
	}
	i++
	j := i
	for j < len(b) && b[j] != '"' {
		if b[j] == '\\' {
			return `\`, true
		}
		j++
	}
	if j >= len(b) {
		return "", false
	}
	return string(b[i:j]), true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

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
// whether it looks like an entry at all (has an "id" key), and the entry's
// "modified" time when it can read it without parsing.
func mayAffect(b []byte, want map[string]bool) (keep, entry bool, mod time.Time) {
	// encoding/json matches keys case-insensitively and decodes \u
	// escapes in them: search lowercased bytes, and parse anything with a
	// \u escape.
	if bytes.Contains(b, []byte(`\u`)) {
		return true, true, mod
	}
	b = bytes.ToLower(b)
	if _, ok := stringAfterKey(b, `"id"`); !ok {
		return false, false, mod
	}
	if v, ok := stringAfterKey(b, `"modified"`); ok {
		mod, _ = time.Parse(time.RFC3339Nano, strings.ToUpper(v))
	}
	for _, key := range []string{`"name"`, `"purl"`} {
		rest := b
		for {
			i := bytes.Index(rest, []byte(key))
			if i < 0 {
				break
			}
			rest = rest[i+len(key):]
			v, ok := stringValue(rest)
			if !ok {
				continue // "name" not followed by a plain string: a value, or escaped
			}
			if strings.ContainsRune(v, '\\') {
				return true, true, mod
			}
			if key == `"purl"` {
				if _, name, ok := ecosystemFromPURL(v); ok {
					v = name
				}
			}
			if want[strings.ToLower(v)] {
				return true, true, mod
			}
		}
	}
	return false, true, mod
}

func stringAfterKey(b []byte, key string) (string, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return "", false
	}
	return stringValue(b[i+len(key):])
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

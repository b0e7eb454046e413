package sbom

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// PURL is the part of a package URL custody uses.
type PURL struct {
	Type    string // "golang", "npm", …
	Name    string // namespace and name joined by "/", unescaped
	Version string // unescaped; "" when absent
}

// ParsePURL parses pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH;
// qualifiers and subpath are dropped.
func ParsePURL(s string) (PURL, error) {
	rest, ok := strings.CutPrefix(s, "pkg:")
	if !ok {
		return PURL{}, errors.New("purl does not start with pkg:")
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, _, _ = strings.Cut(rest, "?")
	typ, path, ok := strings.Cut(strings.TrimLeft(rest, "/"), "/")
	if !ok || typ == "" || path == "" {
		return PURL{}, errors.New("purl has no type or name")
	}
	var p PURL
	p.Type = strings.ToLower(typ)
	if i := strings.LastIndexByte(path, '@'); i >= 0 && i > strings.LastIndexByte(path, '/') {
		v, err := url.PathUnescape(path[i+1:])
		if err != nil {
			return PURL{}, fmt.Errorf("purl version: %w", err)
		}
		p.Version = v
		path = path[:i]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return PURL{}, fmt.Errorf("purl name: %w", err)
		}
		if u == "" {
			return PURL{}, errors.New("purl has an empty name segment")
		}
		segs[i] = u
	}
	p.Name = strings.Join(segs, "/")
	return p, nil
}

// String formats p, percent-encoding each name segment and the version as
// custody's build records do.
func (p PURL) String() string {
	segs := strings.Split(p.Name, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	u := "pkg:" + p.Type + "/" + strings.Join(segs, "/")
	if p.Version != "" {
		u += "@" + escape(p.Version)
	}
	return u
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

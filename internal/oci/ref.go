// Package oci reads and writes Sigstore evidence beside container images in
// OCI registries: bundles attached as OCI 1.1 referrers
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers)
// in the layout cosign's new bundle format uses
// (https://github.com/sigstore/cosign/blob/main/specs/BUNDLE_SPEC.md), with
// the referrers tag-schema fallback for registries without the API, and
// cosign's older `sha256-HEX.att` / `.sig` tags, read only.
//
// Everything a registry sends is untrusted: manifests and blobs are read up
// to fixed sizes and checked against the digest they were asked for, a
// referrer must name the image it is listed for, and plain HTTP is used only
// for hosts the caller names as insecure. A registry can withhold evidence or
// offer more of it; it cannot forge any, because every bundle is verified by
// the caller (package verify) exactly as a bundle read from a file.
package oci

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Scheme is the prefix that makes an argument an image reference. Without it
// an argument is a file path, so a mistyped path never becomes a network call.
const Scheme = "oci://"

// Ref names an image: oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX].
type Ref struct {
	Registry   string // host[:port], as written
	Repository string // path inside the registry, e.g. "team/app"
	Tag        string // may be empty
	Digest     string // "sha256:HEX", empty until resolved
}

// ErrRef is wrapped by every error ParseRef returns.
var ErrRef = errors.New("invalid image reference")

// IsRef reports whether s is meant as an image reference (has the oci://
// prefix); ParseRef tells whether it is a valid one.
func IsRef(s string) bool { return strings.HasPrefix(s, Scheme) }

// String writes r back in the form ParseRef reads.
func (r Ref) String() string {
	s := Scheme + r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Pinned reports whether r names a digest (needs no tag resolution).
func (r Ref) Pinned() bool { return r.Digest != "" }

// Hex is the hex part of r's digest.
func (r Ref) Hex() string { return strings.TrimPrefix(r.Digest, "sha256:") }

// WithDigest returns r pinned to digest d ("sha256:HEX").
func (r Ref) WithDigest(d string) Ref { r.Digest = d; return r }

// maxRefLen bounds a whole reference; distribution caps names at 255.
const maxRefLen = 1024

// ParseRef parses oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]. The host is
// always explicit (no docker.io default), the repository follows the OCI
// distribution grammar, and the digest must be sha256 in lower-case hex.
// Errors wrap ErrRef and say which part is wrong.
func ParseRef(s string) (Ref, error) {
	var r Ref
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return r, fmt.Errorf("%w %q: must start with %s", ErrRef, s, Scheme)
	}
	if len(s) > maxRefLen {
		return r, fmt.Errorf("%w: longer than %d bytes", ErrRef, maxRefLen)
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || path == "" {
		return r, fmt.Errorf("%w %q: want %sHOST/REPO[:TAG][@sha256:HEX]", ErrRef, s, Scheme)
	}
	if strings.Contains(host, "@") {
		// Not echoed: it may hold a password.
		return r, fmt.Errorf("%w: credentials do not belong in an image reference (put them in the Docker config)", ErrRef)
	}
	if err := checkHost(host); err != nil {
		return r, fmt.Errorf("%w %q: registry %w", ErrRef, s, err)
	}
	r.Registry = host
	if name, dg, ok := strings.Cut(path, "@"); ok {
		if !validDigest(dg) {
			return r, fmt.Errorf("%w %q: digest must be sha256:<64 lower-case hex digits>", ErrRef, s)
		}
		r.Digest, path = dg, name
	}
	if i := strings.LastIndexByte(path, ':'); i >= 0 && !strings.Contains(path[i:], "/") {
		r.Tag, path = path[i+1:], path[:i]
		if !validTag(r.Tag) {
			return r, fmt.Errorf("%w %q: tag %q: want letters, digits, '_', '.', '-' (at most 128)", ErrRef, s, r.Tag)
		}
	}
	if !validRepo(path) {
		return r, fmt.Errorf("%w %q: repository %q: want lower-case components separated by '/'", ErrRef, s, path)
	}
	r.Repository = path
	return r, nil
}

// checkHost accepts a DNS name, an IPv4 address or a bracketed IPv6
// address (no zone), with an optional port.
func checkHost(h string) error {
	if h == "" {
		return errors.New("is empty")
	}
	var port string
	var hasPort bool
	if ip, ok := strings.CutPrefix(h, "["); ok {
		ip, after, ok := strings.Cut(ip, "]")
		if !ok || net.ParseIP(ip) == nil || !strings.Contains(ip, ":") {
			return fmt.Errorf("%q: not a bracketed IPv6 address", h)
		}
		if after != "" {
			if port, hasPort = strings.CutPrefix(after, ":"); !hasPort {
				return fmt.Errorf("%q: junk after ']'", h)
			}
		}
	} else {
		var name string
		name, port, hasPort = strings.Cut(h, ":")
		if !validHostname(name) {
			return fmt.Errorf("%q: not a host name", h)
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port != strconv.Itoa(n) {
			return fmt.Errorf("%q: port must be 1-65535", h)
		}
	}
	return nil
}

func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlnum(c) && c != '-' && !(c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validRepo: path-component ("/" path-component)*, each
// [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*, at most 255 bytes in all.
func validRepo(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range strings.Split(s, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

func validComponent(c string) bool {
	if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); i++ {
		if isAlnum(c[i]) {
			continue
		}
		// A separator run: ".", "_", "__" or "-"+; then an alnum follows.
		j := i
		for j < len(c) && !isAlnum(c[j]) {
			j++
		}
		sep := c[i:j]
		if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return false
		}
		i = j - 1
	}
	return true
}

// validTag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !isAlnum(c) && !(c >= 'A' && c <= 'Z') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validDigest: sha256: and 64 lower-case hex digits.
func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !(h[i] >= '0' && h[i] <= '9' || h[i] >= 'a' && h[i] <= 'f') {
			return false
		}
	}
	return true
}

package build

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/digest"
)

// maxSubjectName bounds a subject name from untrusted input.
const maxSubjectName = 4096

// ParseSubject parses a non-file subject written "NAME@sha256:HEX". The name
// may itself contain "@" (the digest follows the last one); it must be
// valid UTF-8 without control characters. ParseSubject is safe on untrusted
// input.
func ParseSubject(s string) (attest.Subject, error) {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return attest.Subject{}, fmt.Errorf("malformed subject %q: want NAME@sha256:HEX", short(s))
	}
	name, dg := s[:at], s[at+1:]
	return newSubject(name, dg)
}

func newSubject(name, dg string) (attest.Subject, error) {
	if err := checkName(name); err != nil {
		return attest.Subject{}, err
	}
	d, err := digest.Parse(dg)
	if err != nil {
		return attest.Subject{}, fmt.Errorf("subject %q: %w", short(name), err)
	}
	if d.Alg != digest.SHA256 {
		return attest.Subject{}, fmt.Errorf("subject %q: digest must be sha256, got %s", short(name), d.Alg)
	}
	return attest.Subject{Name: name, Digest: map[string]string{digest.SHA256: d.Hex}}, nil
}

// checkSubject validates an explicit subject given in Options.
func checkSubject(s attest.Subject) error {
	if err := checkName(s.Name); err != nil {
		return err
	}
	hx, ok := s.Digest[digest.SHA256]
	if !ok {
		return fmt.Errorf("subject %q has no sha256 digest", short(s.Name))
	}
	if err := digest.CheckHex(digest.SHA256, hx); err != nil {
		return fmt.Errorf("subject %q: %w", short(s.Name), err)
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("subject name is empty")
	case len(name) > maxSubjectName:
		return fmt.Errorf("subject name is longer than %d bytes", maxSubjectName)
	case !utf8.ValidString(name):
		return fmt.Errorf("subject name %q is not valid UTF-8", short(name))
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("subject name %q contains a control character", short(name))
	}
	return nil
}

// ParseSubjectsFile parses a list of subjects, one a line, each either
// "NAME@sha256:HEX" or a line of sha256sum output ("HEX  NAME", or
// "HEX *NAME" in binary mode, with sha256sum's backslash escaping). Blank
// lines and lines starting with '#' are ignored. A name given twice with
// the same digest is kept once; with different digests it is an error.
// ParseSubjectsFile is safe on untrusted input.
func ParseSubjectsFile(b []byte) ([]attest.Subject, error) {
	var subs []attest.Subject
	index := make(map[string]int)
	for i, line := range bytes.Split(b, []byte("\n")) {
		n := i + 1
		l := strings.TrimSuffix(string(line), "\r")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		var s attest.Subject
		var err error
		if isChecksumLine(l) {
			s, err = parseChecksumLine(l)
		} else {
			s, err = ParseSubject(strings.TrimSpace(l))
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if j, ok := index[s.Name]; ok {
			if subs[j].Digest[digest.SHA256] != s.Digest[digest.SHA256] {
				return nil, fmt.Errorf("line %d: subject %q listed twice with different digests", n, short(s.Name))
			}
			continue
		}
		index[s.Name] = len(subs)
		subs = append(subs, s)
	}
	return subs, nil
}

// isChecksumLine reports whether l looks like sha256sum output.
func isChecksumLine(l string) bool {
	l = strings.TrimPrefix(l, `\`)
	return len(l) > 66 && isHex(l[:64]) && l[64] == ' ' && (l[65] == ' ' || l[65] == '*')
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

func parseChecksumLine(l string) (attest.Subject, error) {
	escaped := strings.HasPrefix(l, `\`)
	l = strings.TrimPrefix(l, `\`)
	hx, name := strings.ToLower(l[:64]), l[66:]
	if escaped {
		var err error
		if name, err = unescapeChecksumName(name); err != nil {
			return attest.Subject{}, err
		}
	}
	return newSubject(name, digest.SHA256+":"+hx)
}

// unescapeChecksumName undoes sha256sum's escaping of "\\", "\n" and "\r".
func unescapeChecksumName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("name ends in a lone backslash")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("unknown escape \\%c in name", s[i])
		}
	}
	return b.String(), nil
}

// short keeps untrusted input in error messages short.
func short(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

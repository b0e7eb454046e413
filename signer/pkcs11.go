package signer

// PKCS#11 key references: RFC 7512 "pkcs11:" URIs
// (https://www.rfc-editor.org/rfc/rfc7512). This file is pure Go (the URI,
// PIN lookup and the public types); pkcs11_cgo.go talks to the token
// through github.com/ThalesGroup/crypto11, and pkcs11_nocgo.go refuses
// PKCS#11 keys in builds without cgo.

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// PKCS11PINEnv is the environment variable custody reads a token's user PIN
// from when the URI has neither pin-value nor pin-source.
const PKCS11PINEnv = "CUSTODY_PKCS11_PIN"

// DefaultPKCS11Module is the PKCS#11 module used when a URI has no
// module-path: Debian's SoftHSM2. If it is not installed, such a URI is an
// error.
const DefaultPKCS11Module = "/usr/lib/softhsm/libsofthsm2.so"

// Errors of PKCS#11 keys, returned wrapped; check with errors.Is.
var (
	// ErrWrongPIN means the token refused the user PIN (or the PIN
	// differs from the one this process already logged in with).
	ErrWrongPIN = errors.New("wrong PIN for token")
	// ErrKeyNotFound means the token holds no key pair matching the URI.
	ErrKeyNotFound = errors.New("no such key in token")
)

// maxPINBytes bounds a PIN read from a pin-source file.
const maxPINBytes = 1 << 10

// PKCS11URI is a parsed RFC 7512 PKCS#11 URI. Text attributes are percent-
// decoded; an empty field means the URI does not constrain it.
//
// Parsing is strict: an attribute custody does not know is refused in the
// path (a path attribute narrows which object matches, so ignoring one could
// select a different key) and in the query, except vendor query attributes
// ("x-…"), which RFC 7512 lets a consumer ignore and custody does. A
// repeated attribute, a character the RFC's grammar does not allow
// unencoded, a malformed percent-encoding, text that is not UTF-8, both
// pin-value and pin-source, and module-name (custody needs module-path)
// are refused too.
type PKCS11URI struct {
	// Token attributes (CK_TOKEN_INFO).
	Token, Manufacturer, Model, Serial string
	// Slot attributes (CK_SLOT_INFO); HasSlotID says whether SlotID is set.
	SlotID                            uint64
	HasSlotID                         bool
	SlotDescription, SlotManufacturer string
	// Library attributes (CK_INFO). LibraryVersion is "M" or "M.N".
	LibraryManufacturer, LibraryDescription, LibraryVersion string
	// Object attributes: CKA_LABEL, CKA_ID and the object class ("private"
	// or "public"; custody signs with the private key of the pair either
	// names).
	Object string
	ID     []byte
	Type   string
	// Query attributes. PINValue is a secret: String never shows it.
	ModulePath string
	PINValue   string
	PINSource  string
}

// pathAttrs and queryAttrs are the attributes of RFC 7512 custody knows.
var (
	pathAttrs = map[string]bool{"token": true, "manufacturer": true, "model": true, "serial": true,
		"slot-id": true, "slot-description": true, "slot-manufacturer": true,
		"library-manufacturer": true, "library-description": true, "library-version": true,
		"object": true, "id": true, "type": true}
	queryAttrs = map[string]bool{"module-path": true, "module-name": true, "pin-value": true, "pin-source": true}
)

// IsPKCS11URI reports whether ref is a PKCS#11 URI (scheme "pkcs11:", in
// any case) rather than a file path or another kind of key reference.
func IsPKCS11URI(ref string) bool {
	return len(ref) >= 7 && strings.EqualFold(ref[:7], "pkcs11:")
}

// ParsePKCS11URI parses an RFC 7512 URI such as
// "pkcs11:token=custody;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234".
// See PKCS11URI for what is refused. Errors never contain the PIN.
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	if !IsPKCS11URI(s) {
		return nil, errors.New("pkcs11: URI does not start with \"pkcs11:\"")
	}
	rest := s[len("pkcs11:"):]
	path, query, hasQuery := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	if path != "" {
		for _, a := range strings.Split(path, ";") {
			name, raw, err := splitAttr(a, "path")
			if err != nil {
				return nil, err
			}
			if !pathAttrs[name] {
				return nil, fmt.Errorf("pkcs11: unknown path attribute %q (custody refuses what it cannot match on)", name)
			}
			if seen[name] {
				return nil, fmt.Errorf("pkcs11: attribute %q appears twice", name)
			}
			seen[name] = true
			v, err := pctDecode(raw, isPathChar)
			if err != nil {
				return nil, fmt.Errorf("pkcs11: attribute %q: %w", name, err)
			}
			if err := u.setPath(name, v); err != nil {
				return nil, err
			}
		}
	}
	if hasQuery && query != "" {
		for _, a := range strings.Split(query, "&") {
			name, raw, err := splitAttr(a, "query")
			if err != nil {
				return nil, err
			}
			if !queryAttrs[name] {
				if strings.HasPrefix(name, "x-") && validVendorName(name) {
					continue // vendor query attributes may be ignored (RFC 7512, 2.3)
				}
				return nil, fmt.Errorf("pkcs11: unknown query attribute %q", name)
			}
			if seen[name] {
				return nil, fmt.Errorf("pkcs11: attribute %q appears twice", name)
			}
			seen[name] = true
			v, err := pctDecode(raw, isQueryChar)
			if err != nil {
				if name == "pin-value" {
					return nil, errors.New("pkcs11: attribute \"pin-value\" is malformed (not shown)")
				}
				return nil, fmt.Errorf("pkcs11: attribute %q: %w", name, err)
			}
			switch name {
			case "module-name":
				return nil, errors.New("pkcs11: module-name is not supported; give the module's full path in module-path")
			case "module-path":
				if !utf8.ValidString(v) || !filepath.IsAbs(v) {
					return nil, fmt.Errorf("pkcs11: module-path %q is not an absolute path", v)
				}
				u.ModulePath = v
			case "pin-value":
				u.PINValue = v
			case "pin-source":
				if !utf8.ValidString(v) {
					return nil, errors.New("pkcs11: pin-source is not UTF-8")
				}
				u.PINSource = v
			}
		}
	}
	if seen["pin-value"] && seen["pin-source"] {
		return nil, errors.New("pkcs11: pin-value and pin-source must not both be given")
	}
	return u, nil
}

// splitAttr splits "name=value" and checks the name's syntax.
func splitAttr(a, where string) (name, value string, err error) {
	if a == "" {
		return "", "", fmt.Errorf("pkcs11: empty attribute in %s", where)
	}
	name, value, ok := strings.Cut(a, "=")
	if !ok {
		return "", "", fmt.Errorf("pkcs11: %s attribute %q has no \"=\"", where, truncate(name))
	}
	if name == "" {
		return "", "", fmt.Errorf("pkcs11: %s attribute with no name", where)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", "", fmt.Errorf("pkcs11: malformed %s attribute name %q", where, truncate(name))
		}
	}
	if value == "" {
		return "", "", fmt.Errorf("pkcs11: attribute %q has an empty value", name)
	}
	return name, value, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func validVendorName(name string) bool { return len(name) > len("x-") }

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPathChar: pk11-pchar minus the percent sign (RFC 7512, 2.3).
func isPathChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte(":[]@!$'()*+,=&", c) >= 0
}

// isQueryChar: pk11-qchar minus the percent sign (RFC 7512, 2.3).
func isQueryChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte(":[]@!$'()*+,=/?|", c) >= 0
}

// pctDecode decodes s, refusing characters allowed() rejects and malformed
// percent-encodings.
func pctDecode(s string, allowed func(byte) bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", errors.New("malformed percent-encoding")
			}
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
		case allowed(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q must be percent-encoded", c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func (u *PKCS11URI) setPath(name, v string) error {
	if name != "id" && !utf8.ValidString(v) {
		return fmt.Errorf("pkcs11: attribute %q is not UTF-8", name)
	}
	switch name {
	case "token":
		u.Token = v
	case "manufacturer":
		u.Manufacturer = v
	case "model":
		u.Model = v
	case "serial":
		u.Serial = v
	case "slot-id":
		if strings.TrimLeft(v, "0123456789") != "" {
			return fmt.Errorf("pkcs11: slot-id %q is not a decimal number", v)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("pkcs11: slot-id %q is out of range", v)
		}
		u.SlotID, u.HasSlotID = n, true
	case "slot-description":
		u.SlotDescription = v
	case "slot-manufacturer":
		u.SlotManufacturer = v
	case "library-manufacturer":
		u.LibraryManufacturer = v
	case "library-description":
		u.LibraryDescription = v
	case "library-version":
		major, minor, hasMinor := strings.Cut(v, ".")
		if major == "" || strings.TrimLeft(major, "0123456789") != "" ||
			hasMinor && (minor == "" || strings.TrimLeft(minor, "0123456789") != "") ||
			len(major) > 3 || len(minor) > 3 {
			return fmt.Errorf("pkcs11: library-version %q is not M or M.N", v)
		}
		u.LibraryVersion = v
	case "object":
		u.Object = v
	case "id":
		u.ID = []byte(v)
	case "type":
		switch v {
		case "private", "public":
		case "cert", "secret-key", "data":
			return fmt.Errorf("pkcs11: type=%s names no key pair; custody signs with private keys (use type=private or leave type out)", v)
		default:
			return fmt.Errorf("pkcs11: type %q is not one of public, private, cert, secret-key, data", v)
		}
		u.Type = v
	}
	return nil
}

// String returns the URI in a canonical form, with a pin-value replaced by
// "REDACTED": it is safe to print and log, but not to open the key with
// when the PIN came from the URI.
func (u *PKCS11URI) String() string {
	var path []string
	add := func(name, v string) {
		if v != "" {
			path = append(path, name+"="+pctEncode(v, false))
		}
	}
	add("token", u.Token)
	add("manufacturer", u.Manufacturer)
	add("model", u.Model)
	add("serial", u.Serial)
	if u.HasSlotID {
		path = append(path, "slot-id="+strconv.FormatUint(u.SlotID, 10))
	}
	add("slot-description", u.SlotDescription)
	add("slot-manufacturer", u.SlotManufacturer)
	add("library-manufacturer", u.LibraryManufacturer)
	add("library-description", u.LibraryDescription)
	add("library-version", u.LibraryVersion)
	add("object", u.Object)
	if len(u.ID) > 0 {
		path = append(path, "id="+pctEncode(string(u.ID), true))
	}
	add("type", u.Type)
	var query []string
	if u.ModulePath != "" {
		query = append(query, "module-path="+pctEncodeKeep(u.ModulePath, false, true))
	}
	if u.PINSource != "" {
		query = append(query, "pin-source="+pctEncodeKeep(u.PINSource, false, true))
	}
	if u.PINValue != "" {
		query = append(query, "pin-value=REDACTED")
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// pctEncode percent-encodes every byte that is not unreserved or ":"
// (every byte when all is set, as for id); in the query ("/" allowed) it
// keeps "/" too.
func pctEncode(s string, all bool) string { return pctEncodeKeep(s, all, false) }

func pctEncodeKeep(s string, all, slash bool) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !all && (isUnreserved(c) || c == ':' || slash && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String()
}

// RedactKeyRef returns ref in a form safe to print: a PKCS#11 URI with its
// pin-value hidden (and, if it does not parse, without its query at all);
// any other reference unchanged.
func RedactKeyRef(ref string) string {
	if !IsPKCS11URI(ref) {
		return ref
	}
	if u, err := ParsePKCS11URI(ref); err == nil {
		return u.String()
	}
	if path, _, ok := strings.Cut(ref, "?"); ok {
		return path + "?…"
	}
	return ref
}

// pin returns the user PIN: the URI's pin-value, else the contents of its
// pin-source (a "file:" URI or an absolute path; one trailing newline is
// dropped), else $CUSTODY_PKCS11_PIN.
func (u *PKCS11URI) pin() (string, error) {
	if u.PINValue != "" {
		return u.PINValue, nil
	}
	if u.PINSource != "" {
		p := u.PINSource
		if rest, ok := strings.CutPrefix(p, "file:"); ok {
			p = rest
			if strings.HasPrefix(p, "//") {
				// file:///abs/path (empty authority) or file://localhost/abs/path.
				host, path, _ := strings.Cut(p[2:], "/")
				if host != "" && host != "localhost" {
					return "", fmt.Errorf("pkcs11: pin-source %q names another host", u.PINSource)
				}
				p = "/" + path
			}
		} else if i := strings.Index(p, ":"); i > 0 && !strings.ContainsAny(p[:i], "/") {
			return "", fmt.Errorf("pkcs11: pin-source %q: only file: sources are supported", u.PINSource)
		}
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("pkcs11: pin-source %q is not an absolute path", u.PINSource)
		}
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("pkcs11: couldn't read PIN: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPINBytes+1))
		if err != nil {
			return "", fmt.Errorf("pkcs11: couldn't read PIN from %s: %w", p, err)
		}
		if len(b) > maxPINBytes {
			return "", fmt.Errorf("pkcs11: PIN file %s is larger than %d bytes", p, maxPINBytes)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("pkcs11: PIN file %s is empty", p)
		}
		return s, nil
	}
	if v := os.Getenv(PKCS11PINEnv); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("pkcs11: no PIN (set %s, or add pin-source or pin-value to the URI)", PKCS11PINEnv)
}

// module returns the module path to load.
func (u *PKCS11URI) module() (string, error) {
	if u.ModulePath != "" {
		return u.ModulePath, nil
	}
	if _, err := os.Stat(DefaultPKCS11Module); err != nil {
		return "", fmt.Errorf("pkcs11: the URI has no module-path and SoftHSM2 is not at %s (add ?module-path=/path/to/module.so)", DefaultPKCS11Module)
	}
	return DefaultPKCS11Module, nil
}

// describe names the key a URI selects, for messages.
func (u *PKCS11URI) describe() string {
	var parts []string
	if u.Token != "" {
		parts = append(parts, "token="+pctEncode(u.Token, false))
	}
	if u.Object != "" {
		parts = append(parts, "object="+pctEncode(u.Object, false))
	}
	if len(u.ID) > 0 {
		parts = append(parts, "id="+pctEncode(string(u.ID), true))
	}
	return strings.Join(parts, ";")
}

// PKCS11Signer is a key pair in a PKCS#11 token. It implements
// crypto.Signer; the private key never leaves the token (keys custody
// generates are CKA_SENSITIVE and not CKA_EXTRACTABLE). It is safe for
// concurrent use: signers of the same token share one logged-in
// crypto11 context, whose pool hands each Sign its own session. Call Close
// when done, and not while a Sign is running; the token's context is closed
// when its last signer is.
type PKCS11Signer struct {
	key       crypto.Signer
	uri       string // redacted
	release   func() error
	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

var _ crypto.Signer = (*PKCS11Signer)(nil)

// Public returns the key's public half.
func (s *PKCS11Signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign signs digest inside the token. ECDSA signatures are ASN.1 DER, as
// crypto/ecdsa writes them.
func (s *PKCS11Signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	select {
	case <-s.closed:
		return nil, fmt.Errorf("pkcs11: signer for %s is closed", s.uri)
	default:
	}
	sig, err := s.key.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: token couldn't sign with %s: %w", s.uri, err)
	}
	return sig, nil
}

// URI returns the key's URI as String shows it (no PIN).
func (s *PKCS11Signer) URI() string { return s.uri }

// Close releases the signer's hold on the token. It is idempotent.
func (s *PKCS11Signer) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.release != nil {
			s.closeErr = s.release()
		}
	})
	return s.closeErr
}

// Close releases what s holds: a signer that is an io.Closer (a
// *PKCS11Signer, which holds a logged-in session on its token) is closed;
// any other signer holds nothing and Close returns nil. Call it once done
// signing with a signer from Load, whatever its kind.
func Close(s crypto.Signer) error {
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// LoadPKCS11 opens the key pair uri names (see ParsePKCS11URI). The token
// is found by every token, slot and library attribute the URI gives; exactly
// one must match. The key is found by object (CKA_LABEL) and/or id (CKA_ID);
// at least one is required and exactly one key pair must match. The PIN is
// the URI's pin-value or pin-source, else $CUSTODY_PKCS11_PIN.
//
// Errors wrap ErrWrongPIN when the token refuses the PIN, ErrKeyNotFound
// when no key matches, and ErrUnsupportedKey for key types custody cannot
// sign with through PKCS#11 (only ECDSA P-256, P-384 and P-521, and RSA,
// are; crypto11 has no EdDSA). Errors never contain the PIN.
func LoadPKCS11(uri string) (*PKCS11Signer, error) {
	u, err := ParsePKCS11URI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("pkcs11: %s names no key (add object=LABEL or id=%%HEX)", u)
	}
	return openPKCS11(u)
}

// GeneratePKCS11 creates a key pair of algorithm alg inside the token uri
// names, with the URI's object as CKA_LABEL and its id as CKA_ID (a random
// 16-byte id when the URI has none), and returns a signer for it. The URI
// must give object or id. It refuses, with an error wrapping fs.ErrExist,
// when the token already holds a key with that label or that id: custody
// never replaces or deletes a key in a token. Only ECDSA P-256 can be
// generated; Ed25519 gives an error wrapping ErrUnsupportedKey (crypto11,
// custody's PKCS#11 layer, has no EdDSA).
func GeneratePKCS11(uri string, alg Algorithm) (*PKCS11Signer, error) {
	u, err := ParsePKCS11URI(uri)
	if err != nil {
		return nil, err
	}
	switch alg {
	case ECDSAP256:
	case Ed25519:
		return nil, fmt.Errorf("%w: Ed25519 keys in a PKCS#11 token (crypto11 has no EdDSA); use ecdsa-p256", ErrUnsupportedKey)
	default:
		return nil, fmt.Errorf("unknown key algorithm %q", alg)
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("pkcs11: %s names no key to create (add object=LABEL)", u)
	}
	if u.Type == "public" {
		return nil, errors.New("pkcs11: type=public: custody generates key pairs (use type=private or leave type out)")
	}
	return generatePKCS11(u)
}

// WritePKCS11KeyPair generates a key in the token as GeneratePKCS11 does and
// writes its public key to prefix+".pub" (mode 0644). It returns that path
// and the new key's URI (with its label and id; no PIN). It never
// overwrites the file: if it exists, it returns an error wrapping
// fs.ErrExist before touching the token.
func WritePKCS11KeyPair(uri, prefix string, alg Algorithm) (pubPath, keyURI string, err error) {
	if prefix == "" {
		return "", "", errors.New("empty key file prefix")
	}
	pubPath = prefix + ".pub"
	if _, err := os.Lstat(pubPath); err == nil {
		return "", "", fmt.Errorf("won't overwrite %s: %w", pubPath, os.ErrExist)
	}
	s, err := GeneratePKCS11(uri, alg)
	if err != nil {
		return "", "", err
	}
	defer s.Close()
	pubPEM, err := MarshalPublicKey(s.Public())
	if err != nil {
		return "", "", err
	}
	if err := createFile(pubPath, pubPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("key created in the token as %s, but: %w", s.URI(), err)
	}
	return pubPath, s.URI(), nil
}

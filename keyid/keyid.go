// Package keyid is the one key ID custody names a public key by: the
// SHA-256 digest of the key's PKIX DER encoding.
//
// # Forms
//
// The same digest has two spellings. custody prints the lowercase hex form
// (String) everywhere a user reads a key ID: policies, search, audit,
// verify, inspect and trust show. Sigstore bundles' key hint, the trust
// root document's key IDs and the keyid fields of its DSSE signatures store
// the standard base64 form (Base64); those signed and stored formats keep
// it, so their meaning never changes. Wherever a user types a key ID
// (policy keyIds, --key-id flags, search filters, trust commands) Parse
// accepts either form.
package keyid

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// ID is a key ID: the SHA-256 of a public key's PKIX DER encoding.
type ID [sha256.Size]byte

// Of returns the ID of pub.
func Of(pub crypto.PublicKey) (ID, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ID{}, fmt.Errorf("couldn't encode public key: %w", err)
	}
	return sha256.Sum256(der), nil
}

// Parse reads a key ID in either form: 64 hex digits (any case) or the
// 44-character standard base64. Anything else is refused with a one-line
// error.
func Parse(s string) (ID, error) {
	var id ID
	t := strings.TrimSpace(s)
	switch {
	case len(t) == 2*sha256.Size:
		raw, err := hex.DecodeString(t)
		if err == nil {
			copy(id[:], raw)
			return id, nil
		}
	case len(t) == base64.StdEncoding.EncodedLen(sha256.Size):
		raw, err := base64.StdEncoding.Strict().DecodeString(t)
		if err == nil && len(raw) == sha256.Size {
			copy(id[:], raw)
			return id, nil
		}
	}
	return ID{}, fmt.Errorf("key ID %q is neither 64 hex digits nor the base64 of a SHA-256 digest", clip(s))
}

// String returns the printed form: lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Base64 returns the stored form of Sigstore key hints and trust root
// documents: standard base64.
func (id ID) Base64() string { return base64.StdEncoding.EncodeToString(id[:]) }

// Display returns s in the printed form if it is a key ID in either form,
// and s unchanged otherwise (a trust root may name a key by any ID).
func Display(s string) string {
	if id, err := Parse(s); err == nil {
		return id.String()
	}
	return s
}

// Normalize returns s in the printed form, or Parse's error.
func Normalize(s string) (string, error) {
	id, err := Parse(s)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// clip keeps an error about hostile input to one short line.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Package trust manages custody's trust root and exports it as a Sigstore
// trusted_root.json (https://github.com/sigstore/protobuf-specs, message
// dev.sigstore.trustedroot.v0.1.TrustedRoot, media type
// application/vnd.dev.sigstore.trustedroot+json;version=0.1).
//
// A Root lists what custody trusts and when: transparency logs, certificate
// transparency logs, certificate authorities, timestamp authorities and
// signing keys, each with a validity Window, a Role, an identity and a
// compromise time. Rotation closes one window and opens another; revocation
// ends the window at the compromise time.
//
// A Document is a Root signed by k-of-n admins and versioned, custody's own
// format (a DSSE envelope, see ROOT.md); Update accepts a new version only if
// it chains from the trusted one as a TUF root does
// (https://theupdateframework.github.io/specification/latest/#update-root).
//
// # Where signing keys go
//
// trusted_root.json has no place for plain signing keys: its only public keys
// are those of transparency and CT logs, and a key listed there is trusted to
// sign log entries, which a builder's key must never be. sigstore-go likewise
// never reads keys for key-signed bundles from a trusted root; it asks the
// verifier's TrustedMaterial for a PublicKeyVerifier by the bundle's key hint
// and checks the signature time (from a signed timestamp or a log
// integration time) against that verifier's validity window. The Sigstore
// test data public-key-validity.sigstore.json / public-key-validity-root.json
// work exactly so: the root holds only the TSA, the key comes separately.
//
// So MarshalTrustedRootJSON writes logs, CAs and TSAs and leaves Keys out, and
// Root.TrustedMaterial combines the trusted root with Keys, each an
// expiring verifier found by its ID (the bundle's key hint), for
// sigstore-go's verify.NewVerifier. Other tools get the keys separately (PEM
// for cosign --key).
package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/custody-dev/custody/keyid"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"
)

// TrustedRootMediaType is the media type of the documents
// MarshalTrustedRootJSON writes and LoadTrustedRoot reads.
const TrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

// Window is the time range in which a key or authority is trusted. The range
// is half-open: Start is inside it, End is not, so a key rotated out at R
// and its successor starting at R never overlap, even at the one-second
// precision of RFC 3161 genTime. A zero Start means trusted since forever,
// a zero End means still trusted (an open window). A window whose End is
// not after its Start contains no time.
type Window struct {
	Start time.Time
	End   time.Time
}

// Contains reports whether t is inside w: at or after Start and before End.
func (w Window) Contains(t time.Time) bool {
	if !w.Start.IsZero() && t.Before(w.Start) {
		return false
	}
	if !w.End.IsZero() && !t.Before(w.End) {
		return false
	}
	return true
}

// lastInstant is the last time inside w's end, for sigstore-go and the
// Sigstore trusted root format, whose validity ends are closed: End less a
// nanosecond (time.Time's resolution), or zero for an open end.
func (w Window) lastInstant() time.Time {
	if w.End.IsZero() {
		return w.End
	}
	return w.End.Add(-time.Nanosecond)
}

// ExpiringKey returns v as sigstore-go trust material valid only inside w.
// Use it rather than root.NewExpiringKey(v, w.Start, w.End), whose end is
// inclusive.
func (w Window) ExpiringKey(v signature.Verifier) *root.ExpiringKey {
	if !w.End.IsZero() && !w.End.After(w.Start) {
		// Empty: a closed range can't express it, so refuse every signature.
		return root.NewExpiringKey(neverValid{v}, w.Start, w.Start)
	}
	return root.NewExpiringKey(v, w.Start, w.lastInstant())
}

// neverValid is a verifier that refuses every signature: the key of an
// empty window.
type neverValid struct{ signature.Verifier }

func (neverValid) VerifySignature(io.Reader, io.Reader, ...signature.VerifyOption) error {
	return errors.New("key's validity window is empty: it was revoked or rotated out when or before it started")
}

func (w Window) validate() error {
	if !w.Start.IsZero() && !w.End.IsZero() && w.End.Before(w.Start) {
		return fmt.Errorf("window ends (%s) before it starts (%s)", w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
	}
	return nil
}

// TransparencyLog is a transparency log (or, in Root.CTLogs, a certificate
// transparency log) whose signed checkpoints and entries are trusted.
type TransparencyLog struct {
	// BaseURL is where the log is served, e.g. https://log.example.com.
	BaseURL string
	// PublicKey verifies the log's signatures: ECDSA (P-256/384/521),
	// Ed25519 or RSA (2048/3072/4096 bits).
	PublicKey crypto.PublicKey
	// LogID identifies the log in bundles; empty means SHA-256 of the
	// PKIX DER public key, as Rekor computes it.
	LogID []byte
	// Window is when the log's key is trusted. Sigstore requires a start.
	Window Window
}

// TimestampAuthority is an RFC 3161 timestamp authority.
type TimestampAuthority struct {
	// URI is where the authority is served (informative).
	URI string
	// Chain is the authority's certificate chain, leaf first, root last.
	// The leaf must be present: sigstore-go's TSA client does not ask for
	// certificates in the token, so verifiers take the leaf from here.
	Chain []*x509.Certificate
	// Window is when tokens from this authority are trusted; it is checked
	// against the token's genTime.
	Window Window
}

// CertificateAuthority is a code-signing certificate authority (a Fulcio
// instance).
type CertificateAuthority struct {
	// URI is where the authority is served (informative).
	URI string
	// Chain is the authority's chain, intermediates first, root last.
	Chain []*x509.Certificate
	// Window is when certificates this authority issued are trusted.
	Window Window
}

// Key is a signing key for key-signed bundles, or (Role RoleAdmin) a key
// that signs trust root documents.
type Key struct {
	// ID is matched against the bundle's verificationMaterial.publicKey.hint.
	// Empty means KeyID(PublicKey), which is the hint sigstore-go and custody
	// write by default.
	ID string
	// PublicKey verifies the signatures: ECDSA, Ed25519 or RSA.
	PublicKey crypto.PublicKey
	// Window is when signatures by this key are trusted; it is checked
	// against a signed timestamp or log integration time.
	Window Window
	// Role is what the key may sign. The zero Role is a signer of
	// artifact evidence, like RoleBuilder; see Role.SignsEvidence.
	Role Role
	// Identity names who holds the key, e.g. "ci@example.com" or
	// "Alice <alice@example.com>". Informative.
	Identity string
	// CompromisedSince, when set, revokes the key from that time on:
	// signatures placed at or after it are not trusted, and since the
	// current time is after it, neither are signatures that no timestamp or
	// log entry places before it.
	CompromisedSince time.Time
}

// Role is what a key in a trust root is trusted to sign.
type Role string

// Roles of keys. Builder, approver and rebuilder keys sign artifact
// evidence; admin keys sign trust root documents; log and TSA keys are
// recorded for their identity and window (logs and TSAs themselves are
// trusted through Root.Tlogs and Root.TSAs).
const (
	RoleBuilder   Role = "builder"
	RoleApprover  Role = "approver"
	RoleRebuilder Role = "rebuilder"
	RoleLog       Role = "log"
	RoleTSA       Role = "tsa"
	RoleAdmin     Role = "admin"
	// RolePacker keys sign evidence packs (package pack): the pack's
	// manifest, never artifact evidence.
	RolePacker Role = "packer"
	// RoleWitness keys cosign log checkpoints (C2SP tlog-cosignature/v1,
	// https://c2sp.org/tlog-cosignature): Ed25519 keys whose Identity is
	// the witness's name. A pack's checkpoints must carry a cosignature of
	// one of them when the trust root lists any (package pack).
	RoleWitness Role = "witness"
)

// Roles lists every Role, in the order documents show them.
var Roles = []Role{RoleAdmin, RoleBuilder, RoleApprover, RoleRebuilder, RoleLog, RoleTSA, RolePacker, RoleWitness}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown key role %q (want admin, builder, approver, rebuilder, log, tsa, packer or witness)", s)
}

// SignsEvidence reports whether keys of role r verify artifact evidence in
// TrustedMaterial: builder, approver, rebuilder and the zero Role.
func (r Role) SignsEvidence() bool {
	switch r {
	case "", RoleBuilder, RoleApprover, RoleRebuilder:
		return true
	}
	return false
}

// Effective returns the window in which the key's signatures are trusted:
// Window, ended at CompromisedSince (exclusive) when the key is revoked. A
// key compromised at or before its window starts has an empty effective
// window (Contains is false everywhere).
func (k *Key) Effective() Window {
	w := k.Window
	if k.CompromisedSince.IsZero() {
		return w
	}
	if w.End.IsZero() || k.CompromisedSince.Before(w.End) {
		w.End = k.CompromisedSince
	}
	return w
}

// ValidAt reports whether the key's signatures placed at t are trusted.
func (k *Key) ValidAt(t time.Time) bool {
	return k.Effective().Contains(t)
}

// Root is custody's trust root.
type Root struct {
	Tlogs                  []TransparencyLog
	CTLogs                 []TransparencyLog
	TSAs                   []TimestampAuthority
	CertificateAuthorities []CertificateAuthority
	Keys                   []Key
}

// KeyID returns the default ID of a key: the standard base64 encoding of the
// SHA-256 digest of its PKIX DER encoding. sigstore-go's sign package writes
// this as the key hint of the bundles it makes.
//
// This is the stored form (see package keyid): trust root documents and
// their signatures keep it. Print keyid.Display of it.
func KeyID(pub crypto.PublicKey) (string, error) {
	id, err := keyid.Of(pub)
	if err != nil {
		return "", err
	}
	return id.Base64(), nil
}

// logID returns l.LogID or the SHA-256 of its PKIX public key.
func (l *TransparencyLog) logID() ([]byte, error) {
	if len(l.LogID) > 0 {
		return l.LogID, nil
	}
	der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// keyID returns k.ID or KeyID(k.PublicKey).
func (k *Key) keyID() (string, error) {
	if k.ID != "" {
		return k.ID, nil
	}
	return KeyID(k.PublicKey)
}

// Validate checks that r can be exported: every log, authority and key is
// complete, uses a supported key type, has a well-formed window, and IDs are
// unique.
func (r *Root) Validate() error {
	_, err := r.toProto()
	if err != nil {
		return err
	}
	_, err = r.keyMaterial()
	return err
}

// checkPublicKey rejects nil and unsupported public keys.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("malformed Ed25519 public key")
		}
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too small", k.N.BitLen())
		}
		return nil
	case nil:
		return errors.New("public key is missing")
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

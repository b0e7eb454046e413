// Package tlog is the transparency log of `custody serve`: a Tessera
// personality over Tessera's POSIX driver.
//
// It speaks the C2SP tlog-tiles read API (https://c2sp.org/tlog-tiles), signs
// C2SP checkpoints (https://c2sp.org/tlog-checkpoint) as signed notes
// (https://c2sp.org/signed-note), accepts writes through the Rekor v2 API
// (https://github.com/sigstore/rekor-tiles, POST /api/v2/log/entries) and
// collects witness cosignatures (https://c2sp.org/tlog-cosignature).
//
// HTTP paths served by [Log.Handler]:
//
//	GET  /checkpoint                       latest checkpoint, with stored cosignatures
//	GET  /tile/{L}/{N}[.p/{W}]             Merkle tiles (tlog-tiles)
//	GET  /tile/entries/{N}[.p/{W}]         entry bundles (tlog-tiles)
//	GET  /checkpoints/{size}               a published checkpoint of that size (history)
//	GET  /proof/inclusion?index=I&size=S   inclusion proof: one base64 hash per line
//	GET  /proof/consistency?old=M&new=N    consistency proof: one base64 hash per line
//	POST /api/v2/log/entries               Rekor v2 CreateEntryRequest (JSON) → TransparencyLogEntry
//	POST /cosignature                      a witness cosigned checkpoint (signed note) to store
//
// For sigstore-go to verify entries of this log, the log's origin must be the
// host name of the baseUrl under which the log appears in the trusted root
// (sigstore-go v1.3.0 names the checkpoint verifier after that host name).
package tlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Signature type bytes of C2SP signed-note key IDs.
const (
	sigTypeEd25519     = 0x01
	sigTypeCosignature = 0x04
)

// validName reports whether name can be a signed-note key name.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// keyHash returns the signed-note key ID (first four bytes) and the full
// SHA-256 it was cut from, computed as Rekor v2 (and so sigstore-go) does:
// Ed25519 keys use the C2SP form SHA-256(name || "\n" || 0x01 || key),
// ECDSA keys use SHA-256 of the PKIX DER public key.
func keyHash(name string, pub crypto.PublicKey) (uint32, []byte, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		h := sha256.New()
		h.Write([]byte(name))
		h.Write([]byte{'\n', sigTypeEd25519})
		h.Write(k)
		sum := h.Sum(nil)
		return binary.BigEndian.Uint32(sum), sum, nil
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return 0, nil, fmt.Errorf("couldn't marshal ecdsa key: %w", err)
		}
		sum := sha256.Sum256(der)
		return binary.BigEndian.Uint32(sum[:]), sum[:], nil
	default:
		return 0, nil, fmt.Errorf("unsupported log key type %T (want Ed25519 or ECDSA)", pub)
	}
}

// ecdsaHash is the digest an ECDSA key of this curve signs notes with.
func ecdsaHash(k *ecdsa.PublicKey) crypto.Hash {
	switch k.Curve.Params().BitSize {
	case 384:
		return crypto.SHA384
	case 521:
		return crypto.SHA512
	default:
		return crypto.SHA256
	}
}

// noteSigner signs notes with a crypto.Signer, so that the key can live in
// a file, a KMS or a PKCS#11 token.
type noteSigner struct {
	name   string
	hash   uint32
	signer crypto.Signer
	// after, if set, is called with every note body and its signature.
	after func(msg, sig []byte) error
}

// NewNoteSigner returns a note.Signer named name that signs with s
// (Ed25519 or ECDSA). Key IDs are those of Rekor v2.
func NewNoteSigner(name string, s crypto.Signer) (note.Signer, error) {
	return newNoteSigner(name, s)
}

func newNoteSigner(name string, s crypto.Signer) (*noteSigner, error) {
	if !validName(name) {
		return nil, fmt.Errorf("invalid note name %q", name)
	}
	if s == nil {
		return nil, errors.New("no signer")
	}
	h, _, err := keyHash(name, s.Public())
	if err != nil {
		return nil, err
	}
	return &noteSigner{name: name, hash: h, signer: s}, nil
}

func (n *noteSigner) Name() string    { return n.name }
func (n *noteSigner) KeyHash() uint32 { return n.hash }

func (n *noteSigner) Sign(msg []byte) ([]byte, error) {
	var sig []byte
	var err error
	switch k := n.signer.Public().(type) {
	case ed25519.PublicKey:
		sig, err = n.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		hf := ecdsaHash(k)
		h := hf.New()
		h.Write(msg)
		sig, err = n.signer.Sign(rand.Reader, h.Sum(nil), hf)
	default:
		err = fmt.Errorf("unsupported log key type %T", k)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't sign note: %w", err)
	}
	if n.after != nil {
		if err := n.after(msg, sig); err != nil {
			return nil, err
		}
	}
	return sig, nil
}

// noteVerifier verifies notes signed by a noteSigner.
type noteVerifier struct {
	name string
	hash uint32
	pub  crypto.PublicKey
}

// NewNoteVerifier returns a note.Verifier for checkpoints signed by the log
// named origin with the public key pub (Ed25519 or ECDSA).
func NewNoteVerifier(origin string, pub crypto.PublicKey) (note.Verifier, error) {
	if !validName(origin) {
		return nil, fmt.Errorf("invalid note name %q", origin)
	}
	h, _, err := keyHash(origin, pub)
	if err != nil {
		return nil, err
	}
	return &noteVerifier{name: origin, hash: h, pub: pub}, nil
}

func (n *noteVerifier) Name() string    { return n.name }
func (n *noteVerifier) KeyHash() uint32 { return n.hash }

func (n *noteVerifier) Verify(msg, sig []byte) bool {
	switch k := n.pub.(type) {
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		h := ecdsaHash(k).New()
		h.Write(msg)
		return ecdsa.VerifyASN1(k, h.Sum(nil), sig)
	}
	return false
}

// LogID returns the ID of the log with this origin and checkpoint key, as
// Log.LogID does for an open log: what goes in TransparencyLogEntry.logId and
// the trusted root.
func LogID(origin string, pub crypto.PublicKey) ([]byte, error) {
	_, id, err := keyHash(origin, pub)
	return id, err
}

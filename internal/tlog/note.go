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
//	GET  /checkpoint?witnessed=K           newest checkpoint with K witnesses' cosignatures (else latest)
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
	"errors"
	"fmt"

	rnote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"
)

// keyHash returns the signed-note key ID (first four bytes) and the full
// SHA-256 it was cut from, as Rekor v2 (and so sigstore-go) computes them
// (rekor-tiles' note.KeyHash): Ed25519 keys use the C2SP form
// SHA-256(name || "\n" || 0x01 || key), ECDSA keys SHA-256 of the PKIX DER
// public key. custody's log keys are Ed25519 or ECDSA; rekor-tiles also
// takes RSA, which custody refuses here.
func keyHash(name string, pub crypto.PublicKey) (uint32, []byte, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, nil, errors.New("ed25519 log key is not 32 bytes")
		}
	case *ecdsa.PublicKey:
	default:
		return 0, nil, fmt.Errorf("unsupported log key type %T (want Ed25519 or ECDSA)", pub)
	}
	return rnote.KeyHash(name, pub)
}

// noteSigner signs notes with a crypto.Signer, so that the key can live in
// a file, a KMS or a PKCS#11 token (rekor-tiles' note signer takes a
// sigstore signature.Signer, which loads only in-memory private keys).
type noteSigner struct {
	name   string
	hash   uint32
	signer crypto.Signer
	digest crypto.Hash // 0 for Ed25519, which signs the note itself
	// after, if set, is called with every note body and its signature.
	after func(msg, sig []byte) error
}

// NewNoteSigner returns a note.Signer named name that signs with s
// (Ed25519 or ECDSA). Key IDs are those of Rekor v2.
func NewNoteSigner(name string, s crypto.Signer) (note.Signer, error) {
	return newNoteSigner(name, s)
}

func newNoteSigner(name string, s crypto.Signer) (*noteSigner, error) {
	if s == nil {
		return nil, errors.New("no signer")
	}
	// rekor-tiles' verifier checks the name and key as the signer must.
	v, err := NewNoteVerifier(name, s.Public())
	if err != nil {
		return nil, err
	}
	details, err := signature.GetDefaultAlgorithmDetails(s.Public())
	if err != nil {
		return nil, err
	}
	return &noteSigner{name: name, hash: v.KeyHash(), signer: s, digest: details.GetHashType()}, nil
}

func (n *noteSigner) Name() string    { return n.name }
func (n *noteSigner) KeyHash() uint32 { return n.hash }

func (n *noteSigner) Sign(msg []byte) ([]byte, error) {
	signed := msg
	if n.digest != 0 {
		h := n.digest.New()
		h.Write(msg)
		signed = h.Sum(nil)
	}
	sig, err := n.signer.Sign(rand.Reader, signed, n.digest)
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

// NewNoteVerifier returns a note.Verifier for checkpoints signed by the log
// named origin with the public key pub (Ed25519 or ECDSA, with the digest
// Sigstore's algorithm registry gives the key): rekor-tiles' note verifier.
func NewNoteVerifier(origin string, pub crypto.PublicKey) (note.Verifier, error) {
	if _, _, err := keyHash(origin, pub); err != nil {
		return nil, err
	}
	sv, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't load log key: %w", err)
	}
	v, err := rnote.NewNoteVerifier(origin, sv)
	if err != nil {
		return nil, fmt.Errorf("invalid note name %q", origin)
	}
	return v, nil
}

// LogID returns the ID of the log with this origin and checkpoint key, as
// Log.LogID does for an open log: what goes in TransparencyLogEntry.logId and
// the trusted root.
func LogID(origin string, pub crypto.PublicKey) ([]byte, error) {
	_, id, err := keyHash(origin, pub)
	return id, err
}

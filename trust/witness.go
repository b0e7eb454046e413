package trust

import (
	"crypto/ed25519"
	"fmt"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// CosignatureVerifier returns the note verifier of cosignatures (C2SP
// tlog-cosignature/v1, https://c2sp.org/tlog-cosignature) by the witness
// named name with key pub: transparency-dev/formats' cosignature/v1
// verifier.
func CosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, fmt.Errorf("invalid witness name %q or key: %w", name, err)
	}
	// formats reads an Ed25519 verifier key as a cosignature/v1 key.
	return fnote.NewVerifierForCosignatureV1(vkey)
}

// Witnesses returns the cosignature verifiers of the witness keys (Role
// RoleWitness) valid at t, each named by its Identity. A witness key that
// is not Ed25519 or has no usable name is an error: the trust root then
// cannot say which cosignatures count.
func (r *Root) Witnesses(t time.Time) ([]note.Verifier, error) {
	var out []note.Verifier
	for i := range r.Keys {
		k := &r.Keys[i]
		if k.Role != RoleWitness || !k.ValidAt(t) {
			continue
		}
		pub, ok := k.PublicKey.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("witness key %s (%s) is not an Ed25519 key", short(k.ID), k.Identity)
		}
		v, err := CosignatureVerifier(k.Identity, pub)
		if err != nil {
			return nil, fmt.Errorf("witness key %s: %w", short(k.ID), err)
		}
		out = append(out, v)
	}
	return out, nil
}

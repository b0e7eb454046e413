package tlog

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzNoteDifferential holds the library note verifiers (rekor-tiles for
// log keys, transparency-dev/formats for cosignatures) to the hand-written
// ones they replace: same names and key IDs, same verdict on every
// signature, and each side's signatures verify with the other's verifier.
func FuzzNoteDifferential(f *testing.F) {
	ec := newECDSAKey(f).(*ecdsa.PrivateKey)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	type pair struct {
		signers  []note.Signer
		new, old note.Verifier
	}
	var pairs []pair
	for _, key := range []any{ec, ed} {
		var ns, os note.Signer
		var nv, ov note.Verifier
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			ns, _ = newNoteSigner(testOrigin, k)
			os, _ = oldNewNoteSigner(testOrigin, k)
			nv, _ = NewNoteVerifier(testOrigin, k.Public())
			ov, _ = oldNewNoteVerifier(testOrigin, k.Public())
		case ed25519.PrivateKey:
			ns, _ = newNoteSigner(testOrigin, k)
			os, _ = oldNewNoteSigner(testOrigin, k)
			nv, _ = NewNoteVerifier(testOrigin, k.Public())
			ov, _ = oldNewNoteVerifier(testOrigin, k.Public())
		}
		pairs = append(pairs, pair{[]note.Signer{ns, os}, nv, ov})
	}
	w, err := NewWitness("witness.example", wkey)
	if err != nil {
		f.Fatal(err)
	}
	ow, _ := oldNewWitness("witness.example", wkey)
	cv, _ := NewCosignatureVerifier("witness.example", wkey.Public().(ed25519.PublicKey))
	pairs = append(pairs, pair{[]note.Signer{w, ow}, cv, ow.Verifier()})
	msg := []byte(testOrigin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	for _, p := range pairs {
		if p.new.Name() != p.old.Name() || p.new.KeyHash() != p.old.KeyHash() {
			f.Fatalf("verifier %s %08x, old %s %08x", p.new.Name(), p.new.KeyHash(), p.old.Name(), p.old.KeyHash())
		}
		for _, s := range p.signers {
			if s.Name() != p.new.Name() || s.KeyHash() != p.new.KeyHash() {
				f.Fatalf("signer %s %08x, verifier %s %08x", s.Name(), s.KeyHash(), p.new.Name(), p.new.KeyHash())
			}
			sig, err := s.Sign(msg)
			if err != nil {
				f.Fatal(err)
			}
			if !p.new.Verify(msg, sig) || !p.old.Verify(msg, sig) {
				f.Fatalf("%T signature: new verifier %v, old %v", s, p.new.Verify(msg, sig), p.old.Verify(msg, sig))
			}
			f.Add(msg, sig)
		}
	}
	f.Add([]byte("x\n"), []byte{})
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		for _, p := range pairs {
			if a, b := p.new.Verify(msg, sig), p.old.Verify(msg, sig); a != b {
				t.Fatalf("%s: new verifier %v, old %v", p.new.Name(), a, b)
			}
		}
	})
}

// Package signer holds custody's signing backends and writes signed Sigstore
// bundles.
//
// Keys at rest use the Sigstore encrypted private key format that cosign
// reads and writes: a PEM block of type "ENCRYPTED SIGSTORE PRIVATE KEY"
// (or the legacy "ENCRYPTED COSIGN PRIVATE KEY") whose body is the JSON of
// github.com/secure-systems-lab/go-securesystemslib/encrypted (scrypt key
// derivation, NaCl secretbox) wrapping a PKCS#8 private key. Public keys are
// PKIX "PUBLIC KEY" PEM blocks.
//
// Signed statements are DSSE envelopes
// (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md) inside
// a Sigstore bundle v0.3
// (https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto),
// built with sigstore-go's sign package.
package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
)

// Algorithm names a key type custody can generate.
type Algorithm string

// Algorithms custody generates keys for.
const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	Ed25519   Algorithm = "ed25519"
)

// Limits on RSA keys custody accepts (it never generates them).
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// ErrUnsupportedKey is returned (wrapped) for keys of a type, curve or size
// custody does not sign or verify with.
var ErrUnsupportedKey = errors.New("unsupported key")

// ParseAlgorithm parses an algorithm name as given on the command line,
// case-insensitively.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(strings.ToLower(strings.TrimSpace(s))); a {
	case ECDSAP256, Ed25519:
		return a, nil
	}
	return "", fmt.Errorf("unknown key algorithm %q (want %q or %q)", s, ECDSAP256, Ed25519)
}

// Generate creates a new private key of the given algorithm.
func Generate(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("couldn't generate ECDSA P-256 key: %w", err)
		}
		return k, nil
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("couldn't generate Ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unknown key algorithm %q (want %q or %q)", alg, ECDSAP256, Ed25519)
}

// checkPublicKey accepts ECDSA P-256/P-384/P-521, Ed25519 and RSA keys of
// 2048 to 8192 bits, and rejects everything else with an error wrapping
// ErrUnsupportedKey.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s (want P-256, P-384 or P-521)", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return fmt.Errorf("%w: RSA key of %d bits (want %d to %d)", ErrUnsupportedKey, n, minRSABits, maxRSABits)
		}
		return nil
	}
	return fmt.Errorf("%w: key type %T (want ECDSA, Ed25519 or RSA)", ErrUnsupportedKey, pub)
}

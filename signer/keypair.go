package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // ECDSA P-256, RSA
	_ "crypto/sha512" // ECDSA P-384, P-521
	"encoding/base64"
	"errors"
	"fmt"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/sign"
)

// Keypair adapts a crypto.Signer (a decrypted file key, or a key in a
// token) to sigstore-go's sign.Keypair. It signs with the algorithm
// Sigstore pairs with the key: ECDSA P-256 with SHA-256, P-384 with SHA-384,
// P-521 with SHA-512, pure Ed25519 over the whole message, and RSA PKCS#1
// v1.5 with SHA-256 (2048, 3072 and 4096 bit keys).
type Keypair struct {
	signer  crypto.Signer
	hash    crypto.Hash // 0 for pure Ed25519
	details protocommon.PublicKeyDetails
	keyAlg  string
	hint    []byte
}

var _ sign.Keypair = (*Keypair)(nil)

// NewKeypair wraps s. Its hint is the standard base64 SHA-256 of the PKIX
// public key, as sigstore-go's EphemeralKeypair and cosign write it (KeyID
// is the same digest in hex). Keys custody does not sign with give an error
// wrapping ErrUnsupportedKey.
func NewKeypair(s crypto.Signer) (*Keypair, error) {
	if s == nil {
		return nil, errors.New("no signer")
	}
	pub := s.Public()
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	k := &Keypair{signer: s}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		k.keyAlg = "ECDSA"
		switch p.Curve {
		case elliptic.P256():
			k.hash, k.details = crypto.SHA256, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
		case elliptic.P384():
			k.hash, k.details = crypto.SHA384, protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		case elliptic.P521():
			k.hash, k.details = crypto.SHA512, protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512
		}
	case ed25519.PublicKey:
		k.keyAlg = "ED25519"
		k.hash, k.details = 0, protocommon.PublicKeyDetails_PKIX_ED25519
	case *rsa.PublicKey:
		k.keyAlg = "RSA"
		k.hash = crypto.SHA256
		switch p.N.BitLen() {
		case 2048:
			k.details = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256
		case 3072:
			k.details = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256
		case 4096:
			k.details = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256
		default:
			return nil, fmt.Errorf("%w: Sigstore has no signing algorithm for %d bit RSA keys", ErrUnsupportedKey, p.N.BitLen())
		}
	}
	sum, err := pkixDigest(pub)
	if err != nil {
		return nil, err
	}
	k.hint = []byte(base64.StdEncoding.EncodeToString(sum[:]))
	return k, nil
}

// GetHashAlgorithm returns the digest algorithm signed over; for pure
// Ed25519, which signs the message itself, it is unspecified, as in
// sigstore's algorithm registry.
func (k *Keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	switch k.hash {
	case 0:
		return protocommon.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED
	case crypto.SHA384:
		return protocommon.HashAlgorithm_SHA2_384
	case crypto.SHA512:
		return protocommon.HashAlgorithm_SHA2_512
	}
	return protocommon.HashAlgorithm_SHA2_256
}

// GetSigningAlgorithm returns the Sigstore algorithm identifier.
func (k *Keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails { return k.details }

// GetHint returns the public key hint written into bundles.
func (k *Keypair) GetHint() []byte { return k.hint }

// GetKeyAlgorithm returns "ECDSA", "ED25519" or "RSA".
func (k *Keypair) GetKeyAlgorithm() string { return k.keyAlg }

// GetPublicKey returns the signer's public key.
func (k *Keypair) GetPublicKey() crypto.PublicKey { return k.signer.Public() }

// GetPublicKeyPem returns the public key as a PKIX PEM block.
func (k *Keypair) GetPublicKeyPem() (string, error) {
	b, err := MarshalPublicKey(k.signer.Public())
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// SignData signs data and returns the signature and what was signed: the
// digest of data, or data itself for Ed25519.
func (k *Keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	signed := data
	if k.hash != 0 {
		h := k.hash.New()
		h.Write(data)
		signed = h.Sum(nil)
	}
	sig, err := k.signer.Sign(rand.Reader, signed, k.hash)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't sign: %w", err)
	}
	return sig, signed, nil
}

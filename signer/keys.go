package signer

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/custody-dev/custody/keyid"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types.
const (
	// PrivateKeyPEMType is the block type custody writes, as cosign does.
	PrivateKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// LegacyPrivateKeyPEMType is the block type older cosign releases wrote;
	// custody reads it.
	LegacyPrivateKeyPEMType = "ENCRYPTED COSIGN PRIVATE KEY"
	// PublicKeyPEMType is the PKIX public key block type.
	PublicKeyPEMType = "PUBLIC KEY"
)

// maxKeyFileBytes bounds how much of a key file custody reads; real keys are
// under 2 KiB.
const maxKeyFileBytes = 64 << 10

// ErrWrongPassword is returned (wrapped) by DecryptPrivateKey when the
// encrypted key does not open with the password: the password is wrong, or
// the ciphertext was altered.
var ErrWrongPassword = errors.New("wrong password for private key")

// EncryptPrivateKey encrypts priv with password in the Sigstore encrypted
// private key format that cosign reads: scrypt (N=2^16, r=8, p=1) and NaCl
// secretbox over the PKCS#8 DER of the key, as go-securesystemslib JSON, in a
// PEM block of type PrivateKeyPEMType. The key must be one custody accepts
// (see ParsePublicKey).
func EncryptPrivateKey(priv crypto.Signer, password []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("no private key to encrypt")
	}
	if err := checkPublicKey(priv.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode private key as PKCS#8: %w", err)
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("couldn't encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: enc}), nil
}

// encryptedKey mirrors the JSON that go-securesystemslib/encrypted writes,
// so that DecryptPrivateKey can tell a malformed file from a wrong password.
type encryptedKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// secretboxOverhead is the size of the authenticator secretbox prepends.
const secretboxOverhead = 16

func (k *encryptedKey) check() error {
	if k.KDF.Name != "scrypt" {
		return fmt.Errorf("key derivation %q is not scrypt", k.KDF.Name)
	}
	switch p := k.KDF.Params; {
	case p.R == 8 && p.P == 1 && (p.N == 1<<15 || p.N == 1<<16 || p.N == 1<<17):
	default:
		return fmt.Errorf("scrypt parameters N=%d r=%d p=%d are not ones cosign writes", p.N, p.R, p.P)
	}
	if len(k.KDF.Salt) == 0 {
		return errors.New("scrypt salt is empty")
	}
	if k.Cipher.Name != "nacl/secretbox" {
		return fmt.Errorf("cipher %q is not nacl/secretbox", k.Cipher.Name)
	}
	if len(k.Cipher.Nonce) != 24 {
		return fmt.Errorf("secretbox nonce is %d bytes, want 24", len(k.Cipher.Nonce))
	}
	if len(k.Ciphertext) < secretboxOverhead {
		return fmt.Errorf("ciphertext is %d bytes, too short to hold a key", len(k.Ciphertext))
	}
	return nil
}

// DecryptPrivateKey reads a private key in the Sigstore encrypted private
// key format (PEM type PrivateKeyPEMType or LegacyPrivateKeyPEMType), as
// written by EncryptPrivateKey or `cosign generate-key-pair`.
//
// A password that does not open the key gives an error wrapping
// ErrWrongPassword. A key of a type custody does not accept gives an error
// wrapping ErrUnsupportedKey. Any other malformed input gives an error that
// says what is wrong with it.
func DecryptPrivateKey(pemBytes, password []byte) (crypto.Signer, error) {
	block, err := decodeOnePEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read private key: %w", err)
	}
	switch block.Type {
	case PrivateKeyPEMType, LegacyPrivateKeyPEMType:
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("couldn't read private key: PEM block %q is not encrypted; custody only reads keys in the encrypted Sigstore format (%q)", block.Type, PrivateKeyPEMType)
	default:
		return nil, fmt.Errorf("couldn't read private key: PEM block is %q, want %q", block.Type, PrivateKeyPEMType)
	}
	var ek encryptedKey
	if err := json.Unmarshal(block.Bytes, &ek); err != nil {
		return nil, fmt.Errorf("couldn't read private key: malformed encrypted key JSON: %w", err)
	}
	if err := ek.check(); err != nil {
		return nil, fmt.Errorf("couldn't read private key: %w", err)
	}
	// The structure is sound, so a failure here is the secretbox
	// authenticator rejecting the derived key.
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		return nil, ErrWrongPassword
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse decrypted PKCS#8 private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key type %T cannot sign", ErrUnsupportedKey, key)
	}
	if err := checkPublicKey(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// MarshalPublicKey encodes pub as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: der}), nil
}

// ParsePublicKey reads one PKIX "PUBLIC KEY" PEM block. It accepts ECDSA
// P-256, P-384 and P-521, Ed25519, and RSA keys of 2048 to 8192 bits; other
// keys give an error wrapping ErrUnsupportedKey.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, err := decodeOnePEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read public key: %w", err)
	}
	if block.Type != PublicKeyPEMType {
		return nil, fmt.Errorf("couldn't read public key: PEM block is %q, want %q", block.Type, PublicKeyPEMType)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse public key: %w", err)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// KeyID returns the lowercase hex SHA-256 of pub's PKIX DER encoding, or ""
// if pub cannot be encoded. The Sigstore bundle hint (see Keypair.GetHint)
// is the same digest in standard base64.
func KeyID(pub crypto.PublicKey) string {
	id, err := keyid.Of(pub)
	if err != nil {
		return ""
	}
	return id.String()
}

func pkixDigest(pub crypto.PublicKey) ([sha256.Size]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("couldn't encode public key: %w", err)
	}
	return sha256.Sum256(der), nil
}

// decodeOnePEM decodes exactly one PEM block, allowing only whitespace
// around it.
func decodeOnePEM(b []byte) (*pem.Block, error) {
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("input is %d bytes, more than the %d a key can be", len(b), maxKeyFileBytes)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("unexpected PEM headers")
	}
	return block, nil
}

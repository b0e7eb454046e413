package verify

import (
	"crypto"
	"fmt"
	"os"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PublicKeyMaterial returns trust material holding one public key (ECDSA,
// Ed25519 or RSA) valid at all times, for key-signed bundles whatever their
// key hint (cosign --key semantics). It has no certificate authorities,
// transparency logs or timestamp authorities; see Verify for what that means
// for bundles that carry log entries or timestamps. Combine it with a trusted
// root in a root.TrustedMaterialCollection to check those too.
func PublicKeyMaterial(pub crypto.PublicKey) (root.TrustedMaterial, error) {
	v, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't use public key: %w", err)
	}
	key := root.NewExpiringKey(v, time.Time{}, time.Time{})
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return key, nil
	}), nil
}

// LoadTrustedRoot reads a Sigstore trusted_root.json
// (https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_trustroot.proto).
// A file that does not parse returns an error wrapping ErrMalformed.
func LoadTrustedRoot(path string) (root.TrustedMaterial, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read trusted root: %w", err)
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: couldn't parse trusted root %s: %w", ErrMalformed, path, err)
	}
	return tr, nil
}

package signer

import (
	"errors"
	"testing"
)

// TestLoadKMSRefused: every KMS scheme, well-formed or not, in any case, is
// refused with the one-line message that names the alternative.
func TestLoadKMSRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ref, want string }{
		{"awskms:///alias/release", "awskms: KMS keys are not supported in this build; use a PKCS#11 URI"},
		{"awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab", "awskms: KMS keys are not supported in this build; use a PKCS#11 URI"},
		{"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "gcpkms: KMS keys are not supported in this build; use a PKCS#11 URI"},
		{"azurekms://vault.vault.azure.net/key", "azurekms: KMS keys are not supported in this build; use a PKCS#11 URI"},
		{"hashivault://release", "hashivault: KMS keys are not supported in this build; use a PKCS#11 URI"},
		{"AWSKMS://x", "awskms: KMS keys are not supported in this build; use a PKCS#11 URI"},
	} {
		s, err := Load(tc.ref, func() ([]byte, error) { t.Fatal("password asked"); return nil, nil })
		if s != nil || err == nil || err.Error() != tc.want || !errors.Is(err, ErrKMSUnsupported) {
			t.Errorf("Load(%q) = %v, %v; want %q", tc.ref, s, err, tc.want)
		}
	}
	for _, ref := range []string{"k8s://ns/secret", "awskms:/x", "kms://x", "pkcs11:token=a"} {
		if IsKMSRef(ref) {
			t.Errorf("IsKMSRef(%q) = true", ref)
		}
	}
}

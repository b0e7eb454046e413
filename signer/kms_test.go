package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKMSRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want KMSRef
	}{
		{"awskms:///1234abcd-12ab-34cd-56ef-1234567890ab", KMSRef{Provider: KMSAWS, Key: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab", KMSRef{Provider: KMSAWS, Endpoint: "localhost:4566", Key: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", KMSRef{Provider: KMSAWS, Key: "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"awskms:///alias/ExampleAlias", KMSRef{Provider: KMSAWS, Key: "alias/ExampleAlias"}},
		{"awskms://localhost:4566/arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias", KMSRef{Provider: KMSAWS, Endpoint: "localhost:4566", Key: "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias"}},
		{"gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k", KMSRef{Provider: KMSGCP, Key: "projects/p/locations/global/keyRings/r/cryptoKeys/k"}},
		{"gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3", KMSRef{Provider: KMSGCP, Key: "projects/p/locations/global/keyRings/r/cryptoKeys/k", Version: "3"}},
		{"gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/versions/3", KMSRef{Provider: KMSGCP, Key: "projects/p/locations/global/keyRings/r/cryptoKeys/k", Version: "3"}},
		{"azurekms://myvault.vault.azure.net/release", KMSRef{Provider: KMSAzure, Endpoint: "https://myvault.vault.azure.net/", Key: "release"}},
		{"azurekms://myvault.vault.azure.net/release/0123abc", KMSRef{Provider: KMSAzure, Endpoint: "https://myvault.vault.azure.net/", Key: "release", Version: "0123abc"}},
		{"hashivault://release", KMSRef{Provider: KMSVault, Key: "release"}},
		{"hashivault://release-key.v2", KMSRef{Provider: KMSVault, Key: "release-key.v2"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseKMSRef(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Ref = tc.in
			if *got != tc.want {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
	for _, in := range []string{
		"awskms://", "awskms:///", "awskms:///not-a-key", "awskms:///arn:aws:kms:eu-west-1:1:key/x", "awskms:///alias/",
		"gcpkms://projects/p/locations/l/keyRings/r", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/other/1",
		"azurekms://vault", "azurekms://vault/key/VERSION", "azurekms://vault/key/v/extra",
		"hashivault://", "hashivault://a/b", "hashivault://-a", "hashivault://a b",
		"AWSKMS:///alias/x", "k8s://ns/secret", "awskms:///alias/x?region=eu",
	} {
		if r, err := ParseKMSRef(in); err == nil {
			t.Errorf("ParseKMSRef(%q) = %+v, want error", in, r)
		}
	}
}

func TestOpenKMSWithoutCredentials(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SHARED_CREDENTIALS_FILE",
		"GOOGLE_APPLICATION_CREDENTIALS", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
		"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "VAULT_ADDR", "VAULT_TOKEN"} {
		t.Setenv(v, "")
	}
	for ref, want := range map[string]string{
		"awskms:///alias/release":                                 "awskms: no AWS credentials (set AWS_ACCESS_KEY_ID or use an instance role)",
		"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k": "gcpkms: no Google Cloud credentials (set GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default login')",
		"azurekms://v.vault.azure.net/k":                          "azurekms: no Azure credentials (set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run 'az login')",
		"hashivault://release":                                    "hashivault: no Vault address (set VAULT_ADDR to the Vault server's URL)",
	} {
		_, err := Load(ref, nil)
		if !errors.Is(err, ErrNoKMSCredentials) || err.Error() != want {
			t.Errorf("%s: got %v, want %q (ErrNoKMSCredentials)", ref, err, want)
		}
	}
	t.Setenv("VAULT_ADDR", "https://vault.example")
	if _, err := Load("hashivault://release", nil); err == nil || !strings.Contains(err.Error(), "no Vault token (set VAULT_TOKEN") {
		t.Errorf("vault without token: %v", err)
	}
	// With credentials present but no client built in, the error says so.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	_, err := Load("awskms:///alias/release", nil)
	if !errors.Is(err, ErrKMSUnavailable) || strings.Contains(err.Error(), "secret") {
		t.Errorf("with credentials: %v", err)
	}
	gcpCreds := filepath.Join(home, "adc.json")
	os.WriteFile(gcpCreds, []byte("{}"), 0o600)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", gcpCreds)
	if _, err := Load("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", nil); !errors.Is(err, ErrKMSUnavailable) {
		t.Errorf("gcp with credentials: %v", err)
	}
}

// TestOpenKMSOpener shows where a provider plugs in: a KMSOpener gets the
// parsed reference and its signer is used as any other.
func TestOpenKMSOpener(t *testing.T) {
	t.Parallel()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var got *KMSRef
	o := KMSOpenerFunc(func(_ context.Context, r *KMSRef) (crypto.Signer, error) { got = r; return k, nil })
	s, err := OpenKMS(context.Background(), "hashivault://release", o)
	if err != nil || s != crypto.Signer(k) {
		t.Fatalf("OpenKMS: %v", err)
	}
	if got.Provider != KMSVault || got.Key != "release" {
		t.Errorf("opener got %+v", got)
	}
	if _, err := SignStatement(context.Background(), s, testStatement()); err != nil {
		t.Fatal(err)
	}
	failing := KMSOpenerFunc(func(context.Context, *KMSRef) (crypto.Signer, error) { return nil, errors.New("denied") })
	if _, err := OpenKMS(context.Background(), "hashivault://release", failing); err == nil || !strings.Contains(err.Error(), "hashivault: couldn't open hashivault://release: denied") {
		t.Errorf("failing opener: %v", err)
	}
}

func FuzzParseKMSRef(f *testing.F) {
	for _, s := range []string{"awskms:///alias/x", "awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab",
		"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/versions/1", "azurekms://v.vault.azure.net/k/1", "hashivault://k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseKMSRef(s)
		if err != nil {
			return
		}
		if r.Ref != s || r.Key == "" || !IsKMSRef(s) {
			t.Fatalf("ParseKMSRef(%q) = %+v", s, r)
		}
	})
}

package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

var artifactDigest = sha256.Sum256([]byte("hello, custody\n"))

func testStatement() []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"hello.txt","digest":{"sha256":%q}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://custody.dev/build/v1","externalParameters":{}},"runDetails":{"builder":{"id":"https://custody.dev/test"}}}}`,
		hex.EncodeToString(artifactDigest[:]))
}

// trustedKey returns sigstore-go trusted material holding only pub, looked
// up by the bundle hint, with the hash sigstore pairs with the key.
func trustedKey(t *testing.T, pub crypto.PublicKey, hash crypto.Hash) root.TrustedMaterial {
	t.Helper()
	v, err := signature.LoadVerifier(pub, hash)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := pkixDigest(pub)
	if err != nil {
		t.Fatal(err)
	}
	hint := base64.StdEncoding.EncodeToString(sum[:])
	return root.NewTrustedPublicKeyMaterialFromMapping(map[string]*root.ExpiringKey{
		hint: root.NewExpiringKey(v, time.Now().Add(-time.Hour), time.Time{}),
	})
}

func verifyBundle(tm root.TrustedMaterial, b *bundle.Bundle) error {
	v, err := verify.NewVerifier(tm, verify.WithCurrentTime())
	if err != nil {
		return err
	}
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", artifactDigest[:]), verify.WithKey()))
	return err
}

type signCase struct {
	name string
	key  crypto.Signer
	hash crypto.Hash // what sigstore's verifier must use
}

func signCases(t *testing.T) []signCase {
	t.Helper()
	p256, err := Generate(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := Generate(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []signCase{
		{"ecdsa-p256", p256, crypto.SHA256},
		{"ed25519", ed, crypto.Hash(0)},
		{"ecdsa-p384", p384, crypto.SHA384},
	}
}

func TestSignStatementVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range signCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			stmt := testStatement()
			out, err := SignStatement(ctx, tc.key, stmt)
			if err != nil {
				t.Fatal(err)
			}
			var b bundle.Bundle
			if err := b.UnmarshalJSON(out); err != nil {
				t.Fatal(err)
			}
			if b.GetMediaType() != BundleMediaType {
				t.Errorf("media type %q, want %q", b.GetMediaType(), BundleMediaType)
			}
			env := b.GetDsseEnvelope()
			if env.GetPayloadType() != "application/vnd.in-toto+json" || string(env.GetPayload()) != string(stmt) {
				t.Errorf("envelope holds %q %q, want the statement as given", env.GetPayloadType(), env.GetPayload())
			}
			tm := trustedKey(t, tc.key.Public(), tc.hash)
			if err := verifyBundle(tm, &b); err != nil {
				t.Fatalf("sigstore-go rejects the bundle: %v", err)
			}

			other, err := Generate(ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyBundle(trustedKey(t, other.Public(), crypto.SHA256), &b); err == nil {
				t.Error("bundle verifies with another key")
			}

			for _, part := range []struct {
				name  string
				bytes []byte
			}{
				{"payload", env.Payload},
				{"signature", env.Signatures[0].Sig},
			} {
				for i := range part.bytes {
					part.bytes[i] ^= 0x01
					err := verifyBundle(tm, &b)
					part.bytes[i] ^= 0x01
					if err == nil {
						t.Fatalf("bundle verifies after flipping a bit of %s byte %d", part.name, i)
					}
				}
			}
			if err := verifyBundle(tm, &b); err != nil {
				t.Fatalf("restored bundle no longer verifies: %v", err)
			}
		})
	}
}

func TestSignStatementWithTrustedMaterial(t *testing.T) {
	ctx := context.Background()
	key, err := Generate(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Generate(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted crypto.PublicKey
		wantErr bool
	}{
		{"own key trusted", key.Public(), false},
		{"other key trusted", other.Public(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SignStatement(ctx, key, testStatement(), WithTrustedMaterial(trustedKey(t, tc.trusted, crypto.SHA256)))
			if (err != nil) != tc.wantErr {
				t.Errorf("got error %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestSignStatementRejects(t *testing.T) {
	ctx := context.Background()
	key, err := Generate(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		stmt    string
		wantErr string
	}{
		{"not JSON", "hello", "refusing to sign"},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x"}`, "no subject"},
		{"wrong type", `{"_type":"x","subject":[{"digest":{"sha256":"` + strings.Repeat("a", 64) + `"}}],"predicateType":"x"}`, "_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SignStatement(ctx, key, []byte(tc.stmt))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestKeypair(t *testing.T) {
	t.Parallel()
	p256, _ := Generate(ECDSAP256)
	ed, _ := Generate(Ed25519)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		key     crypto.Signer
		hash    crypto.Hash
		hashAlg protocommon.HashAlgorithm
		details protocommon.PublicKeyDetails
		keyAlg  string
	}{
		{"ecdsa-p256", p256, crypto.SHA256, protocommon.HashAlgorithm_SHA2_256, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, "ECDSA"},
		{"ecdsa-p384", p384, crypto.SHA384, protocommon.HashAlgorithm_SHA2_384, protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, "ECDSA"},
		{"ecdsa-p521", p521, crypto.SHA512, protocommon.HashAlgorithm_SHA2_512, protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512, "ECDSA"},
		{"ed25519", ed, crypto.Hash(0), protocommon.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED, protocommon.PublicKeyDetails_PKIX_ED25519, "ED25519"},
		{"rsa-2048", rsa2048, crypto.SHA256, protocommon.HashAlgorithm_SHA2_256, protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, "RSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kp, err := NewKeypair(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if kp.GetHashAlgorithm() != tc.hashAlg || kp.GetSigningAlgorithm() != tc.details || kp.GetKeyAlgorithm() != tc.keyAlg {
				t.Errorf("got %v %v %q, want %v %v %q", kp.GetHashAlgorithm(), kp.GetSigningAlgorithm(), kp.GetKeyAlgorithm(), tc.hashAlg, tc.details, tc.keyAlg)
			}
			sum, _ := pkixDigest(tc.key.Public())
			if got, want := string(kp.GetHint()), base64.StdEncoding.EncodeToString(sum[:]); got != want {
				t.Errorf("hint %s, want %s", got, want)
			}
			pemStr, err := kp.GetPublicKeyPem()
			if err != nil {
				t.Fatal(err)
			}
			if pub, err := ParsePublicKey([]byte(pemStr)); err != nil || !equalPublic(pub, kp.GetPublicKey()) {
				t.Errorf("GetPublicKeyPem does not hold the key: %v", err)
			}
			msg := []byte("message")
			sig, signed, err := kp.SignData(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := signature.LoadVerifier(tc.key.Public(), tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifySignature(strings.NewReader(string(sig)), strings.NewReader(string(msg))); err != nil {
				t.Errorf("sigstore verifier rejects the signature: %v", err)
			}
			if tc.hash == 0 && string(signed) != string(msg) {
				t.Error("Ed25519 did not sign the message itself")
			}
			if tc.hash != 0 && len(signed) != tc.hash.Size() {
				t.Errorf("signed %d bytes, want a %d byte digest", len(signed), tc.hash.Size())
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		if _, err := NewKeypair(nil); err == nil {
			t.Error("NewKeypair(nil) succeeded")
		}
	})
}

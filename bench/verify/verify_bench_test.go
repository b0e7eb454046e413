package verifybench

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/verify"
)

type fixture struct {
	bundleJSON []byte
	tm         root.TrustedMaterial
	art        verify.Artifact
	pub        *ecdsa.PublicKey
	pae, sig   []byte
}

// keySigned signs a small SLSA v1 statement with an ephemeral ECDSA P-256
// key into a bundle v0.3 (DSSE, public key, no log entry, no timestamp).
func keySigned(b *testing.B) fixture {
	b.Helper()
	sum := sha256.Sum256([]byte("artifact"))
	digest := hex.EncodeToString(sum[:])
	st, err := attest.NewStatement(
		[]attest.Subject{{Name: "artifact", Digest: map[string]string{"sha256": digest}}},
		attest.PredicateSLSAv1,
		attest.ProvenanceV1{
			BuildDefinition: attest.BuildDefinition{
				BuildType:          attest.BuildTypeCustody,
				ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, Source: attest.CustodySource{URI: "git+https://github.com/org/repo", Ref: "refs/tags/v1"}},
			},
			RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builder/ci@v1"}},
		})
	if err != nil {
		b.Fatal(err)
	}
	payload, err := st.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		b.Fatal(err)
	}
	data := &sign.DSSEData{Data: payload, PayloadType: attest.PayloadType}
	pb, err := sign.Bundle(data, kp, sign.BundleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	bj, err := protojson.Marshal(pb)
	if err != nil {
		b.Fatal(err)
	}
	tm, err := verify.PublicKeyMaterial(kp.GetPublicKey())
	if err != nil {
		b.Fatal(err)
	}
	return fixture{
		bundleJSON: bj,
		tm:         tm,
		art:        verify.Artifact{Digests: map[string]string{"sha256": digest}},
		pub:        kp.GetPublicKey().(*ecdsa.PublicKey),
		pae:        data.PreAuthEncoding(),
		sig:        pb.GetDsseEnvelope().GetSignatures()[0].GetSig(),
	}
}

// BenchmarkVerifyKeySigned is one full verification per op: bundle bytes →
// parsed bundle → signature → statement, subject and provenance checks →
// Report.
func BenchmarkVerifyKeySigned(b *testing.B) {
	f := keySigned(b)
	req := verify.Requirements{SourceURI: "github.com/org/repo", SourceRef: "refs/tags/v1", BuilderID: "https://custody.dev/builder/ci"}
	ctx := context.Background()
	b.SetBytes(int64(len(f.bundleJSON)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := verify.Verify(ctx, f.bundleJSON, f.art, f.tm, req)
		if err != nil || !rep.Verified {
			b.Fatalf("not verified: %v %+v", err, rep)
		}
	}
}

// BenchmarkECDSAVerifyBaseline is the irreducible part of the same check:
// SHA-256 of the DSSE pre-authentication encoding and ecdsa.VerifyASN1.
func BenchmarkECDSAVerifyBaseline(b *testing.B) {
	f := keySigned(b)
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(f.pae)
		if !ecdsa.VerifyASN1(f.pub, h[:], f.sig) {
			b.Fatal("signature does not verify")
		}
	}
}

// BenchmarkParseBundle is only the protojson parse and validation of the
// bundle in sigstore-go, the largest cost besides the signature.
func BenchmarkParseBundle(b *testing.B) {
	f := keySigned(b)
	b.ReportAllocs()
	for b.Loop() {
		var bu bundle.Bundle
		if err := bu.UnmarshalJSON(f.bundleJSON); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyKeylessDelegator verifies a genuine SLSA GitHub generator
// bundle (certificate chain, SCT, Rekor inclusion proof and SET) for
// comparison.
func BenchmarkVerifyKeylessDelegator(b *testing.B) {
	const dir = "../../testdata/corpus/"
	bj, err := os.ReadFile(dir + "delegator-v2.0.0-push-v13.0.30.sigstore.json")
	if err != nil {
		b.Fatal(err)
	}
	tm, err := verify.LoadTrustedRoot(dir + "public-good-trusted_root.json")
	if err != nil {
		b.Fatal(err)
	}
	art := verify.Artifact{Digests: map[string]string{"sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}}
	req := verify.Requirements{
		CertificateIdentity:   "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v2.0.0",
		CertificateOIDCIssuer: "https://token.actions.githubusercontent.com",
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rep, err := verify.Verify(ctx, bj, art, tm, req)
		if err != nil || !rep.Verified {
			b.Fatalf("not verified: %v", err)
		}
	}
}

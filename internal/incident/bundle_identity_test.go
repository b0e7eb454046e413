package incident

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/verify"
)

const (
	corpus   = "../../testdata/corpus"
	delegate = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/"
	trw      = "https://github.com/slsa-framework/example-trw/.github/workflows/builder_high-perms_slsa3.yml@refs/tags/"
	// githubActions is the issuer of the corpus's keyless bundles.
	githubActions = "https://token.actions.githubusercontent.com"
)

// Keyless bundles of every media type carry the signer's certificate:
// v0.1 and v0.2 as an x509CertificateChain, v0.3 as a single certificate.
// FromBundle reads the identity from either (an identity it missed would
// leave the identity's artifacts unquarantined), and the log entry,
// verified against the public-good root, proves the signing time.
func TestFromBundleKeylessIdentity(t *testing.T) {
	tm, err := verify.LoadTrustedRoot(filepath.Join(corpus, "public-good-trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, identity, builder string
		integrated              time.Time
	}{
		{"delegator-v1.10.0-push-v13.0.30.sigstore.json", delegate + "v1.10.0", trw + "v1.10.0", time.Date(2024, 3, 21, 12, 6, 14, 0, time.UTC)},
		{"delegator-v1.10.0-workflow_dispatch.sigstore.json", delegate + "v1.10.0", trw + "v1.10.0", time.Date(2024, 3, 21, 12, 5, 41, 0, time.UTC)},
		{"delegator-v2.0.0-push-v13.0.30.sigstore.json", delegate + "v2.0.0", trw + "v2.0.0", time.Date(2024, 4, 22, 21, 36, 13, 0, time.UTC)},
		{"delegator-v2.0.0-workflow_dispatch.sigstore.json", delegate + "v2.0.0", trw + "v2.0.0", time.Date(2024, 4, 22, 21, 35, 26, 0, time.UTC)},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(corpus, c.file))
			if err != nil {
				t.Fatal(err)
			}
			e, err := FromBundle(c.file, b, tm, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if e.SignerIdentity != c.identity {
				t.Errorf("identity = %q, want %q", e.SignerIdentity, c.identity)
			}
			if e.BuilderID != c.builder {
				t.Errorf("builder = %q, want %q", e.BuilderID, c.builder)
			}
			if !e.ProvenAt.Equal(c.integrated) || e.Proof != "log entry" {
				t.Errorf("proven %v by %q, want %v by log entry", e.ProvenAt, e.Proof, c.integrated)
			}
			if !(Selector{Identity: c.identity, Issuer: githubActions}).Matches(e) {
				t.Errorf("--identity %s does not match its own bundle", c.identity)
			}
			// the SAN is compared exactly: no prefix, no other tag
			for _, other := range []string{strings.TrimSuffix(c.identity, "@refs/tags/v1.10.0"), delegate + "v9.9.9", c.identity + "x"} {
				if other != c.identity && (Selector{Identity: other, Issuer: githubActions}).Matches(e) {
					t.Errorf("--identity %s matches %s", other, c.identity)
				}
			}
			// and so is the issuer: the same SAN from another issuer is
			// another signer
			for _, iss := range []string{"", "https://token.actions.githubusercontent.com/", "https://evil.example"} {
				if (Selector{Identity: c.identity, Issuer: iss}).Matches(e) {
					t.Errorf("--identity %s with issuer %q matches a bundle of %s", c.identity, iss, githubActions)
				}
			}
		})
	}
}

// A DSSE bundle whose certificate names its signer with an otherName SAN
// (Fulcio's username identities): FromBundle reads it as verification and
// custody inspect do.
func TestFromBundleOtherNameIdentity(t *testing.T) {
	var dsse, other map[string]any
	for f, v := range map[string]*map[string]any{"dsse.sigstore.json": &dsse, "othername.sigstore.json": &other} {
		b, err := os.ReadFile(filepath.Join(corpus, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	// the DSSE envelope with the otherName certificate, as a v0.3 bundle
	// with no log entry (FromBundle does not verify signatures)
	cert := other["verificationMaterial"].(map[string]any)["certificate"]
	b, err := json.Marshal(map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{"certificate": cert, "timestampVerificationData": map[string]any{}},
		"dsseEnvelope":         dsse["dsseEnvelope"],
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := FromBundle("othername-dsse", b, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if e.SignerIdentity != "foo!oidc.local" {
		t.Errorf("identity = %q, want foo!oidc.local", e.SignerIdentity)
	}
}

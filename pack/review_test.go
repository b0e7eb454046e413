package pack_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/verify"
)

const corpus = "../testdata/corpus/"

// generatorPolicy allows what the SLSA GitHub generator built for
// slsa-framework/example-package: the real keyless bundle of the corpus
// satisfies it when the Sigstore public-good CA and log are trusted.
func generatorPolicy(t *testing.T, f *packtest.Fixture) *policy.Signed {
	t.Helper()
	sp, err := policy.NewSigned([]byte(`apiVersion: custody.dev/policy/v1
environment: prod
version: 1
trustedBuilders: [https://github.com/slsa-framework/example-trw/.github/workflows/builder_high-perms_slsa3.yml@refs/tags/v2.0.0]
signers: [{issuer: https://token.actions.githubusercontent.com, sourceRepository: https://github.com/slsa-framework/example-package}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Sign(context.Background(), f.Admin); err != nil {
		t.Fatal(err)
	}
	return sp
}

// generatorContents is a pack of the generator's artifact for prod with
// its real bundle and generatorPolicy, quarantine checked and clear.
func generatorContents(t *testing.T, f *packtest.Fixture) *pack.Contents {
	t.Helper()
	bundle, err := os.ReadFile(corpus + "delegator-v2.0.0-workflow_dispatch.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	sp := generatorPolicy(t, f)
	c := f.Contents(t)
	c.Artifact = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	c.Bundles = [][]byte{bundle}
	c.SignedPolicy, _ = sp.Marshal()
	c.PolicyDigest = sp.Digest()
	return c
}

// publicGood is the device's own --trusted-root: the public-good CA and
// log that verify the generator's bundle.
func publicGood(t *testing.T) root.TrustedMaterial {
	t.Helper()
	tm, err := verify.LoadTrustedRoot(corpus + "public-good-trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestPackTrustedRootAddsNoTrust: the admins' trust root does not trust
// the Sigstore public-good CA. A packer that puts a trusted root naming
// it (any CA, any log) in the pack must not make the device trust it:
// the device's trust is its trust root and its own --trusted-root, as
// custody policy check's is.
func TestPackTrustedRootAddsNoTrust(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	packersRoot, err := os.ReadFile(corpus + "public-good-trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	c := generatorContents(t, f)
	c.TrustedRoot = packersRoot
	o := f.Options()
	o.Artifact = c.Artifact
	op, err := pack.Open(ctx, f.Build(t, c, f.Packer), o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := op.Decide(ctx, nil, f.Now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed || len(res.Rejected) != 1 {
		t.Fatalf("a CA only the packer vouches for made evidence: allowed %v, rejected %v", res.Allowed, res.Rejected)
	}
	// The device's own trusted root is the device's trust: allowed.
	if res, err = op.Decide(ctx, publicGood(t), f.Now); err != nil || !res.Allowed {
		t.Fatalf("with the device's --trusted-root: %v %+v", err, res)
	}
}

// TestUncheckedQuarantineRefuses: a pack whose packer consulted no
// incident ledger cannot say the artifact is not quarantined, so the
// device does not allow it, however the policy decides (custody policy
// check with a server always consults the server's ledger). A pack
// whose packer consulted one and found nothing allows.
func TestUncheckedQuarantineRefuses(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	for _, tc := range []struct {
		name    string
		q       pack.Quarantine
		allowed bool
		reason  string
	}{
		{"consulted, clear", pack.Quarantine{Checked: true}, true, ""},
		{"consulted, quarantined", pack.Quarantine{Checked: true, Incident: "7"}, false, "incident 7"},
		{"not consulted", pack.Quarantine{}, false, "consulted no incident ledger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := generatorContents(t, f)
			c.Quarantine = tc.q
			o := f.Options()
			o.Artifact = c.Artifact
			op, err := pack.Open(ctx, f.Build(t, c, f.Packer), o)
			if err != nil {
				t.Fatal(err)
			}
			res, err := op.Decide(ctx, publicGood(t), f.Now)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Decision.Allowed {
				t.Fatalf("the policy denies: %+v", res.Decision.Failures)
			}
			reason, _ := res.Refusal()
			var out strings.Builder
			res.WriteText(&out)
			if res.Allowed != tc.allowed || !strings.Contains(reason, tc.reason) || (tc.reason != "" && !strings.Contains(out.String(), tc.reason)) {
				t.Fatalf("allowed %v, refusal %q; want %v, %q\n%s", res.Allowed, reason, tc.allowed, tc.reason, out.String())
			}
		})
	}
}

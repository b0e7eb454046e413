package verify

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"
)

const (
	corpus     = "../testdata/corpus"
	ghIssuer   = "https://token.actions.githubusercontent.com"
	delegatorW = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/"
	trwBuilder = "https://github.com/slsa-framework/example-trw/.github/workflows/builder_high-perms_slsa3.yml"
	npmSHA512  = "46d4e2f74c4877316640000a6fdf8a8b59f1e0847667973e9859f774dd31b8f1e0937813b777fb66a2ac67d50540fe34640966eee9fc2ccca387082b4c85cd3c"
)

func readCorpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publicGood(t testing.TB) root.TrustedMaterial {
	t.Helper()
	tm, err := LoadTrustedRoot(filepath.Join(corpus, "public-good-trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func scaffolding(t testing.TB) root.TrustedMaterial {
	t.Helper()
	tm, err := LoadTrustedRoot(filepath.Join(corpus, "scaffolding-trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func publicKeyValidityKey(t testing.TB) crypto.PublicKey {
	t.Helper()
	blk, _ := pem.Decode(readCorpus(t, "public-key-validity.pem"))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// publicKeyValidityMaterial is the public-key-validity root plus its key.
func publicKeyValidityMaterial(t testing.TB) root.TrustedMaterial {
	t.Helper()
	tr, err := LoadTrustedRoot(filepath.Join(corpus, "public-key-validity-root.json"))
	if err != nil {
		t.Fatal(err)
	}
	km, err := PublicKeyMaterial(publicKeyValidityKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return root.TrustedMaterialCollection{tr, km}
}

type corpusCase struct {
	name   string
	bundle string
	art    Artifact
	req    Requirements
	tm     func(testing.TB) root.TrustedMaterial
	signer string
}

func genuineCases() []corpusCase {
	var cases []corpusCase
	for _, d := range []struct{ ver, run, ref string }{
		{"v1.10.0", "push-v13.0.30", "refs/tags/v13.0.30"},
		{"v1.10.0", "workflow_dispatch", "refs/heads/main"},
		{"v2.0.0", "push-v13.0.30", "refs/tags/v13.0.30"},
		{"v2.0.0", "workflow_dispatch", "refs/heads/main"},
	} {
		base := "delegator-" + d.ver + "-" + d.run
		cases = append(cases, corpusCase{
			name:   base,
			bundle: base + ".sigstore.json",
			art:    Artifact{Path: filepath.Join(corpus, base+".bin")},
			req: Requirements{
				CertificateIdentity:   delegatorW + d.ver,
				CertificateOIDCIssuer: ghIssuer,
				SourceURI:             "github.com/slsa-framework/example-package",
				SourceRef:             d.ref,
				BuilderID:             trwBuilder + "@refs/tags/" + d.ver,
			},
			tm:     publicGood,
			signer: delegatorW + d.ver,
		})
	}
	cases = append(cases,
		corpusCase{
			name:   "npm sigstore.js",
			bundle: "sigstore.js@2.0.0-provenance.sigstore.json",
			art:    Artifact{Digests: map[string]string{"sha512": npmSHA512}},
			req: Requirements{
				CertificateIdentityRegexp: `^https://github\.com/sigstore/sigstore-js/`,
				CertificateOIDCIssuer:     ghIssuer,
				SourceURI:                 "github.com/sigstore/sigstore-js",
				SourceRef:                 "refs/heads/main",
				BuilderID:                 "https://github.com/actions/runner/github-hosted",
			},
			tm: publicGood,
		},
		corpusCase{
			name:   "dsse npm v0.2",
			bundle: "dsse.sigstore.json",
			art:    Artifact{Digests: map[string]string{"sha512": "bbfd372fc9beeb777fe35d05bb10c0c70a9733d366a75fed7dd18866c7391de3ee7e88ba74dd47abf3e15c845e547fcf0e5c3da80854c751554224d3a6d4e55f"}},
			req: Requirements{
				CertificateIdentity:   "brian@dehamer.com",
				CertificateOIDCIssuer: "https://github.com/login/oauth",
				SourceURI:             "https://github.com/github/slsa-provenance.git",
				SourceRef:             "refs/heads/demo",
				BuilderID:             "https://github.com/npm/slsa-provenance",
			},
			tm: publicGood,
		},
		corpusCase{
			name:   "othername message signature",
			bundle: "othername.sigstore.json",
			art:    Artifact{Digests: map[string]string{"sha256": "bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95b"}},
			req:    Requirements{CertificateIdentity: "foo!oidc.local", CertificateOIDCIssuer: "http://oidc.local:8080"},
			tm:     scaffolding,
			signer: "foo!oidc.local",
		},
		corpusCase{
			name:   "public-key-validity",
			bundle: "public-key-validity.sigstore.json",
			art:    Artifact{Digests: map[string]string{"sha256": "6ae8a75555209fd6c44157c0aed8016e763ff435a19cf186f76863140143ff72"}},
			tm:     publicKeyValidityMaterial,
		},
	)
	return cases
}

func mustVerify(t *testing.T, c corpusCase, bundleJSON []byte) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), bundleJSON, c.art, c.tm(t), c.req)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func dump(r *Report) string {
	b, _ := json.MarshalIndent(r.Checks, "", "  ")
	return string(b)
}

func TestGenuineCorpus(t *testing.T) {
	for _, c := range genuineCases() {
		t.Run(c.name, func(t *testing.T) {
			rep := mustVerify(t, c, readCorpus(t, c.bundle))
			if !rep.Verified {
				t.Fatalf("not verified:\n%s", dump(rep))
			}
			if c.signer != "" && rep.Signer != c.signer {
				t.Errorf("Signer = %q, want %q", rep.Signer, c.signer)
			}
			t.Logf("signer %q issuer %q\n%s", rep.Signer, rep.Issuer, dump(rep))
		})
	}
}

// TestSourceAndBuilderNotRequired: a report that verifies without source
// and builder requirements says they were not checked, rather than
// leaving them out as if nothing were there to check.
func TestSourceAndBuilderNotRequired(t *testing.T) {
	c := genuineCases()[2]
	rep := mustVerify(t, c, readCorpus(t, c.bundle))
	if !rep.Verified || len(rep.NotChecked()) != 0 {
		t.Fatalf("with every requirement: verified %v, not checked %v\n%s", rep.Verified, rep.NotChecked(), dump(rep))
	}
	c.req.SourceURI, c.req.SourceRef, c.req.BuilderID = "", "", ""
	rep = mustVerify(t, c, readCorpus(t, c.bundle))
	if !rep.Verified {
		t.Fatalf("not verified:\n%s", dump(rep))
	}
	if got := strings.Join(rep.NotChecked(), ","); got != CheckSourceURI+","+CheckBuilderID {
		t.Fatalf("not checked = %q, want source-uri and builder-id\n%s", got, dump(rep))
	}
	if rep.Passed(CheckSourceURI) || rep.Passed(CheckBuilderID) {
		t.Fatal("a check that did not run reads as passed")
	}
}

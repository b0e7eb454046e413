package policy

import (
	"strings"
	"testing"
)

const ghIssuer = "https://token.actions.githubusercontent.com"

// keylessPolicy names the signer by issuer, repository, ref and workflow.
const keylessPolicy = `apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [https://custody.dev/builders/local]
signers:
  - issuer: ` + ghIssuer + `
    sourceRepository: https://github.com/octo-org/app
    ref: refs/heads/main
    workflow: .github/workflows/release.yml
`

// A policy names a keyless signer by issuer and certificate extensions;
// a certificate from another repository, ref, workflow or issuer is not
// that signer, nor is one without extensions.
func TestKeylessSignerByExtensions(t *testing.T) {
	p := mustParse(t, keylessPolicy)
	good := &CertificateFacts{SourceRepository: "https://github.com/octo-org/app", Ref: "refs/heads/main",
		BuildSignerURI: "https://github.com/octo-org/app/.github/workflows/release.yml@refs/heads/main"}
	signer := Principal{Identity: good.BuildSignerURI, Issuer: ghIssuer}
	with := func(edit func(s *Signature)) Signature {
		s := sig(signer)
		c := *good
		s.Certificate = &c
		if edit != nil {
			edit(&s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		sig  Signature
		want bool
	}{
		{"the release workflow on main", with(nil), true},
		{"another repository", with(func(s *Signature) { s.Certificate.SourceRepository = "https://github.com/evil/app" }), false},
		{"another branch", with(func(s *Signature) { s.Certificate.Ref = "refs/heads/feature" }), false},
		{"another workflow", with(func(s *Signature) {
			s.Certificate.BuildSignerURI = "https://github.com/octo-org/app/.github/workflows/other.yml@refs/heads/main"
		}), false},
		{"another issuer", with(func(s *Signature) { s.Signer.Issuer = "https://gitlab.com" }), false},
		{"no certificate facts", with(func(s *Signature) { s.Certificate = nil }), false},
		{"a key", sig(alice), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.trustedSigner(tc.sig); got != tc.want {
				t.Fatalf("trustedSigner = %v, want %v", got, tc.want)
			}
		})
	}
	if s := p.Signers[0].String(); !strings.Contains(s, "repository https://github.com/octo-org/app") || !strings.Contains(s, ghIssuer) {
		t.Fatalf("String() = %q", s)
	}
}

func TestKeylessSignerParse(t *testing.T) {
	for name, signer := range map[string]string{
		"no issuer":      "{sourceRepository: https://github.com/a/b}",
		"no repository":  "{issuer: " + ghIssuer + ", ref: refs/heads/main}",
		"key and ref":    "{keyId: 1111111111111111111111111111111111111111111111111111111111111111, ref: refs/heads/main}",
		"malformed glob": "{issuer: " + ghIssuer + ", sourceRepository: https://github.com/a/b, ref: '['}",
	} {
		doc := strings.Replace(minimal, "signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]", "signers: ["+signer+"]", 1)
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

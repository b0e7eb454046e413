package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/ca/catest"
)

// FuzzParseSigningCertRequest: any body is parsed or refused with
// ErrRequest, never a panic.
func FuzzParseSigningCertRequest(f *testing.F) {
	f.Add([]byte(`{"credentials":{"oidcIdentityToken":"a.b.c"},"publicKeyRequest":{"publicKey":{"algorithm":"ECDSA","content":"x"},"proofOfPossession":"AAAA"}}`))
	f.Add([]byte(`{"certificateSigningRequest":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ca.ParseSigningCertRequest(b)
		if err != nil {
			if !errors.Is(err, ca.ErrRequest) {
				t.Fatalf("error %v does not wrap ErrRequest", err)
			}
			return
		}
		_ = r.Token("Bearer x")
		if r.PublicKeyRequest != nil && r.PublicKeyRequest.PublicKey != nil {
			ca.CheckProof(&ca.Principal{Challenge: "s"}, r.PublicKeyRequest.PublicKey.Algorithm,
				[]byte(r.PublicKeyRequest.PublicKey.Content), r.PublicKeyRequest.ProofOfPossession)
		}
		if len(r.CertificateSigningRequest) > 0 {
			ca.CheckCSR(r.CertificateSigningRequest)
		}
	})
}

// FuzzVerify: any token is refused with ErrToken or ErrDenied unless it
// is signed by the issuer's key.
func FuzzVerify(f *testing.F) {
	is, err := catest.New()
	if err != nil {
		f.Fatal(err)
	}
	defer is.Close()
	dir := f.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, is.JWKS(), 0o600); err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _ := ca.GenerateChain(key, time.Now())
	a, err := ca.New(ca.Config{Issuers: []ca.Issuer{{URL: is.URL(), Kind: ca.KindGitHubActions, JWKSFile: jwks,
		Repositories: []string{"octo-org/*"}}}, Key: key, Chain: chain, CTKey: key,
		Record: func(context.Context, *ca.Principal, *x509.Certificate) error { return nil }})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := is.Token(is.Claims(catest.Workflow{Repository: "octo-org/app", Workflow: ".github/workflows/r.yml", Ref: "refs/heads/main"}))
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := a.Verify(context.Background(), tok)
		if err != nil && !errors.Is(err, ca.ErrToken) && !errors.Is(err, ca.ErrDenied) {
			t.Fatalf("error %v wraps neither ErrToken nor ErrDenied", err)
		}
	})
}

// FuzzParseIssuers: any issuers file parses into valid entries or is
// refused.
func FuzzParseIssuers(f *testing.F) {
	f.Add([]byte("issuers:\n- url: https://token.actions.githubusercontent.com\n  kind: github-actions\n  repositories: [a/*]\n"))
	f.Add([]byte(`{"issuers":[{"url":"https://x.test","kind":"email","identities":["*@x.test"]}]}`))
	f.Add([]byte("issuers:\n- url: https://login.x.test\n  kind: email\n  identities: ['*@x.test']\n  mfa: optional\n  mfaAcr: [urn:x:mfa]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		iss, err := ca.ParseIssuers(b)
		if err == nil && len(iss) == 0 {
			t.Fatal("no error and no issuer")
		}
		for _, i := range iss { // people's certificates never lose MFA by omission
			if i.Kind == ca.KindEmail && i.MFA != ca.MFARequired && i.MFA != ca.MFAOptional {
				t.Fatalf("email issuer %s with mfa %q", i.URL, i.MFA)
			}
		}
	})
}

package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/ca/catest"
)

const (
	repo     = "octo-org/app"
	workflow = ".github/workflows/release.yml"
	mainRef  = "refs/heads/main"
)

func startIssuer(t *testing.T) *catest.Issuer {
	t.Helper()
	is, err := catest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

// recorder remembers the precertificates the authority recorded.
type recorder struct {
	mu   sync.Mutex
	pres []*x509.Certificate
	fail error
}

func (r *recorder) record(_ context.Context, _ *ca.Principal, pre *x509.Certificate) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.pres = append(r.pres, pre)
	return nil
}

func newAuthority(t *testing.T, rec *recorder, issuers ...ca.Issuer) *ca.Authority {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := ca.GenerateChain(key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		rec = &recorder{}
	}
	a, err := ca.New(ca.Config{Issuers: issuers, Key: key, Chain: chain, CTKey: ctKey, Record: rec.record})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func githubIssuer(is *catest.Issuer) ca.Issuer {
	return ca.Issuer{URL: is.URL(), Kind: ca.KindGitHubActions, Repositories: []string{"octo-org/*"},
		Workflows: []string{"octo-org/*/.github/workflows/release.yml@refs/heads/main"}}
}

func mainWorkflow() catest.Workflow {
	return catest.Workflow{Repository: repo, Workflow: workflow, Ref: mainRef}
}

func token(t *testing.T, is *catest.Issuer, edit func(map[string]any)) string {
	t.Helper()
	c := is.Claims(mainWorkflow())
	if edit != nil {
		edit(c)
	}
	tok, err := is.Token(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// proof is a key and its proof of possession for challenge.
func proof(t *testing.T, challenge string) (*ecdsa.PrivateKey, []byte, []byte) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sum := sha256.Sum256([]byte(challenge))
	sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), sig
}

// A GitHub Actions job's token gets a certificate that names its workflow
// as Fulcio would, carries an SCT that verifies against the CT key, and
// chains to the CA; the precertificate was recorded first.
func TestIssueGitHubActions(t *testing.T) {
	is := startIssuer(t)
	rec := &recorder{}
	a := newAuthority(t, rec, githubIssuer(is))
	ctx := context.Background()
	p, err := a.Verify(ctx, token(t, is, nil))
	if err != nil {
		t.Fatal(err)
	}
	wantSAN := "https://github.com/octo-org/app/.github/workflows/release.yml@refs/heads/main"
	if p.SAN != wantSAN || p.Challenge != "repo:octo-org/app:ref:refs/heads/main" {
		t.Fatalf("principal SAN %q challenge %q", p.SAN, p.Challenge)
	}
	_, pubPEM, sig := proof(t, p.Challenge)
	pub, err := ca.CheckProof(p, "ECDSA", pubPEM, sig)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Issue(ctx, p, pub)
	if err != nil {
		t.Fatal(err)
	}
	cert := iss.Cert
	if len(cert.URIs) != 1 || cert.URIs[0].String() != wantSAN {
		t.Fatalf("SAN %v", cert.URIs)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != ca.DefaultValidity {
		t.Fatalf("valid for %s", d)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.Chain()[len(a.Chain())-1])
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: cert.NotBefore, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		t.Fatalf("chain: %v", err)
	}
	ext, err := certificate.ParseExtensions(cert.Extensions)
	if err != nil {
		t.Fatal(err)
	}
	want := certificate.Extensions{
		Issuer: is.URL(), GithubWorkflowTrigger: "push", GithubWorkflowSHA: strings.Repeat("a", 40), GithubWorkflowName: "Release",
		GithubWorkflowRepository: repo, GithubWorkflowRef: mainRef, BuildSignerURI: wantSAN, BuildSignerDigest: strings.Repeat("a", 40),
		RunnerEnvironment: "github-hosted", SourceRepositoryURI: "https://github.com/octo-org/app", SourceRepositoryDigest: strings.Repeat("a", 40),
		SourceRepositoryRef: mainRef, SourceRepositoryIdentifier: "1001", SourceRepositoryOwnerURI: "https://github.com/octo-org",
		SourceRepositoryOwnerIdentifier: "2002", BuildConfigURI: wantSAN, BuildConfigDigest: strings.Repeat("a", 40), BuildTrigger: "push",
		RunInvocationURI: "https://github.com/octo-org/app/actions/runs/4242/attempts/1", SourceRepositoryVisibilityAtSigning: "private",
	}
	if ext != want {
		t.Fatalf("extensions\n got %+v\nwant %+v", ext, want)
	}
	verifySCT(t, a, cert)
	if len(rec.pres) != 1 || rec.pres[0].SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("recorded %d precertificates", len(rec.pres))
	}
}

func verifySCT(t *testing.T, a *ca.Authority, cert *x509.Certificate) {
	t.Helper()
	leaf, err := ctx509.ParseCertificate(cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := ctx509.ParseCertificate(a.Chain()[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.SCTList.SCTList) != 1 {
		t.Fatalf("%d SCTs embedded", len(leaf.SCTList.SCTList))
	}
	var sct ct.SignedCertificateTimestamp
	if rest, err := cttls.Unmarshal(leaf.SCTList.SCTList[0].Val, &sct); err != nil || len(rest) > 0 {
		t.Fatalf("SCT: %v", err)
	}
	if err := ctutil.VerifySCT(a.CTPublicKey(), []*ctx509.Certificate{leaf, issuer}, &sct, true); err != nil {
		t.Fatalf("SCT does not verify: %v", err)
	}
}

// An email token (a person) gets an email SAN; one whose email is not
// verified gets nothing.
func TestIssueEmail(t *testing.T) {
	is := startIssuer(t)
	a := newAuthority(t, nil, ca.Issuer{URL: is.URL(), Kind: ca.KindEmail, Identities: []string{"*@example.com"}})
	person := func(verified bool, email string) string {
		now := time.Now()
		tok, err := is.Token(map[string]any{"iss": is.URL(), "aud": "sigstore", "sub": "u-1", "email": email,
			"email_verified": verified, "amr": []string{"pwd", "otp"}, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	p, err := a.Verify(context.Background(), person(true, "alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Email || p.SAN != "alice@example.com" || p.Challenge != "alice@example.com" {
		t.Fatalf("principal %+v", p)
	}
	_, pubPEM, sig := proof(t, p.Challenge)
	pub, err := ca.CheckProof(p, "", pubPEM, sig)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := a.Issue(context.Background(), p, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := issued.Cert.EmailAddresses; len(got) != 1 || got[0] != "alice@example.com" {
		t.Fatalf("email SAN %v", got)
	}
	for _, tc := range []struct {
		name, email string
		verified    bool
		want        error
	}{
		{"unverified", "alice@example.com", false, ca.ErrToken},
		{"other domain", "mallory@evil.test", true, ca.ErrDenied},
		{"two addresses", "alice@example.com,mallory@evil.test", true, ca.ErrToken},
		{"newline", "alice@example.com\nURI:https://evil", true, ca.ErrToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Verify(context.Background(), person(tc.verified, tc.email)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// A person's certificate signs approvals, an approver action: an email
// issuer certifies only tokens that show multi-factor authentication (an
// RFC 8176 second factor in amr, or an acr the entry names), unless the
// entry says mfa: optional. The refusal says what is missing and how to
// get it.
func TestIssueEmailNeedsMFA(t *testing.T) {
	is := startIssuer(t)
	entry := ca.Issuer{URL: is.URL(), Kind: ca.KindEmail, Identities: []string{"*@example.com"}, MFAACR: []string{"urn:example:mfa"}}
	a := newAuthority(t, nil, entry)
	optional := entry
	optional.MFA = ca.MFAOptional
	lax := newAuthority(t, nil, optional)
	person := func(amr any, acr string) string {
		now := time.Now()
		c := map[string]any{"iss": is.URL(), "aud": "sigstore", "sub": "u-1", "email": "alice@example.com",
			"email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		if amr != nil {
			c["amr"] = amr
		}
		if acr != "" {
			c["acr"] = acr
		}
		tok, err := is.Token(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name string
		tok  string
		ok   bool
		msg  string
	}{
		{"otp", person([]string{"pwd", "otp"}, ""), true, ""},
		{"password and hardware key", person([]string{"pwd", "hwk"}, ""), true, ""},
		{"mfa", person([]string{"mfa"}, ""), true, ""},
		{"one factor: a code alone", person([]string{"otp"}, ""), false, "amr otp"},
		{"configured acr", person([]string{"pwd"}, "urn:example:mfa"), true, ""},
		{"password only", person([]string{"pwd"}, ""), false, "amr pwd"},
		{"no amr", person(nil, ""), false, "amr none"},
		{"other acr", person([]string{"pwd"}, "urn:example:weak"), false, "multi-factor"},
		{"amr not a list", person("otp", ""), false, "amr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Verify(context.Background(), tc.tok)
			if tc.ok != (err == nil) {
				t.Fatalf("Verify = %v; want ok=%v", err, tc.ok)
			}
			if !tc.ok && (!errors.Is(err, ca.ErrDenied) || !strings.Contains(err.Error(), tc.msg) ||
				!strings.Contains(err.Error(), "alice@example.com") || !strings.Contains(err.Error(), "second factor")) {
				t.Fatalf("refusal %q; want ErrDenied naming the person, %q and what to do", err, tc.msg)
			}
			if _, err := lax.Verify(context.Background(), tc.tok); err != nil {
				t.Fatalf("mfa: optional refused: %v", err)
			}
		})
	}
}

// Every hostile or wrong token is refused with the error that says why.
func TestVerifyRefuses(t *testing.T) {
	is := startIssuer(t)
	other := startIssuer(t)
	a := newAuthority(t, nil, githubIssuer(is))
	ctx := context.Background()
	pubKey, kid := is.Key()
	rsaPub := pubKey.Public().(*rsa.PublicKey)
	otherKey, otherKid := other.Key()
	otherTok := func(edit func(map[string]any)) string {
		c := is.Claims(mainWorkflow())
		if edit != nil {
			edit(c)
		}
		tok, err := catest.SignToken(otherKey, jose.RS256, otherKid, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hs256, err := catest.SignToken(x509.MarshalPKCS1PublicKey(rsaPub), jose.HS256, kid, is.Claims(mainWorkflow()))
	if err != nil {
		t.Fatal(err)
	}
	claims := is.Claims(mainWorkflow())
	payload, _ := json.Marshal(claims)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	for _, tc := range []struct {
		name string
		tok  string
		want error
		msg  string
	}{
		{"wrong audience", token(t, is, func(c map[string]any) { c["aud"] = "someone-else" }), ca.ErrToken, "audience"},
		{"expired", token(t, is, func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
		}), ca.ErrToken, "expired"},
		{"not yet valid", token(t, is, func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), ca.ErrToken, "before"},
		{"other issuer", token(t, is, func(c map[string]any) { c["iss"] = other.URL() }), ca.ErrToken, "not trusted"},
		{"issuer with trailing slash", token(t, is, func(c map[string]any) { c["iss"] = is.URL() + "/" }), ca.ErrToken, "not trusted"},
		{"issuer in upper case", token(t, is, func(c map[string]any) { c["iss"] = strings.ToUpper(is.URL()) }), ca.ErrToken, "not trusted"},
		{"unknown key", otherTok(nil), ca.ErrToken, "no key"},
		{"key of another issuer under a known kid", func() string {
			tok, _ := catest.SignToken(otherKey, jose.RS256, kid, is.Claims(mainWorkflow()))
			return tok
		}(), ca.ErrToken, "verifies"},
		{"alg none", none, ca.ErrToken, ""},
		{"HS256 keyed with the public key", hs256, ca.ErrToken, ""},
		{"repository outside the patterns", token(t, is, func(c map[string]any) {
			c["repository"] = "evil-org/app"
		}), ca.ErrDenied, "repository"},
		{"workflow outside the patterns", token(t, is, func(c map[string]any) {
			c["job_workflow_ref"] = repo + "/.github/workflows/other.yml@" + mainRef
		}), ca.ErrDenied, "workflow"},
		{"dot segments in the workflow", token(t, is, func(c map[string]any) {
			c["job_workflow_ref"] = "octo-org/app/../../evil/x/.github/workflows/release.yml@" + mainRef
		}), ca.ErrToken, "URI"},
		{"percent-encoded dot segments in the workflow", token(t, is, func(c map[string]any) {
			c["job_workflow_ref"] = "octo-org/app/%2e%2E/%2E%2e/evil/x/.github/workflows/release.yml@" + mainRef
		}), ca.ErrToken, "URI"},
		{"newline in a claim", token(t, is, func(c map[string]any) { c["ref"] = "refs/heads/main\nX" }), ca.ErrToken, "control"},
		{"query in a URI claim", token(t, is, func(c map[string]any) { c["repository"] = "octo-org/app?x=1" }), ca.ErrToken, "URI"},
		{"missing claim", token(t, is, func(c map[string]any) { delete(c, "sha") }), ca.ErrToken, "sha"},
		{"huge token", strings.Repeat("a", ca.MaxTokenBytes+1), ca.ErrToken, "over"},
		{"not a JWT", "garbage", ca.ErrToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Verify(ctx, tc.tok)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

// A token valid when first used is refused once it expired: replaying it
// later gets nothing.
func TestReplayAfterExpiry(t *testing.T) {
	is := startIssuer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _ := ca.GenerateChain(key, now)
	a, err := ca.New(ca.Config{Issuers: []ca.Issuer{githubIssuer(is)}, Key: key, Chain: chain, CTKey: key,
		Record: (&recorder{}).record, Now: func() time.Time { return clock() }})
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, is, nil)
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(6 * time.Minute)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ca.ErrToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("replay after expiry: %v", err)
	}
}

// Proofs of possession: missing, over another challenge, by another key,
// and weak or odd keys are refused.
func TestCheckProofRefuses(t *testing.T) {
	p := &ca.Principal{Challenge: "repo:octo-org/app:ref:refs/heads/main"}
	_, pubPEM, sig := proof(t, p.Challenge)
	_, _, otherSig := proof(t, "someone else")
	_, otherPEM, _ := proof(t, p.Challenge)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	pemOf := func(pub crypto.PublicKey) []byte {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name      string
		alg       string
		pub, sig  []byte
		wantInMsg string
	}{
		{"no proof", "ECDSA", pubPEM, nil, "no proof"},
		{"proof over another subject", "ECDSA", pubPEM, otherSig, "does not verify"},
		{"proof by another key", "ECDSA", otherPEM, sig, "does not verify"},
		{"P-224 key", "ECDSA", pemOf(&p224.PublicKey), sig, "P-224"},
		{"RSA-1024 key", "RSA_PSS", pemOf(&rsa1024.PublicKey), sig, "1024"},
		{"algorithm mismatch", "ED25519", pubPEM, sig, "does not match"},
		{"certificate instead of key", "ECDSA", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), sig, "not a PUBLIC KEY"},
		{"garbage key", "ECDSA", []byte("garbage"), sig, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.CheckProof(p, tc.alg, tc.pub, tc.sig)
			if !errors.Is(err, ca.ErrRequest) || !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Fatalf("got %v, want ErrRequest with %q", err, tc.wantInMsg)
			}
		})
	}
}

// Issuers' discovery is not followed through redirects, must name the
// issuer itself, and oversized key sets are refused; a JWKS file works
// without any network.
func TestDiscoveryAndJWKS(t *testing.T) {
	t.Run("redirect", func(t *testing.T) {
		is := startIssuer(t)
		evil := startIssuer(t)
		is.OverrideDiscovery(func(w http.ResponseWriter, r *http.Request) bool {
			http.Redirect(w, r, evil.URL()+"/.well-known/openid-configuration", http.StatusFound)
			return true
		})
		a := newAuthority(t, nil, githubIssuer(is))
		if _, err := a.Verify(context.Background(), token(t, is, nil)); !errors.Is(err, ca.ErrToken) || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("issuer mismatch", func(t *testing.T) {
		is := startIssuer(t)
		is.OverrideDiscovery(func(w http.ResponseWriter, r *http.Request) bool {
			json.NewEncoder(w).Encode(map[string]string{"issuer": "https://elsewhere.test", "jwks_uri": is.URL() + "/.well-known/jwks"})
			return true
		})
		a := newAuthority(t, nil, githubIssuer(is))
		if _, err := a.Verify(context.Background(), token(t, is, nil)); !errors.Is(err, ca.ErrToken) || !strings.Contains(err.Error(), "names issuer") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("huge JWKS", func(t *testing.T) {
		is := startIssuer(t)
		k, _ := is.Key()
		for i := 0; i < 300; i++ {
			is.AddJWKSKey(jose.JSONWebKey{Key: k.Public(), KeyID: strings.Repeat("k", 900) + string(rune('a'+i%26)), Algorithm: "RS256", Use: "sig"})
		}
		a := newAuthority(t, nil, githubIssuer(is))
		if _, err := a.Verify(context.Background(), token(t, is, nil)); !errors.Is(err, ca.ErrToken) || !strings.Contains(err.Error(), "over") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("JWKS file, issuer down", func(t *testing.T) {
		is := startIssuer(t)
		path := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(path, is.JWKS(), 0o600); err != nil {
			t.Fatal(err)
		}
		tok := token(t, is, nil)
		iss := githubIssuer(is)
		iss.JWKSFile = path
		a := newAuthority(t, nil, iss)
		is.Close()
		if _, err := a.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	})
}

// A failure to record the precertificate issues nothing.
func TestIssueNeedsRecord(t *testing.T) {
	is := startIssuer(t)
	rec := &recorder{fail: errors.New("log is down")}
	a := newAuthority(t, rec, githubIssuer(is))
	p, err := a.Verify(context.Background(), token(t, is, nil))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := a.Issue(context.Background(), p, &k.PublicKey); err == nil || !strings.Contains(err.Error(), "log is down") {
		t.Fatalf("got %v", err)
	}
}

func TestParseIssuers(t *testing.T) {
	good := "issuers:\n- url: https://token.actions.githubusercontent.com\n  kind: github-actions\n  repositories: [octo-org/*]\n"
	iss, err := ca.ParseIssuers([]byte(good))
	if err != nil || len(iss) != 1 || iss[0].Audience != "sigstore" || iss[0].BaseURL != "https://github.com" {
		t.Fatalf("%v %+v", err, iss)
	}
	for name, doc := range map[string]string{
		"allows everyone":    "issuers:\n- url: https://x.test\n  kind: github-actions\n",
		"unknown kind":       "issuers:\n- url: https://x.test\n  kind: spiffe\n  identities: [x]\n",
		"unknown field":      "issuers:\n- url: https://x.test\n  kind: email\n  identities: [x]\n  allowAll: true\n",
		"not a URL":          "issuers:\n- url: x.test\n  kind: email\n  identities: [x]\n",
		"twice":              "issuers:\n- {url: https://x.test, kind: email, identities: [x]}\n- {url: https://x.test, kind: email, identities: [y]}\n",
		"bad pattern":        "issuers:\n- url: https://x.test\n  kind: email\n  identities: ['[']\n",
		"email with repo":    "issuers:\n- url: https://x.test\n  kind: email\n  repositories: [a/b]\n",
		"mfa of a CI issuer": "issuers:\n- url: https://x.test\n  kind: github-actions\n  repositories: [a/b]\n  mfa: optional\n",
		"mfa misspelt":       "issuers:\n- url: https://x.test\n  kind: email\n  identities: [x]\n  mfa: no\n",
		"none":               "issuers: []\n",
	} {
		if _, err := ca.ParseIssuers([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A GitLab CI token maps as Fulcio's gitlab-pipeline type does: the SAN is
// the CI config's URI, the repository and run URIs hang off the instance.
func TestIssueGitLab(t *testing.T) {
	is := startIssuer(t)
	a := newAuthority(t, nil, ca.Issuer{URL: is.URL(), Kind: ca.KindGitLab, Repositories: []string{"platform/*"}, Refs: []string{"refs/tags/v*"}})
	now := time.Now()
	claims := map[string]any{"iss": is.URL(), "aud": "sigstore", "sub": "project_path:platform/api:ref_type:tag:ref:v1.2.0",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "project_path": "platform/api", "project_id": "42",
		"namespace_path": "platform", "namespace_id": "7", "ref": "v1.2.0", "ref_type": "tag", "sha": strings.Repeat("b", 40),
		"ci_config_ref_uri": "gitlab.example.com/platform/api//.gitlab-ci.yml@refs/tags/v1.2.0", "ci_config_sha": strings.Repeat("c", 40),
		"pipeline_source": "push", "job_id": "9001", "runner_environment": "gitlab-hosted"}
	tok, err := is.Token(claims)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := certificate.Extensions{Issuer: is.URL(), BuildSignerURI: "https://gitlab.example.com/platform/api//.gitlab-ci.yml@refs/tags/v1.2.0",
		BuildSignerDigest: strings.Repeat("c", 40), RunnerEnvironment: "gitlab-hosted", SourceRepositoryURI: is.URL() + "/platform/api",
		SourceRepositoryDigest: strings.Repeat("b", 40), SourceRepositoryRef: "refs/tags/v1.2.0", SourceRepositoryIdentifier: "42",
		SourceRepositoryOwnerURI: is.URL() + "/platform", SourceRepositoryOwnerIdentifier: "7",
		BuildConfigURI: "https://gitlab.example.com/platform/api//.gitlab-ci.yml@refs/tags/v1.2.0", BuildConfigDigest: strings.Repeat("c", 40),
		BuildTrigger: "push", RunInvocationURI: is.URL() + "/platform/api/-/jobs/9001"}
	if p.Extensions != want || p.SAN != want.BuildSignerURI {
		t.Fatalf("principal\n got %+v\nwant %+v", p.Extensions, want)
	}
	claims["ref"], claims["ref_type"] = "main", "branch"
	tok, _ = is.Token(claims)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ca.ErrDenied) || !strings.Contains(err.Error(), "ref") {
		t.Fatalf("branch outside refs/tags/v*: %v", err)
	}
}

// A CSR is its own proof of possession; a CSR whose signature does not
// verify, or with a weak key, is refused.
func TestCheckCSR(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ca.CheckCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil || !k.PublicKey.Equal(pub) {
		t.Fatalf("good CSR: %v", err)
	}
	bad := append([]byte(nil), der...)
	bad[len(bad)-3] ^= 1
	if _, err := ca.CheckCSR(bad); !errors.Is(err, ca.ErrRequest) {
		t.Fatalf("tampered CSR: %v", err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	wder, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, weak)
	if _, err := ca.CheckCSR(wder); !errors.Is(err, ca.ErrRequest) || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("RSA-1024 CSR: %v", err)
	}
}

// A key the issuer withdraws from its JWKS stops verifying tokens once the
// cached key set is old, without a restart.
func TestWithdrawnKey(t *testing.T) {
	is := startIssuer(t)
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _ := ca.GenerateChain(key, now)
	a, err := ca.New(ca.Config{Issuers: []ca.Issuer{githubIssuer(is)}, Key: key, Chain: chain, CTKey: key,
		Record: (&recorder{}).record, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(context.Background(), token(t, is, nil)); err != nil {
		t.Fatal(err)
	}
	// the issuer rotates: a new key replaces the old one in its JWKS
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.OverrideJWKS(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &other.PublicKey, KeyID: "new", Algorithm: "RS256", Use: "sig"}}})
	tok := token(t, is, func(c map[string]any) {
		c["iat"], c["exp"] = now.Unix(), now.Add(time.Hour).Unix()
	})
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatalf("cached key set, before it is old: %v", err)
	}
	now = now.Add(11 * time.Minute)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ca.ErrToken) {
		t.Fatalf("withdrawn key still verifies: %v", err)
	}
}

// A client cannot keep a withdrawn key trusted by hanging up: a refetch
// its request starts runs to the end even when the request is cancelled,
// so the cancelled request does not count as a fetch that kept the old
// keys (which would put the next refetch another ten minutes away).
func TestWithdrawnKeyRefetchNotAbortable(t *testing.T) {
	is := startIssuer(t)
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _ := ca.GenerateChain(key, now)
	a, err := ca.New(ca.Config{Issuers: []ca.Issuer{githubIssuer(is)}, Key: key, Chain: chain, CTKey: key,
		Record: (&recorder{}).record, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, is, func(c map[string]any) { c["iat"], c["exp"] = now.Unix(), now.Add(time.Hour).Unix() })
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.OverrideJWKS(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &other.PublicKey, KeyID: "new", Algorithm: "RS256", Use: "sig"}}})
	now = now.Add(11 * time.Minute)
	// The attacker's request: cancelled while the server refetches.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	a.Verify(gone, tok)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ca.ErrToken) {
		t.Fatalf("withdrawn key still verifies after a cancelled refetch: %v", err)
	}
}

// The issuers file docs/keyless.md shows is one ParseIssuers takes, with
// people's MFA required by default.
func TestDocsIssuersFile(t *testing.T) {
	b, err := os.ReadFile("../../docs/keyless.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n# issuers.yaml\n")
	doc, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/keyless.md shows no issuers.yaml")
	}
	iss, err := ca.ParseIssuers([]byte(doc))
	if err != nil {
		t.Fatalf("docs/keyless.md's issuers.yaml: %v", err)
	}
	for _, i := range iss {
		if i.Kind == ca.KindEmail && i.MFA != ca.MFARequired {
			t.Errorf("email issuer %s: mfa %q", i.URL, i.MFA)
		}
	}
}

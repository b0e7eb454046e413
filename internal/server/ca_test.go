package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/ca/catest"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/verify"
)

const (
	caRepo     = "octo-org/app"
	caWorkflow = ".github/workflows/release.yml"
	caIdentity = "https://github.com/octo-org/app/.github/workflows/release.yml@refs/heads/main"
)

type caServer struct {
	*server.Server
	url    string
	dir    string
	issuer *catest.Issuer
}

// startCA runs a server whose CA trusts a GitHub-Actions-shaped issuer on
// loopback for octo-org's release workflow on main.
func startCA(t *testing.T, edits ...func(*server.Config)) *caServer {
	t.Helper()
	is, err := catest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	cfg := server.Config{Dir: t.TempDir(), PublicURL: url, Index: new(store.Memory),
		BatchMaxAge: 5 * time.Millisecond, CA: &server.CAConfig{Issuers: []ca.Issuer{{URL: is.URL(), Kind: ca.KindGitHubActions,
			Repositories: []string{"octo-org/*"}, Workflows: []string{"octo-org/*/.github/workflows/release.yml@refs/heads/main"},
			BuilderKey: "builder"}}}}
	for _, e := range edits {
		e(&cfg)
	}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		hs.Close()
		t.Fatal(err)
	}
	hs.Config.Handler = s.Handler()
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	return &caServer{Server: s, url: url, dir: cfg.Dir, issuer: is}
}

func (c *caServer) token(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	claims := c.issuer.Claims(catest.Workflow{Repository: caRepo, Workflow: caWorkflow, Ref: "refs/heads/main"})
	if edit != nil {
		edit(claims)
	}
	tok, err := c.issuer.Token(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func caStatement(t *testing.T) ([]byte, map[string]string) {
	t.Helper()
	sum := sha256.Sum256([]byte("app binary"))
	digest := map[string]string{"sha256": hexString(sum[:])}
	stmt, err := attest.NewStatement([]attest.Subject{{Name: "app", Digest: digest}}, "https://slsa.dev/provenance/v1",
		map[string]any{"buildDefinition": map[string]any{"buildType": "https://custody.dev/build/v1", "externalParameters": map[string]any{}},
			"runDetails": map[string]any{"builder": map[string]any{"id": "https://custody.dev/builder"}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stmt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw, digest
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// A CI job with nothing but its OIDC token signs keylessly with
// sigstore-go's own Fulcio client against the server's CA, logs and
// timestamps through the server with the same token, pushes the bundle,
// and the bundle verifies with sigstore-go (SCT required) and with custody
// against the server's trusted root, naming the workflow and the issuer.
// The certificate is recorded in the log before it was issued.
func TestKeylessSigningThroughCA(t *testing.T) {
	srv := startCA(t)
	ctx := context.Background()
	cl, pb, bundleJSON, digest := keylessBundle(t, srv)
	tr, err := root.NewTrustedRootFromJSON(srv.TrustedRoot())
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.CTLogs()) != 1 || len(tr.FulcioCertificateAuthorities()) != 1 {
		t.Fatalf("trusted root: %d CT logs, %d CAs", len(tr.CTLogs()), len(tr.FulcioCertificateAuthorities()))
	}
	v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithSignedTimestamps(1))
	if err != nil {
		t.Fatal(err)
	}
	san, _ := sgverify.NewSANMatcher(caIdentity, "")
	issuer, _ := sgverify.NewIssuerMatcher(srv.issuer.URL(), "")
	id, _ := sgverify.NewCertificateIdentity(san, issuer, certificateExtensions())
	if _, err := v.Verify(&bundle.Bundle{Bundle: pb}, sgverify.NewPolicy(sgverify.WithoutArtifactUnsafe(), sgverify.WithCertificateIdentity(id))); err != nil {
		t.Fatalf("sigstore-go: %v", err)
	}
	tm, err := srv.TrustedMaterial()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(ctx, bundleJSON, verify.Artifact{Digests: digest}, tm, verify.Requirements{
		CertificateIdentity: caIdentity, CertificateOIDCIssuer: srv.issuer.URL()})
	if err != nil || !rep.Verified {
		t.Fatalf("custody verify: %v %+v", err, rep)
	}
	if _, _, err := cl.Push(ctx, bundleJSON); err != nil {
		t.Fatalf("push with the identity token: %v", err)
	}
	issued := searchAudit(t, srv, "custody-ca/certificate/")
	if len(issued) != 1 {
		t.Fatalf("%d ca.issued audit entries", len(issued))
	}
	pushed, err := srv.Index().Search(ctx, store.Query{SubjectName: "app"})
	if err != nil || len(pushed) != 1 || pushed[0].SignerIdentity != caIdentity {
		t.Fatalf("pushed evidence: %v %+v", err, pushed)
	}
}

// keylessBundle signs the test statement keylessly through srv with
// sigstore-go's own Fulcio client: a CI job's identity token is all it
// holds. It returns the client (with that token) and the bundle.
func keylessBundle(t *testing.T, srv *caServer) (*client.Client, *protobundle.Bundle, []byte, map[string]string) {
	t.Helper()
	tok := srv.token(t, nil)
	cl, err := client.New(srv.url, tok, client.WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, digest := caStatement(t)
	pb, err := sign.Bundle(&sign.DSSEData{Data: raw, PayloadType: attest.PayloadType}, kp, sign.BundleOptions{Context: context.Background(),
		CertificateProvider:        sign.NewFulcio(&sign.FulcioOptions{BaseURL: srv.url, Timeout: 10 * time.Second}),
		CertificateProviderOptions: &sign.CertificateProviderOptions{IDToken: tok},
		TransparencyLogs:           []sign.Transparency{cl.Transparency()},
		TimestampAuthorities:       []*sign.TimestampAuthority{cl.TimestampAuthority()}})
	if err != nil {
		t.Fatalf("keyless signing: %v", err)
	}
	bundleJSON, err := (&bundle.Bundle{Bundle: pb}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return cl, pb, bundleJSON, digest
}

// Stock cosign v3 verifies the keyless bundle against custody's trusted
// root by identity and issuer, SCT included (no --insecure-ignore-sct),
// and refuses it for another identity.
func TestCosignVerifiesKeylessBundle(t *testing.T) {
	cosign := os.Getenv("CUSTODY_TEST_COSIGN")
	if cosign == "" {
		t.Skip("CUSTODY_TEST_COSIGN not set (scripts/test sets it: scripts/tool cosign-v3)")
	}
	srv := startCA(t)
	_, _, bundleJSON, _ := keylessBundle(t, srv)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"app": []byte("app binary"), "app.sigstore.json": bundleJSON, "trusted_root.json": srv.TrustedRoot()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(identity string) (string, error) {
		cmd := exec.Command(cosign, "verify-blob-attestation", "--bundle", "app.sigstore.json", "--new-bundle-format",
			"--trusted-root", "trusted_root.json", "--type", "slsaprovenance1", "--use-signed-timestamps",
			"--certificate-identity", identity, "--certificate-oidc-issuer", srv.issuer.URL(), "app")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(caIdentity); err != nil {
		t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, out)
	}
	if out, err := run(strings.Replace(caIdentity, "release.yml", "other.yml", 1)); err == nil {
		t.Fatalf("cosign accepted another identity:\n%s", out)
	}
}

// certificateExtensions is what a policy naming the repository and ref
// requires of the certificate.
func certificateExtensions() certificate.Extensions {
	return certificate.Extensions{SourceRepositoryURI: "https://github.com/" + caRepo, SourceRepositoryRef: "refs/heads/main"}
}

// searchAudit returns the audit entries about subjects named prefix...
func searchAudit(t *testing.T, srv *caServer, prefix string) []*store.Evidence {
	t.Helper()
	evs, err := srv.Index().Search(context.Background(), store.Query{PredicateType: api.PredicateAudit})
	if err != nil {
		t.Fatal(err)
	}
	var out []*store.Evidence
	for _, ev := range evs {
		for _, sub := range ev.Subjects {
			if strings.HasPrefix(sub.Name, prefix) {
				out = append(out, ev)
			}
		}
	}
	return out
}

// certRequest is a Fulcio v2 request body as cosign's client sends it.
func certRequest(t *testing.T, tok, challenge string, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	req := map[string]any{"publicKeyRequest": map[string]any{
		"publicKey": map[string]any{"algorithm": "ECDSA", "content": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}}
	if tok != "" {
		req["credentials"] = map[string]any{"oidcIdentityToken": tok}
	}
	if challenge != "" {
		sum := sha256.Sum256([]byte(challenge))
		sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		req["publicKeyRequest"].(map[string]any)["proofOfPossession"] = sig
	}
	b, _ := json.Marshal(req)
	return b
}

func post(t *testing.T, url, bearer string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The Fulcio v2 endpoint answers a cosign-shaped request with the
// certificate and the CA's chain, and refuses every wrong request with the
// documented status, issuing and recording nothing.
func TestSigningCertRefusals(t *testing.T) {
	srv := startCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sub := "repo:octo-org/app:ref:refs/heads/main"
	good := srv.token(t, nil)
	code, body := post(t, srv.url+"/api/v2/signingCert", "", certRequest(t, good, sub, key))
	if code != http.StatusOK {
		t.Fatalf("good request: %d %s", code, body)
	}
	var resp ca.SigningCertResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.SignedCertificateEmbeddedSct.Chain.Certificates) != 2 {
		t.Fatalf("answer %v: %s", err, body)
	}
	before := len(searchAudit(t, srv, "custody-ca/certificate/"))
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	other, err := catest.New() // an issuer the server does not trust
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherClaims := srv.issuer.Claims(catest.Workflow{Repository: caRepo, Workflow: caWorkflow, Ref: "refs/heads/main"})
	otherIss := maps.Clone(otherClaims)
	otherIss["iss"] = other.URL()
	byOtherIssuer, _ := other.Token(otherIss)
	otherKey, otherKid := other.Key()
	unknownKey, _ := catest.SignToken(otherKey, jose.RS256, otherKid, otherClaims) // claims of the trusted issuer, a key it never published
	for _, tc := range []struct {
		name   string
		bearer string
		body   []byte
		code   int
		msg    string
	}{
		{"no token", "", certRequest(t, "", sub, key), http.StatusUnauthorized, "missing identity token"},
		{"no proof of possession", "", certRequest(t, good, "", key), http.StatusBadRequest, "no proof of possession"},
		{"proof over another subject", "", certRequest(t, good, "repo:evil/app:ref:refs/heads/main", key), http.StatusBadRequest, "does not verify"},
		{"weak key", "", certRequest(t, good, sub, p224), http.StatusBadRequest, "P-224"},
		{"wrong audience", "", certRequest(t, srv.token(t, func(c map[string]any) { c["aud"] = "other" }), sub, key), http.StatusUnauthorized, "audience"},
		{"expired", "", certRequest(t, srv.token(t, func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-10*time.Minute).Unix()
		}), sub, key), http.StatusUnauthorized, "expired"},
		{"not yet valid", "", certRequest(t, srv.token(t, func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), sub, key),
			http.StatusUnauthorized, "before"},
		{"other issuer", "", certRequest(t, byOtherIssuer, sub, key), http.StatusUnauthorized, "not trusted"},
		{"unknown key", "", certRequest(t, unknownKey, sub, key), http.StatusUnauthorized, "verifies the token"},
		{"repository outside the patterns", "", certRequest(t, srv.token(t, func(c map[string]any) {
			c["repository"] = "evil-org/app"
		}), sub, key), http.StatusForbidden, "not allowed"},
		{"workflow outside the patterns", "", certRequest(t, srv.token(t, func(c map[string]any) {
			c["job_workflow_ref"] = "octo-org/app/.github/workflows/nightly.yml@refs/heads/main"
		}), sub, key), http.StatusForbidden, "workflow"},
		{"token in the header only, no proof", good, certRequest(t, "", "", key), http.StatusBadRequest, "no proof of possession"},
		{"malformed JSON", "", []byte(`{"publicKeyRequest":`), http.StatusBadRequest, "not JSON"},
		{"unknown field", "", []byte(`{"publicKeyRequest":{"publicKey":{"content":"x"}},"admin":true}`), http.StatusBadRequest, "unknown field"},
		// Anyone may call the route: its body was read whole into memory.
		{"oversized body", "", []byte(`{"credentials":{"oidcIdentityToken":"` + strings.Repeat("a", 8<<20) + `"}}`),
			http.StatusRequestEntityTooLarge, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, srv.url+"/api/v2/signingCert", tc.bearer, tc.body)
			if code != tc.code || !strings.Contains(body, tc.msg) || strings.Count(strings.TrimSpace(body), "\n") > 0 {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.msg)
			}
		})
	}
	if after := len(searchAudit(t, srv, "custody-ca/certificate/")); after != before {
		t.Fatalf("refused requests recorded %d certificates", after-before)
	}
	resp2, err := http.Get(srv.url + "/api/v2/trustBundle")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var tb ca.TrustBundle
	if err := json.NewDecoder(resp2.Body).Decode(&tb); err != nil || len(tb.Chains) != 1 || len(tb.Chains[0].Certificates) != 1 {
		t.Fatalf("trust bundle %v %+v", err, tb)
	}
}

// An identity token works where a builder token would, and the signing
// service signs for it with the builder key its issuer entry names; a
// token outside the allowed patterns gets 403, an expired one 401.
func TestIdentityTokenAsBearer(t *testing.T) {
	srv := startCA(t)
	raw, _ := caStatement(t)
	req, _ := json.Marshal(map[string]json.RawMessage{"statement": raw})
	code, body := post(t, srv.url+"/api/v1/sign", srv.token(t, nil), req)
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("sign with identity token: %d %s", code, body)
	}
	code, body = post(t, srv.url+"/api/v1/sign", srv.token(t, func(c map[string]any) { c["repository"] = "evil-org/app" }), req)
	if code != http.StatusForbidden || !strings.Contains(body, "not allowed") {
		t.Fatalf("identity outside the patterns: %d %s", code, body)
	}
	code, body = post(t, srv.url+"/api/v1/sign", srv.token(t, func(c map[string]any) {
		c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-10*time.Minute).Unix()
	}), req)
	if code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Fatalf("expired identity token: %d %s", code, body)
	}
	// without builderKey in its issuer entry, an identity may not use a
	// server key
	unmapped := startCA(t, func(c *server.Config) { c.CA.Issuers[0].BuilderKey = "" })
	code, body = post(t, unmapped.url+"/api/v1/sign", unmapped.token(t, nil), req)
	if code != http.StatusForbidden || !strings.Contains(body, "not mapped to a builder key") {
		t.Fatalf("unmapped identity: %d %s", code, body)
	}
}

// Once the CA ran, the trusted root keeps listing it (served and exported
// from the data directory alike), so certificates it issued still verify
// after it is turned off.
func TestCAStaysInTrustedRoot(t *testing.T) {
	srv := startCA(t)
	withCA, err := root.NewTrustedRootFromJSON(srv.TrustedRoot())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	s, err := server.Open(context.Background(), server.Config{Dir: srv.dir, PublicURL: srv.url, Index: new(store.Memory)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exported, err := server.ExportTrustedRoot(srv.dir, srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"served": s.TrustedRoot(), "exported": exported} {
		checkHasCA(t, name, b, withCA)
	}
}

// checkHasCA checks that the trusted root b holds the CA (and its CT log)
// of withCA.
func checkHasCA(t *testing.T, name string, b []byte, withCA *root.TrustedRoot) {
	t.Helper()
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.FulcioCertificateAuthorities()) != 1 || len(tr.CTLogs()) != 1 ||
		!tr.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Root.Equal(
			withCA.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Root) {
		t.Fatalf("%s trusted root without the CA: %d CAs, %d CT logs", name, len(tr.FulcioCertificateAuthorities()), len(tr.CTLogs()))
	}
}

// An issuer entry that lets its identities use a builder key with the
// audience public Fulcio uses too ("sigstore", the default) is named in a
// warning at start: a CI token a job also sends to Fulcio would be a
// builder token here. An entry with an audience of its own, or without a
// builder key, is not.
func TestCASharedAudienceWarning(t *testing.T) {
	for _, tc := range []struct {
		name, audience, builderKey string
		warn                       bool
	}{
		{"default audience, builder key", "", "builder", true},
		{"sigstore, builder key", ca.DefaultAudience, "builder", true},
		{"own audience, builder key", "custody.example.com", "builder", false},
		{"default audience, no builder key", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			startCA(t, func(c *server.Config) {
				c.CA.Issuers[0].Audience, c.CA.Issuers[0].BuilderKey = tc.audience, tc.builderKey
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			got := strings.Contains(logs.String(), "shares its audience with public Fulcio")
			if got != tc.warn {
				t.Errorf("warning logged %v; want %v. Log:\n%s", got, tc.warn, logs.String())
			}
			if tc.warn && (!strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "builder_key=builder")) {
				t.Errorf("the warning does not name the builder key at level WARN:\n%s", logs.String())
			}
		})
	}
}

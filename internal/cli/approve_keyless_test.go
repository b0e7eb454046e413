package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// A person approves keylessly: hydra's ID token, an ephemeral key
// certified by the server's CA, the approval logged, timestamped and
// pushed; a policy group listing the person by identity and issuer counts
// it, and one who is not in the group is listed without a group.
func TestApproveKeylessHydra(t *testing.T) {
	h := ssotest.StartHydra(t)
	h.Client(t, "custody-cli", "", "http://127.0.0.1/callback")
	data := t.TempDir()
	url := hydraServer(t, server.Config{Dir: data, CA: peopleCA(h)})
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("CUSTODY_TOKEN", "")

	digest := "sha256:" + strings.Repeat("ab", 32)
	approve := func(u ssotest.User) (int, string, string) {
		h.SetUser(u)
		f := filepath.Join(dir, u.Subject+".jwt")
		if err := os.WriteFile(f, []byte(h.IDToken(t, "custody-cli")), 0o600); err != nil {
			t.Fatal(err)
		}
		return runCustody("approve", "--env", "prod", "--digest", digest, "--server", url, "--identity-token", "@"+f, "--reason", "release")
	}
	alice := ssotest.User{Subject: "alice", Email: "alice@example.com", AMR: []string{"pwd", "otp"}}
	if code, out, errs := approve(alice); code != 0 || !strings.Contains(out, "by alice@example.com stored in server:") {
		t.Fatalf("keyless approve = %d %q %q", code, out, errs)
	}
	if code, _, errs := approve(ssotest.User{Subject: "bob", Email: "bob@example.com", AMR: []string{"pwd", "otp"}}); code != 0 {
		t.Fatalf("keyless approve by bob = %d %q", code, errs)
	}
	code, _, errs := approve(ssotest.User{Subject: "eve", Email: "eve@evil.example", AMR: []string{"pwd", "otp"}})
	if code == 0 || !strings.Contains(errs, "eve@evil.example") {
		t.Errorf("approve by an identity the CA does not allow = %d %q; want refused naming it", code, errs)
	}
	// an approval is an approver action: a sign-in without a second
	// factor gets no certificate, and nothing is signed or pushed
	code, _, errs = approve(ssotest.User{Subject: "carol", Email: "carol@example.com", AMR: []string{"pwd"}})
	if code == 0 || !strings.Contains(errs, "require multi-factor authentication: carol@example.com") || !strings.Contains(errs, "second factor") {
		t.Errorf("approve without MFA = %d %q; want refused saying MFA is required", code, errs)
	}

	root, pol := approvalsPolicy(t, dir, url, h.Issuer)
	auditor, err := tokenfile.CreateToken(data, api.RoleAuditor, "", "auditor")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_TOKEN", auditor)
	code, out, errs := runCustody("approvals", "--digest", digest, "--server", url, "--trusted-root", root, "--policy", pol, "--json")
	if code != 0 {
		t.Fatalf("approvals = %d %q %q", code, out, errs)
	}
	var res struct {
		Approvals []approvalView `json:"approvals"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("approvals output %q: %v", out, err)
	}
	views := res.Approvals
	groups := map[string][]string{}
	for _, v := range views {
		groups[v.Approver] = v.Groups
		if !strings.HasPrefix(v.Signer, "identity "+v.Approver+" (issuer "+h.Issuer+")") {
			t.Errorf("approval by %s signed by %q; want the certificate's identity and issuer", v.Approver, v.Signer)
		}
	}
	if len(views) != 2 || len(groups["alice@example.com"]) != 1 || groups["alice@example.com"][0] != "release" || len(groups["bob@example.com"]) != 0 {
		t.Errorf("approvals = %s; want alice's counted for group release, bob's for none", out)
	}
}

// Issue 14's "done when" for people: a person signs in with MFA (custody
// login through hydra, loopback redirect and PKCE) and approves keylessly:
// the certificate names them, the approval is pushed through their session,
// and the audit trail names the person and the session for the certificate
// and the push; a policy group listing them by identity and issuer counts
// the approval. A person who signed in without MFA gets no certificate.
func TestLoginApproveKeylessHydra(t *testing.T) {
	h := ssotest.StartHydra(t)
	h.Client(t, "custody-cli", "", "http://127.0.0.1/callback")
	p, err := sso.New(sso.Config{Issuer: h.Issuer, ClientID: "custody-cli", Roles: map[string]api.Role{"release-approvers": api.RoleApprover}})
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	url := hydraServer(t, server.Config{Dir: data, SSO: p, CA: peopleCA(h)})
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	signInWithHydra(t)

	digest := "sha256:" + strings.Repeat("cd", 32)
	signInAndApprove := func(u ssotest.User) (string, int, string, string) {
		h.SetUser(u)
		_, out, errs := runCustody("login", "--server", url)
		f := filepath.Join(dir, u.Subject+".jwt")
		if err := os.WriteFile(f, []byte(h.IDToken(t, "custody-cli")), 0o600); err != nil {
			t.Fatal(err)
		}
		code, aout, aerrs := runCustody("approve", "--env", "prod", "--digest", digest, "--server", url, "--identity-token", "@"+f, "--reason", "release")
		return out + errs, code, aout, aerrs
	}
	login, code, out, errs := signInAndApprove(ssotest.User{Subject: "alice", Email: "alice@example.com", Groups: []string{"release-approvers"}, AMR: []string{"pwd", "otp"}})
	if !strings.Contains(login, "signed in as alice@example.com via "+h.Issuer+" (with MFA), roles approver") {
		t.Fatalf("login = %q", login)
	}
	if code != 0 || !strings.Contains(out, "by alice@example.com stored in server:") {
		t.Fatalf("keyless approve after login = %d %q %q", code, out, errs)
	}
	_, code, _, errs = signInAndApprove(ssotest.User{Subject: "bob", Email: "bob@example.com", Groups: []string{"release-approvers"}, AMR: []string{"pwd"}})
	if code == 0 || !strings.Contains(errs, "require multi-factor authentication: bob@example.com") {
		t.Errorf("keyless approve without MFA = %d %q; want refused saying MFA is required", code, errs)
	}

	// the audit trail: the certificate and the push, each naming alice,
	// the issuer and her session (the one session.started names)
	auditor, err := tokenfile.CreateToken(data, api.RoleAuditor, "", "auditor")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_TOKEN", auditor)
	code, out, errs = runCustody("audit", "--server", url, "--json")
	if code != 0 {
		t.Fatalf("audit = %d %q", code, errs)
	}
	var trail []struct {
		Action, Actor, Identity, Issuer, Session, SignerIdentity string
		Verified                                                 bool
	}
	if err := json.Unmarshal([]byte(out), &trail); err != nil {
		t.Fatalf("audit --json %q: %v", out, err)
	}
	sessions := map[string]string{} // action → session, alice's entries
	certified, approved := false, false
	for _, e := range trail {
		if e.Identity == "alice@example.com" && e.Issuer == h.Issuer {
			sessions[e.Action] = e.Session
		}
		certified = certified || (e.Action == "ca.issued" && e.Actor == "alice@example.com")
		approved = approved || (e.Action == "approve" && e.SignerIdentity == "alice@example.com" && e.Verified)
	}
	if sessions["session.started"] == "" || sessions["evidence.pushed"] != sessions["session.started"] {
		t.Errorf("alice's audit entries by action and session: %v; want the push in her session. Trail: %s", sessions, out)
	}
	if !certified || !approved {
		t.Errorf("trail: certificate for alice %v, her keyless approval verified %v; want both. Trail: %s", certified, approved, out)
	}

	root, pol := approvalsPolicy(t, dir, url, h.Issuer)
	code, out, errs = runCustody("approvals", "--digest", digest, "--server", url, "--trusted-root", root, "--policy", pol, "--json")
	var res struct {
		Approvals []approvalView `json:"approvals"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Approvals) != 1 || len(res.Approvals[0].Groups) != 1 {
		t.Errorf("approvals = %d %q %q; want alice's, counted for group release", code, out, errs)
	}
}

// peopleCA is a certificate authority for people of h: tokens of the CLI's
// client with an example.com address.
func peopleCA(h *ssotest.Hydra) *server.CAConfig {
	return &server.CAConfig{Issuers: []ca.Issuer{{URL: h.Issuer, Kind: ca.KindEmail, Audience: "custody-cli", Identities: []string{"*@example.com"}}}}
}

// approvalsPolicy writes, into dir, the trusted root of the server at url
// and a policy of prod whose group release is alice@example.com of issuer,
// one approval needed; it returns their paths.
func approvalsPolicy(t *testing.T, dir, url, issuer string) (root, pol string) {
	t.Helper()
	root, pol = filepath.Join(dir, "trusted_root.json"), filepath.Join(dir, "prod.yaml")
	resp, err := http.Get(url + "/api/v1/trusted-root")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := os.WriteFile(root, b, 0o644); err != nil {
		t.Fatal(err)
	}
	policy := "apiVersion: custody.dev/policy/v1\nenvironment: prod\ntrustedBuilders: [https://custody.dev/builders/local]\nsigners: [{identity: https://ci.example/release, issuer: https://ci.example}]\n" +
		"groups:\n  release: [{name: alice, identities: [{identity: alice@example.com, issuer: \"" + issuer + "\"}]}]\n" +
		"approvals: [{group: release, count: 1}]\n"
	if err := os.WriteFile(pol, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, pol
}

package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/server"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	data := t.TempDir()
	s, err := server.Open(context.Background(), server.Config{Dir: data, PublicURL: url, BatchMaxAge: 5 * time.Millisecond,
		CA: &server.CAConfig{Issuers: []ca.Issuer{{URL: h.Issuer, Kind: ca.KindEmail, Audience: "custody-cli", Identities: []string{"*@example.com"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); s.Close() })
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

	root := filepath.Join(dir, "trusted_root.json")
	resp, err := http.Get(url + "/api/v1/trusted-root")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(root, b, 0o644)
	pol := filepath.Join(dir, "prod.yaml")
	os.WriteFile(pol, []byte("apiVersion: custody.dev/policy/v1\nenvironment: prod\ntrustedBuilders: [https://custody.dev/builders/local]\nsigners: [{identity: https://ci.example/release, issuer: https://ci.example}]\n"+
		"groups:\n  release: [{name: alice, identities: [{identity: alice@example.com, issuer: \""+h.Issuer+"\"}]}]\n"+
		"approvals: [{group: release, count: 1}]\n"), 0o644)
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

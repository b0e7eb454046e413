package dashboard_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// envSection returns the environments page's section about env.
func envSection(t *testing.T, page, env string) string {
	t.Helper()
	i := strings.Index(page, `id="env-`+env+`"`)
	if i < 0 {
		t.Fatalf("environments page has no section for %s", env)
	}
	s := page[i:]
	if j := strings.Index(s, "</section>"); j >= 0 {
		s = s[:j]
	}
	return s
}

// TestTrustRootRevocation: the server's builder key is in its custody
// trust root. Two artifacts are built with it, one before and one after the
// time a later trust root version says the key was compromised since; the
// server's TSA proves each signing time. Once that version is pushed, the
// environment running the one signed after the compromise is no longer
// green and its artifact page shows the provenance failing and why; the
// one signed before stays green. An approver key outside the trust root
// (DIR/keys/trusted) keeps working.
func TestTrustRootRevocation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	admin, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := trust.NewDocument([]trust.Key{{PublicKey: admin.Public(), Identity: "admin"}}, 1, time.Now().Add(24*time.Hour).UTC().Truncate(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sign := func() {
		t.Helper()
		if err := doc.Sign(ctx, admin); err != nil {
			t.Fatal(err)
		}
	}
	sign()
	raw, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	approver, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	apub, _ := signer.MarshalPublicKey(approver.Public())
	approverID, _ := gate.KeyID(approver.Public())
	os.MkdirAll(filepath.Join(dir, "keys", "trusted"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "keys", "trusted", "approver.pub"), apub, 0o644); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	s, err := server.Open(ctx, server.Config{Dir: dir, PublicURL: url, TrustRoot: raw, BatchMaxAge: 5 * time.Millisecond, UI: dashboard.ForServer})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	tok := map[api.Role]string{}
	for _, r := range []api.Role{api.RoleAdmin, api.RoleAuditor, api.RoleBuilder, api.RoleApprover, api.RoleDeployer} {
		if tok[r], err = tokenfile.CreateToken(dir, r, "", "test "+string(r)); err != nil {
			t.Fatal(err)
		}
	}
	cl := func(r api.Role) *client.Client {
		c, err := client.New(url, tok[r], client.WithCheckpointDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Version 2 trusts the server's builder key as a builder.
	builderKey, _ := s.BuilderPublicKey(api.DefaultBuilderKey)
	builderKeyID, _ := gate.KeyID(builderKey)
	if err := doc.AddKey(trust.Key{PublicKey: builderKey, Role: trust.RoleBuilder, Identity: "ci"}); err != nil {
		t.Fatal(err)
	}
	sign()
	if _, _, err := cl(api.RoleAdmin).PushTrustRoot(ctx, doc, "alice"); err != nil {
		t.Fatalf("push trust root version 2: %v", err)
	}

	os.MkdirAll(filepath.Join(dir, "policies"), 0o700)
	for _, env := range []string{"before", "after"} {
		pol := fmt.Sprintf(`apiVersion: custody.dev/policy/v1
environment: %s
trustedBuilders: [%s]
signers: [{keyId: %s}]
requireLog: true
requireTimestamp: true
groups:
  release-managers:
    - {name: eve, keyIds: [%s]}
approvals:
  - {group: release-managers, count: 1}
`, env, builderID, builderKeyID, approverID)
		if err := os.WriteFile(filepath.Join(dir, "policies", env+".yaml"), []byte(pol), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// "app before" is signed, then the compromise time passes (a whole
	// second: the TSA's times are whole seconds), then "app after".
	build := cl(api.RoleBuilder)
	if _, err := build.Sign(ctx, provenance(t, "build-1", "dist/app", "app before")); err != nil {
		t.Fatalf("sign provenance: %v", err)
	}
	compromised := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(compromised) + 10*time.Millisecond)
	if _, err := build.Sign(ctx, provenance(t, "build-2", "dist/app", "app after")); err != nil {
		t.Fatalf("sign provenance: %v", err)
	}
	before, after := "sha256:"+digestOf("app before"), "sha256:"+digestOf("app after")
	for env, content := range map[string]string{"before": "app before", "after": "app after"} {
		if _, _, err := cl(api.RoleApprover).Push(ctx, approval(t, approver, env, content)); err != nil {
			t.Fatalf("push approval: %v", err)
		}
	}
	for env, art := range map[string]string{"before": before, "after": after} {
		if _, err := cl(api.RoleDeployer).AppendDeployment(ctx, &store.Deployment{Environment: env, Event: store.EventDeployed,
			Artifact: art, Name: "dist/app", Actor: "release-bot", Time: time.Now()}); err != nil {
			t.Fatalf("append deployment: %v", err)
		}
	}

	_, page := get(t, url+"/ui/", tok[api.RoleAuditor])
	for _, env := range []string{"before", "after"} {
		if sec := envSection(t, page, env); !strings.Contains(sec, `data-status="pass">verified`) {
			t.Fatalf("%s is not green while the builder key is trusted:\n%s", env, sec)
		}
	}

	// Version 3: the builder key compromised since between the two.
	if err := doc.RevokeKey(builderKeyID, compromised); err != nil {
		t.Fatal(err)
	}
	sign()
	if v, _, err := cl(api.RoleAdmin).PushTrustRoot(ctx, doc, "alice"); err != nil || v != 3 {
		t.Fatalf("push trust root version 3: %d, %v", v, err)
	}

	_, page = get(t, url+"/ui/", tok[api.RoleAuditor])
	if sec := envSection(t, page, "before"); !strings.Contains(sec, `data-status="pass">verified`) {
		t.Errorf("before (signed before the compromise, proven by the server's timestamp) is not green:\n%s", sec)
	}
	sec := envSection(t, page, "after")
	if strings.Contains(sec, `data-status="pass"`) || !strings.Contains(sec, `data-status="fail">fails policy`) {
		t.Errorf("after (signed after the compromise) is not shown failing:\n%s", sec)
	}

	_, art := get(t, url+"/ui/artifact/"+after, tok[api.RoleAuditor])
	for _, w := range []string{"No provenance about this artifact verifies now.",
		`<li class="check fail"><b>fail</b> signature: does not verify: signature: signature time outside of public key validity window`} {
		if !strings.Contains(art, w) {
			t.Errorf("artifact page of the artifact signed after the compromise: missing %q\n%s", w, art)
		}
	}
	_, art = get(t, url+"/ui/artifact/"+before, tok[api.RoleAuditor])
	if strings.Contains(art, "No provenance about this artifact verifies now.") || !strings.Contains(art, `<span class="status pass">allowed</span>`) {
		t.Errorf("artifact page of the artifact signed before the compromise does not show it allowed:\n%s", art)
	}
}

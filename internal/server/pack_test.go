package server_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/packer"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// TestPackEndpoint: POST /api/v1/packs makes the pack of an artifact from
// the server's own state, signed with its audit key, for deployer and
// admin tokens only; the pack opens under the server's trust root with
// the audit key pinned, carries the server's evidence and policy, and is
// named in the audit log. Lower roles, bad requests and a missing policy
// are refused and sign nothing.
func TestPackEndpoint(t *testing.T) {
	g := startGovernedWith(t, server.Config{Packs: packer.Loopback})
	ctx := context.Background()
	admin := newClient(t, g.testServer, api.RoleAdmin)
	dep := newClient(t, g.testServer, api.RoleDeployer)
	aud := newClient(t, g.testServer, api.RoleAuditor)
	bundle, err := newClient(t, g.testServer, api.RoleBuilder).Sign(ctx, statement(t, "build-pack", "app"))
	if err != nil {
		t.Fatal(err)
	}
	g.WaitRedFlags() // the build's red flags are evidence of the artifact too
	sum := sha256.Sum256([]byte("app"))
	art := "sha256:" + hex.EncodeToString(sum[:])
	req := api.PackRequest{Artifact: art, Environment: "prod", ValidForSeconds: 3600}

	// No policy for prod yet: refused.
	_, err = dep.Pack(ctx, req)
	wantStatus(t, "pack without a policy", err, http.StatusConflict)

	sp := signedPolicy(t, "1", g.admins[0], g.admins[1])
	if _, err := admin.PushPolicy(ctx, sp, "alice"); err != nil {
		t.Fatal(err)
	}
	// The trust root does not name this server's log yet: a device would
	// refuse the pack's checkpoint, so none is made.
	_, err = dep.Pack(ctx, req)
	wantStatus(t, "pack under a trust root without the server's log", err, http.StatusConflict)
	if err == nil || !strings.Contains(err.Error(), "does not name this server's log") {
		t.Errorf("pack under a trust root without the server's log: %v", err)
	}
	pushServerLog(t, g, admin)

	anon, err := http.Post(g.url+"/api/v1/packs", "application/json", strings.NewReader(`{"artifact":"`+art+`","environment":"prod"}`))
	if err != nil {
		t.Fatal(err)
	}
	anon.Body.Close()
	if anon.StatusCode != http.StatusUnauthorized {
		t.Errorf("pack without a token: %d; want 401", anon.StatusCode)
	}
	for _, role := range []api.Role{api.RoleBuilder, api.RoleApprover, api.RoleAuditor} {
		_, err := newClient(t, g.testServer, role).Pack(ctx, req)
		wantStatus(t, string(role)+" pack", err, http.StatusForbidden)
	}
	for name, bad := range map[string]api.PackRequest{
		"artifact":    {Artifact: "sha256:abc", Environment: "prod"},
		"environment": {Artifact: art, Environment: "../prod"},
		"validity":    {Artifact: art, Environment: "prod", ValidForSeconds: api.MaxPackValidForSeconds + 1},
		"negative":    {Artifact: art, Environment: "prod", ValidForSeconds: -1},
	} {
		_, err := dep.Pack(ctx, bad)
		wantStatus(t, "pack with a bad "+name, err, http.StatusBadRequest)
	}
	audits := func() int {
		es, err := aud.Search(ctx, api.Query{PredicateType: api.PredicateAudit, SubjectName: "pack/prod"})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	if n := audits(); n != 0 {
		t.Fatalf("%d pack audit entries after refused requests; want 0", n)
	}

	b, err := dep.Pack(ctx, req)
	if err != nil {
		t.Fatalf("deployer pack: %v", err)
	}
	auditPEM, err := aud.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		t.Fatal(err)
	}
	auditPub, err := signer.ParsePublicKey(auditPEM)
	if err != nil {
		t.Fatal(err)
	}
	opts := pack.Options{Artifact: art, Environment: "prod", Anchor: g.root, PackKeys: []crypto.PublicKey{auditPub}}
	op, err := pack.Open(ctx, b, opts)
	if err != nil {
		t.Fatalf("Open(server pack) = %v", err)
	}
	switch m := op.Manifest; {
	case len(op.Bundles) != 2 || !slices.ContainsFunc(op.Bundles, func(b []byte) bool { return string(b) == string(bundle) }):
		t.Errorf("pack bundles = %d; want the two bundles of the artifact: its provenance and its red flags", len(op.Bundles))
	case m.PolicyDigest != sp.Digest() || !m.Quarantine.Checked || m.Quarantine.Incident != "":
		t.Errorf("manifest = %+v; want the pushed policy, quarantine checked and clear", m)
	case m.Expires.Sub(m.Created) > time.Hour+time.Second || time.Since(m.Created) > time.Minute:
		t.Errorf("pack made %s, expires %s; want now, valid for an hour", m.Created, m.Expires)
	}
	if n := audits(); n != 1 {
		t.Errorf("%d pack audit entries; want 1", n)
	}
	// The audit key is the only signer: without it pinned (and no packer
	// key in the trust root) the device refuses the pack.
	opts.PackKeys = nil
	if _, err := pack.Open(ctx, b, opts); err == nil || !strings.Contains(err.Error(), "packer key") {
		t.Errorf("Open without the audit key = %v; want refused", err)
	}
	// An admin may ask too; a server without Config.Packs makes none.
	if _, err := admin.Pack(ctx, req); err != nil {
		t.Errorf("admin pack: %v", err)
	}
	_, err = newClient(t, startGovernedWith(t, server.Config{}).testServer, api.RoleDeployer).Pack(ctx, req)
	wantStatus(t, "pack from a server that makes none", err, http.StatusNotImplemented)
}

// pushServerLog pushes the next trust root version, naming the server's
// log, TSA and CA (its trusted root), signed by two admins: as admins do
// before devices take the server's packs.
func pushServerLog(t *testing.T, g *governed, admin *client.Client) {
	t.Helper()
	ctx := context.Background()
	raw, err := g.root.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	next, err := trust.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := admin.TrustedRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	authorities, err := trust.LoadTrustedRoot(tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.SetAuthorities(authorities); err != nil {
		t.Fatal(err)
	}
	signRoot(t, next, g.admins[0], g.admins[1])
	if _, _, err := admin.PushTrustRoot(ctx, next, "alice"); err != nil {
		t.Fatal(err)
	}
}

package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
)

// governed is a server started with a 2-of-3 custody trust root.
type governed struct {
	*testServer
	root   *trust.Document
	admins []*ecdsa.PrivateKey
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startGoverned(t *testing.T) *governed {
	t.Helper()
	return startGovernedWith(t, server.Config{})
}

// startGovernedWith starts a governed server with cfg and the trust root.
func startGovernedWith(t *testing.T, cfg server.Config) *governed {
	t.Helper()
	g := &governed{}
	g.root, cfg.TrustRoot, g.admins = governedRoot(t)
	g.testServer = start(t, cfg)
	return g
}

// governedRoot makes a 2-of-3 custody trust root signed by two of its
// admins.
func governedRoot(t *testing.T) (*trust.Document, []byte, []*ecdsa.PrivateKey) {
	t.Helper()
	var admins []*ecdsa.PrivateKey
	var keys []trust.Key
	for range 3 {
		k := newKey(t)
		admins = append(admins, k)
		keys = append(keys, trust.Key{PublicKey: k.Public(), Identity: "admin"})
	}
	d, err := trust.NewDocument(keys, 2, time.Now().Add(24*time.Hour).UTC().Truncate(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	signRoot(t, d, admins[:2]...)
	raw, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return d, raw, admins
}

func signRoot(t *testing.T, d *trust.Document, keys ...*ecdsa.PrivateKey) {
	t.Helper()
	for _, k := range keys {
		if err := d.Sign(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
}

const prodPolicy = `apiVersion: custody.dev/policy/v1
environment: prod
version: %VERSION%
trustedBuilders: [https://custody.dev/builders/local]
signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]
`

func signedPolicy(t *testing.T, version string, keys ...*ecdsa.PrivateKey) *policy.Signed {
	t.Helper()
	sp, err := policy.NewSigned([]byte(strings.Replace(prodPolicy, "%VERSION%", version, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := sp.Sign(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	return sp
}

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != status {
		t.Errorf("%s = %v; want %d", what, err, status)
	}
}

func policyAudits(t *testing.T, c *client.Client) []*api.Evidence {
	t.Helper()
	es, err := c.Search(context.Background(), api.Query{PredicateType: api.PredicateAudit, SubjectName: "policy/prod"})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestPolicyPush(t *testing.T) {
	g := startGoverned(t)
	ctx := context.Background()
	admin := newClient(t, g.testServer, api.RoleAdmin)
	aud := newClient(t, g.testServer, api.RoleAuditor)

	// One admin of a 2-of-3 root: refused, nothing changed, nothing audited.
	_, err := admin.PushPolicy(ctx, signedPolicy(t, "1", g.admins[0]), "alice")
	wantStatus(t, "push with 1 of 2 signatures", err, http.StatusForbidden)
	_, err = admin.PushPolicy(ctx, signedPolicy(t, "1", g.admins[0], g.admins[0]), "alice")
	wantStatus(t, "push signed twice by one admin", err, http.StatusForbidden)
	_, err = admin.PushPolicy(ctx, signedPolicy(t, "1", g.admins[0], newKey(t)), "alice")
	wantStatus(t, "push signed by an admin and an outsider", err, http.StatusForbidden)
	_, err = aud.Policy(ctx, "prod")
	wantStatus(t, "policy after refused pushes", err, http.StatusNotFound)
	if _, err := os.Stat(filepath.Join(g.dir, "policies", "prod.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prod.yaml after refused pushes: %v; want none", err)
	}
	if n := len(policyAudits(t, aud)); n != 0 {
		t.Errorf("%d policy audit entries after refused pushes; want 0", n)
	}
	// Not an admin token: 403 whatever the signatures.
	_, err = newClient(t, g.testServer, api.RoleBuilder).PushPolicy(ctx, signedPolicy(t, "1", g.admins...), "ci")
	wantStatus(t, "builder token push", err, http.StatusForbidden)
	// Unversioned: 400.
	sp0, _ := policy.NewSigned([]byte(strings.Replace(prodPolicy, "version: %VERSION%\n", "", 1)))
	_, err = admin.PushPolicy(ctx, sp0, "alice")
	wantStatus(t, "unversioned push", err, http.StatusBadRequest)

	// Two admins: accepted, audited, served, written for the dashboard.
	v1 := signedPolicy(t, "1", g.admins[0], g.admins[2])
	ans, err := admin.PushPolicy(ctx, v1, "alice")
	if err != nil || ans.Version != 1 || ans.Existed {
		t.Fatalf("push v1 = %+v, %v", ans, err)
	}
	got, err := aud.Policy(ctx, "prod")
	if err != nil || got.Digest() != v1.Digest() {
		t.Fatalf("Policy = %v, %v; want v1 %s", got, err, v1.Digest())
	}
	if _, err := got.Verify(g.root, time.Now()); err != nil {
		t.Errorf("served policy does not verify: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(g.dir, "policies", "prod.yaml")); err != nil || !bytes.Equal(b, v1.Payload) {
		t.Errorf("prod.yaml = %q, %v; want the signed bytes", b, err)
	}
	audits := policyAudits(t, aud)
	if len(audits) != 1 || "sha256:"+audits[0].Subjects[0].Digest["sha256"] != v1.Digest() {
		t.Fatalf("policy audit entries = %+v; want one naming the policy digest", audits)
	}
	st, err := attest.ParseStatement(dssePayload(t, audits[0].Bundle))
	if err != nil {
		t.Fatal(err)
	}
	var pred api.AuditPredicate
	var change api.PolicyChange
	if err := json.Unmarshal(st.Predicate, &pred); err != nil || json.Unmarshal(pred.Detail, &change) != nil {
		t.Fatalf("audit predicate: %v", err)
	}
	if pred.Action != "policy.changed" || pred.Actor != "alice" || change.Version != 1 || change.Digest != v1.Digest() || len(change.Admins) != 2 {
		t.Errorf("audit = %+v / %+v", pred, change)
	}
	if env, err := policy.ParseSigned(change.Envelope); err != nil || env.Digest() != v1.Digest() {
		t.Errorf("audit detail envelope: %v", err)
	}

	// The same policy again: nothing new. An older or equal version with
	// other content (a replay): 409, nothing changed.
	if ans, err := admin.PushPolicy(ctx, v1, "alice"); err != nil || !ans.Existed {
		t.Errorf("push v1 again = %+v, %v; want existed", ans, err)
	}
	v2 := signedPolicy(t, "2", g.admins[1], g.admins[2])
	if _, err := admin.PushPolicy(ctx, v2, "bob"); err != nil {
		t.Fatalf("push v2: %v", err)
	}
	_, err = admin.PushPolicy(ctx, v1, "mallory")
	wantStatus(t, "replay of v1 over v2", err, http.StatusConflict)
	other := signedPolicy(t, "2  # another v2", g.admins[0], g.admins[1])
	_, err = admin.PushPolicy(ctx, other, "mallory")
	wantStatus(t, "another v2", err, http.StatusConflict)
	if got, _ := aud.Policy(ctx, "prod"); got == nil || got.Digest() != v2.Digest() {
		t.Errorf("current policy after replays is not v2")
	}
	if n := len(policyAudits(t, aud)); n != 2 {
		t.Errorf("%d policy audit entries; want 2 (v1, v2)", n)
	}

	// The audit trail: both changes and the start's trust.changed,
	// verified against the audit key; with another key none verifies.
	trail, err := aud.AuditTrail(ctx, client.AuditQuery{Action: "policy.changed"}, g.AuditPublicKey())
	if err != nil || len(trail) != 2 {
		t.Fatalf("AuditTrail = %d, %v; want 2", len(trail), err)
	}
	for _, e := range trail {
		if !e.Verified || e.Action != "policy.changed" || e.Token != "admin:test admin" {
			t.Errorf("trail entry %+v", e)
		}
	}
	if trail[0].Actor != "alice" || trail[1].Actor != "bob" {
		t.Errorf("actors %q, %q; want alice then bob", trail[0].Actor, trail[1].Actor)
	}
	// The server selects an environment's entries by subject.
	for env, want := range map[string]int{"prod": 2, "staging": 0} {
		got, err := aud.AuditTrail(ctx, client.AuditQuery{Action: "policy.changed", Subject: api.SubjectPolicyPrefix + env}, g.AuditPublicKey())
		if err != nil || len(got) != want {
			t.Errorf("AuditTrail(subject policy/%s) = %d entries, %v; want %d", env, len(got), err, want)
		}
	}
	// Signers named from the trust root: v1's admins 0 and 2, v2's 1 and
	// 2; with admin 2 revoked before the changes and admin 1 unknown to
	// the root, those are marked.
	client.NameSigners(trail, g.root, nil)
	for _, e := range trail {
		if len(e.Signers) != 2 {
			t.Fatalf("entry %d signers = %+v; want 2", e.EvidenceID, e.Signers)
		}
		for _, sg := range e.Signers {
			if sg.Role != "admin" || sg.Identity != "admin" || sg.Problem != "" {
				t.Errorf("signer %+v; want a trusted admin", sg)
			}
		}
	}
	revoked := *g.root
	revoked.Root.Keys = []trust.Key{g.root.Root.Keys[0], g.root.Root.Keys[2]}
	revoked.Root.Keys[1].CompromisedSince = time.Now().Add(-time.Hour)
	client.NameSigners(trail, &revoked, nil)
	id := func(k *ecdsa.PrivateKey) string { s, _ := trust.KeyID(k.Public()); return s }
	for _, e := range trail {
		for _, sg := range e.Signers {
			var want string
			switch sg.KeyID {
			case id(g.admins[1]):
				want = client.NotInTrustRoot
			case id(g.admins[2]):
				want = "revoked: compromised since"
			}
			if (want == "") != (sg.Problem == "") || !strings.HasPrefix(sg.Problem, want) {
				t.Errorf("signer %s: problem %q; want %q", sg.KeyID, sg.Problem, want)
			}
		}
	}
	all, err := aud.AuditTrail(ctx, client.AuditQuery{}, newKey(t).Public())
	if err != nil || len(all) != 3 {
		t.Fatalf("AuditTrail(all) = %d, %v; want 3", len(all), err)
	}
	for _, e := range all {
		if e.Verified || !strings.Contains(e.Problem, "audit key") {
			t.Errorf("entry %d verified with a wrong audit key: %+v", e.EvidenceID, e)
		}
	}
}

func TestPolicyPushWithoutTrustRoot(t *testing.T) {
	ts := start(t, server.Config{})
	admin := newClient(t, ts, api.RoleAdmin)
	k := newKey(t)
	_, err := admin.PushPolicy(context.Background(), signedPolicy(t, "1", k), "alice")
	wantStatus(t, "push to a server without a trust root", err, http.StatusConflict)
	_, err = admin.TrustRootDocument(context.Background(), 0)
	wantStatus(t, "trust root of a server without one", err, http.StatusNotFound)
}

func TestTrustRootPush(t *testing.T) {
	g := startGoverned(t)
	ctx := context.Background()
	admin := newClient(t, g.testServer, api.RoleAdmin)
	pub := newClient(t, g.testServer, "")

	// Version 2 replaces the admins; signed only by its own new admins it
	// is refused: the previous version's admins must consent.
	newAdmins := []*ecdsa.PrivateKey{newKey(t), newKey(t)}
	next := func() *trust.Document {
		b, _ := g.root.Marshal()
		d, err := trust.ParseDocument(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range newAdmins {
			if err := d.AddKey(trust.Key{PublicKey: k.Public(), Role: trust.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range g.admins {
			id, _ := trust.KeyID(k.Public())
			if err := d.RevokeKey(id, time.Now().Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	v2 := next()
	signRoot(t, v2, newAdmins...)
	_, _, err := admin.PushTrustRoot(ctx, v2, "alice")
	wantStatus(t, "v2 unsigned by v1's admins", err, http.StatusForbidden)
	if d, err := pub.TrustRootDocument(ctx, 0); err != nil || d.Version != 1 {
		t.Fatalf("trust root after refused push = %v, %v; want version 1", d, err)
	}
	// Not an admin token.
	_, _, err = newClient(t, g.testServer, api.RoleBuilder).PushTrustRoot(ctx, v2, "ci")
	wantStatus(t, "builder token trust push", err, http.StatusForbidden)

	signRoot(t, v2, g.admins[0], g.admins[1])
	if v, existed, err := admin.PushTrustRoot(ctx, v2, "alice"); err != nil || v != 2 || existed {
		t.Fatalf("push v2 = %d, %v, %v", v, existed, err)
	}
	if d, err := pub.TrustRootDocument(ctx, 0); err != nil || d.Version != 2 {
		t.Fatalf("trust root = %v, %v; want version 2", d, err)
	}
	if d, err := pub.TrustRootDocument(ctx, 1); err != nil || d.Version != 1 {
		t.Errorf("trust root version 1 = %v, %v", d, err)
	}
	// Rollback to version 1: refused.
	_, _, err = admin.PushTrustRoot(ctx, g.root, "mallory")
	wantStatus(t, "rollback to v1", err, http.StatusConflict)
	es, err := newClient(t, g.testServer, api.RoleAuditor).Search(ctx, api.Query{PredicateType: api.PredicateAudit, SubjectName: api.SubjectTrustRoot})
	if err != nil || len(es) != 2 {
		t.Errorf("trust.changed audit entries = %d, %v; want 2 (start, v2)", len(es), err)
	}

	// The newest version decides policy changes: the old admins no
	// longer count, the new ones do.
	_, err = admin.PushPolicy(ctx, signedPolicy(t, "1", g.admins[0], g.admins[1]), "alice")
	wantStatus(t, "policy signed by v1's revoked admins", err, http.StatusForbidden)
	if _, err := admin.PushPolicy(ctx, signedPolicy(t, "1", newAdmins...), "alice"); err != nil {
		t.Errorf("policy signed by v2's admins: %v", err)
	}

}

func TestTrustRootRestart(t *testing.T) {
	ctx := context.Background()
	a, b := newKey(t), newKey(t)
	mk := func(exp time.Time) []byte {
		d, err := trust.NewDocument([]trust.Key{{PublicKey: a.Public()}, {PublicKey: b.Public()}}, 2, exp)
		if err != nil {
			t.Fatal(err)
		}
		signRoot(t, d, a, b)
		raw, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	v1 := mk(exp)
	dir := t.TempDir()
	open := func(root []byte) error {
		s, err := server.Open(ctx, server.Config{Dir: dir, TrustRoot: root, BatchMaxAge: 5 * time.Millisecond})
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := open(v1); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if err := open(v1); err != nil {
		t.Errorf("restart with the same root: %v", err)
	}
	if err := open(nil); err != nil {
		t.Errorf("restart without --trust-root: %v", err)
	}
	if err := open(mk(exp.Add(time.Hour))); !errors.Is(err, trust.ErrFork) {
		t.Errorf("restart with another version 1 = %v; want ErrFork", err)
	}
	unsigned, _ := trust.NewDocument([]trust.Key{{PublicKey: a.Public()}}, 1, exp)
	raw, _ := unsigned.Marshal()
	dir = t.TempDir()
	if err := open(raw); !errors.Is(err, trust.ErrThreshold) {
		t.Errorf("fresh start with an unsigned root = %v; want ErrThreshold", err)
	}
}

// TestDashboardShowsSignedPolicy: the dashboard names an environment's
// pushed policy by its version and the digest of the signed bytes, the
// digest decisions under it record, so an auditor sees which version
// decided.
func TestDashboardShowsSignedPolicy(t *testing.T) {
	_, raw, admins := governedRoot(t)
	ts := start(t, server.Config{TrustRoot: raw, UI: dashboard.ForServer})
	ctx := context.Background()
	admin := newClient(t, ts, api.RoleAdmin)
	page := func() string {
		t.Helper()
		a := do(t, ts, http.MethodGet, "/ui/environment/prod", ts.tokens[api.RoleAuditor], nil)
		if a.status != http.StatusOK {
			t.Fatalf("environment page: %d %s", a.status, a.body)
		}
		return a.body
	}
	for _, version := range []string{"1", "2"} {
		sp := signedPolicy(t, version, admins[0], admins[1])
		if _, err := admin.PushPolicy(ctx, sp, "alice"); err != nil {
			t.Fatal(err)
		}
		body := page()
		if !strings.Contains(body, "version "+version+" <code class=\"wrap\">"+sp.Digest()+"</code>") {
			t.Errorf("environment page after pushing version %s does not show it with digest %s:\n%s", version, sp.Digest(), body)
		}
		// Not the canonical digest of the same policy read from a file:
		// decisions under a pushed policy never record that one.
		p, err := policy.Parse(sp.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(body, p.Digest()) {
			t.Errorf("environment page shows the canonical digest %s, which no decision under the pushed policy records", p.Digest())
		}
	}
}

package incident

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/deploy"
	dg "github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// openFixture is a local setup: app1 signed by the good key and app2 by
// the compromised one, both deployed to prod in turn (app2 runs), with a
// deploy gate that allows every artifact and runs "true".
type openFixture struct {
	dir            string
	good, bad      *ecdsa.PrivateKey
	app1, app2     deploy.Artifact
	evidence       string
	hist           deploy.FileHistory
	ledger         FileLedger
	badID          string
	compromisedAt  time.Time
	rollbackCalled []string
}

func newOpenFixture(t *testing.T) *openFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &openFixture{dir: dir, good: newKey(t), bad: newKey(t), evidence: filepath.Join(dir, "ev"),
		hist: deploy.FileHistory{Dir: filepath.Join(dir, "environments")}, ledger: FileLedger{Dir: filepath.Join(dir, "incidents")},
		compromisedAt: time.Now().Add(-time.Hour).UTC()}
	f.badID = signer.KeyID(f.bad.Public())
	if err := os.MkdirAll(f.evidence, 0o755); err != nil {
		t.Fatal(err)
	}
	f.app1 = f.artifact(t, "app1", f.good)
	f.app2 = f.artifact(t, "app2", f.bad)
	g := f.gate(nil)
	for _, a := range []deploy.Artifact{f.app1, f.app2} {
		if _, err := g.Deploy(ctx, a); err != nil {
			t.Fatalf("deploy %s: %v", a.Path, err)
		}
	}
	return f
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// artifact writes an artifact file and its bundle (no timestamp: its
// signing time is not proven) signed by key.
func (f *openFixture) artifact(t *testing.T, name string, key crypto.Signer) deploy.Artifact {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte("artifact "+name), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := dg.File(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.NewStatement([]attest.Subject{{Name: name, Digest: map[string]string{"sha256": d.Hex}}},
		"https://example.com/test/v1", map[string]string{"note": "test"})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := signer.SignStatement(context.Background(), key, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.evidence, name+".sigstore.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return deploy.Artifact{Path: p, Digest: d.String()}
}

// gate deploys to prod, allowing every artifact; with q set it consults
// the quarantine as deploy and rollback do.
func (f *openFixture) gate(q deploy.Quarantine) *deploy.Gate {
	return &deploy.Gate{Environment: "prod", History: f.hist, Command: []string{"true"}, Quarantine: q,
		Decide: func(_ context.Context, dg string) (*deploy.Verdict, error) {
			return &deploy.Verdict{Decision: &policy.Decision{Allowed: true, Environment: "prod", Artifact: dg,
				PolicyDigest: "sha256:" + strings.Repeat("ab", 32)}}, nil
		}}
}

func (f *openFixture) options() Options {
	return Options{
		Selector: Selector{KeyID: f.badID}, Since: f.compromisedAt, Actor: "alice",
		EvidenceDir: f.evidence, History: f.hist, Ledger: f.ledger, ReportDir: f.ledger.Dir,
		Rollback: func(ctx context.Context, env string) (*deploy.Result, error) {
			f.rollbackCalled = append(f.rollbackCalled, env)
			return f.gate(Quarantine{Ledger: f.ledger}).Rollback(ctx)
		},
	}
}

// Open finds the artifact the compromised key signed, quarantines it so
// the gate refuses it, rolls prod back to the artifact signed by the good
// key, and records the report in the ledger and the report directory.
func TestOpenQuarantinesAndRollsBack(t *testing.T) {
	ctx := context.Background()
	f := newOpenFixture(t)
	rep, err := Open(ctx, f.options())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Found.Affected) != 1 || rep.Found.Affected[0].Digest != f.app2.Digest {
		t.Fatalf("affected = %+v, want only app2 %s", rep.Found.Affected, f.app2.Digest)
	}
	if len(rep.Running) != 1 || rep.Running[0].Environment != "prod" || rep.Running[0].Artifact != f.app2.Digest {
		t.Errorf("running = %+v, want app2 in prod", rep.Running)
	}
	// the gate refuses app2 from now on; app1 stays deployable
	q := Quarantine{Ledger: f.ledger}
	if id, err := q.Quarantined(ctx, f.app2.Digest); err != nil || id != rep.ID {
		t.Errorf("app2 quarantined by %q, %v; want %s", id, err, rep.ID)
	}
	if id, err := q.Quarantined(ctx, f.app1.Digest); err != nil || id != "" {
		t.Errorf("app1 quarantined by %q, %v; want not quarantined", id, err)
	}
	if _, err := f.gate(q).Deploy(ctx, f.app2); !errors.Is(err, deploy.ErrQuarantined) {
		t.Errorf("deploy app2 after the incident = %v, want ErrQuarantined", err)
	}
	// prod runs app1 again
	if len(rep.Rollbacks) != 1 || rep.Rollbacks[0].Outcome != RolledBack || rep.Rollbacks[0].To != f.app1.Digest {
		t.Fatalf("rollbacks = %+v, want prod rolled back to app1", rep.Rollbacks)
	}
	recs, err := f.hist.List(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if st := deploy.Current("prod", recs); st.Running == nil || st.Running.Artifact != f.app1.Digest {
		t.Errorf("prod runs %+v, want app1", st.Running)
	}
	if still := rep.StillRunning(); len(still) != 0 {
		t.Errorf("still running: %v", still)
	}
	// the report: recorded in the ledger and written beside it
	rs, err := f.ledger.List(ctx, store.IncidentQuery{Incident: rep.ID, Event: store.IncidentReported})
	if err != nil || len(rs) != 1 || rs[0].ID != rep.Record {
		t.Fatalf("reported records = %+v, %v; want one, ID %d", rs, err, rep.Record)
	}
	var saved Report
	b, err := os.ReadFile(filepath.Join(f.ledger.Dir, rep.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &saved); err != nil || saved.ID != rep.ID || saved.Metrics.ArtifactsAffected != 1 {
		t.Errorf("saved report %s: %v", b, err)
	}
	txt, err := os.ReadFile(filepath.Join(f.ledger.Dir, rep.ID+".txt"))
	if err != nil || !strings.Contains(string(txt), "ROLLED BACK: prod from "+f.app2.Digest+" to "+f.app1.Digest) {
		t.Errorf("text report:\n%s (%v)", txt, err)
	}
}

// Without a rollback, prod still runs the affected artifact, and the
// report says so; the quarantine is recorded all the same.
func TestOpenWithoutRollback(t *testing.T) {
	ctx := context.Background()
	f := newOpenFixture(t)
	o := f.options()
	o.Rollback = func(ctx context.Context, env string) (*deploy.Result, error) {
		return nil, &NotAttemptedError{Reason: "no policy for " + env}
	}
	rep, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rollbacks) != 1 || rep.Rollbacks[0].Outcome != NotAttempted || rep.Rollbacks[0].Detail != "no policy for prod" {
		t.Errorf("rollbacks = %+v, want prod not attempted", rep.Rollbacks)
	}
	if still := rep.StillRunning(); len(still) != 1 || still[0] != "prod" {
		t.Errorf("still running = %v, want [prod]", still)
	}
	if id, err := (Quarantine{Ledger: f.ledger}).Quarantined(ctx, f.app2.Digest); err != nil || id != rep.ID {
		t.Errorf("app2 quarantined by %q, %v; want %s", id, err, rep.ID)
	}
}

type failingHistory struct{ deploy.History }

func (failingHistory) List(context.Context, string) ([]*deploy.Record, error) {
	return nil, errors.New("disk on fire")
}

// A history that cannot be read stops the incident before anything is
// recorded: no half-opened incident.
func TestOpenUnreadableHistoryRecordsNothing(t *testing.T) {
	ctx := context.Background()
	f := newOpenFixture(t)
	o := f.options()
	o.History = failingHistory{}
	_, err := Open(ctx, o)
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != OpReadHistory || !strings.Contains(err.Error(), "couldn't read deployment history: disk on fire") {
		t.Fatalf("Open = %v, want an OpError reading the history", err)
	}
	if rs, err := f.ledger.List(ctx, store.IncidentQuery{}); err != nil || len(rs) != 0 {
		t.Errorf("ledger holds %d records (%v), want none", len(rs), err)
	}
	if len(f.rollbackCalled) != 0 {
		t.Errorf("rolled back %v", f.rollbackCalled)
	}
}

// fakeServer serves the evidence directory's bundles as its index and
// takes trust root versions.
type fakeServer struct {
	found  []client.Found
	pushed []*trust.Document
}

func (s *fakeServer) SearchBundles(_ context.Context, q api.Query) ([]client.Found, error) {
	var out []client.Found
	for _, f := range s.found {
		if f.Evidence.SignerKeyID == q.SignerKeyID && f.Evidence.ID > q.AfterID {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *fakeServer) PushTrustRoot(_ context.Context, d *trust.Document, _ string) (int, bool, error) {
	s.pushed = append(s.pushed, d)
	return d.Version, false, nil
}

// In server mode the index is searched and the revoked trust root, signed
// by the admin threshold, is written and pushed to the server.
func TestOpenServerRevokes(t *testing.T) {
	ctx := context.Background()
	f := newOpenFixture(t)
	srv := &fakeServer{}
	for i, k := range []*ecdsa.PrivateKey{f.good, f.bad} {
		name := []string{"app1", "app2"}[i]
		b, err := os.ReadFile(filepath.Join(f.evidence, name+".sigstore.json"))
		if err != nil {
			t.Fatal(err)
		}
		srv.found = append(srv.found, client.Found{Evidence: &api.Evidence{ID: int64(i + 1), Bundle: b, SignerKeyID: signer.KeyID(k.Public())}})
	}
	admin := newKey(t)
	d, err := trust.NewDocument([]trust.Key{{PublicKey: admin.Public()}}, 1, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddKey(trust.Key{PublicKey: f.bad.Public(), Role: trust.RoleBuilder}); err != nil {
		t.Fatal(err)
	}
	if err := d.RevokeKey(f.badID, f.compromisedAt); err != nil {
		t.Fatal(err)
	}
	if err := d.Sign(ctx, admin); err != nil {
		t.Fatal(err)
	}
	rootPath := filepath.Join(f.dir, "root.json")
	o := f.options()
	o.EvidenceDir, o.Server, o.ServerURL = "", srv, "https://custody.example"
	o.Revocation = &Revocation{Path: rootPath, Document: d}
	rep, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Found.Affected) != 1 || rep.Found.Affected[0].Digest != f.app2.Digest || rep.Found.Affected[0].Evidence[0].Source != "server:2" {
		t.Errorf("affected = %+v, want app2 from server:2", rep.Found.Affected)
	}
	tr := rep.TrustRoot
	if tr == nil || tr.KeyID != f.badID || tr.Signed != 1 || tr.Needed != 1 || tr.Push == nil || !tr.Push.Accepted {
		t.Fatalf("trust root = %+v, want the revocation accepted by the server", tr)
	}
	if len(srv.pushed) != 1 {
		t.Errorf("pushed %d trust roots, want 1", len(srv.pushed))
	}
	b, err := os.ReadFile(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	written, err := trust.ParseDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	k, err := written.Root.FindKey(f.badID)
	if err != nil || !k.CompromisedSince.Equal(f.compromisedAt) {
		t.Errorf("written trust root: key %+v, %v; want compromised since %s", k, err, f.compromisedAt)
	}
}

// Below the admin threshold the revoked trust root is not pushed: the
// report says what to run, and nothing is sent to the server.
func TestIncidentPushNeedsThreshold(t *testing.T) {
	tr := &TrustRoot{Path: "root.json", Version: 2, Signed: 1, Needed: 2}
	srv := &fakeServer{}
	p := pushRevocation(context.Background(), srv, nil, tr, "https://custody.example", "alice")
	if p.Accepted || p.Version != 0 || len(srv.pushed) != 0 {
		t.Errorf("push = %+v, %d pushed; want not accepted, nothing sent", p, len(srv.pushed))
	}
	for _, w := range []string{"needs 1 more admin signature", "custody trust sign --root root.json", "custody trust push root.json --server https://custody.example"} {
		if !strings.Contains(p.Detail, w) {
			t.Errorf("push detail %q does not say %q", p.Detail, w)
		}
	}
	var b strings.Builder
	(&Report{Found: &Findings{}, TrustRoot: &TrustRoot{Path: "root.json", Push: p}}).WriteText(&b)
	if !strings.Contains(b.String(), "TRUST ROOT NOT ON THE SERVER: https://custody.example: not pushed") {
		t.Errorf("report text:\n%s", b.String())
	}
}

package dashboard_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
)

// Injected strings: each would create an element with an id starting
// "inj-" if the page did not escape it.
const (
	evilName      = `dist/app<script id="inj-script">document.title="pwned"</script><img id="inj-img" src=x>`
	evilActor     = `<b id="inj-actor">mallory</b>`
	evilApprover  = `<i id="inj-approver">eve</i>`
	evilMessage   = `fix: <svg id="inj-svg" onload="alert(1)"></svg> commit message`
	evilRef       = `refs/heads/<a id="inj-ref" href="javascript:alert(1)">main</a>`
	evilResponder = `<script id="inj-incident">document.title="pwned"</script>oncall`
	evilDetail    = `key leaked <img id="inj-detail" src=x> in a CI log`
	evilFlag      = `<img id="inj-flag" src=x> never appeared in any earlier build`
	evilDep       = `example.com/<b id="inj-dep">evil</b>`
	commit        = "0123456789abcdef0123456789abcdef01234567"
	builderID     = "https://custody.dev/builders/ci@v1"
)

// seeded is a running server with a dashboard, after a pipeline run:
// two builds, an approval, deployments to staging, canary and prod, a
// failed deploy to prod and its rollback; then an incident (the builder
// compromised) that quarantined the bad artifact and rolled staging back,
// and an earlier incident, closed, that found nothing.
type seeded struct {
	url      string
	srv      *server.Server
	auditor  string
	deployer string
	good     string // sha256:… running in prod after the rollback
	bad      string // sha256:… rolled back from prod, quarantined
	// open and closed are the incidents' IDs.
	open, closed string
	// ledger is the incident ledger's file.
	ledger string
}

// Incident times, relative to the seed's base time (an hour ago): the open
// incident was detected 2h30m after the compromise and contained 90 s
// after it was opened; the closed one was detected after 1h.
const (
	openDetect   = 150 * time.Minute
	openContain  = 90 * time.Second
	closedDetect = time.Hour
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func provenance(t *testing.T, buildID, name, content string) []byte {
	t.Helper()
	start := time.Now().Add(-2 * time.Minute).UTC()
	end := start.Add(time.Minute)
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://example.com/org/app", Ref: evilRef, Commit: commit}},
			InternalParameters: attest.CustodyInternalParameters{Toolchains: map[string]string{"go": "go1.26.8 linux/amd64"}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: builderID},
			Metadata: &attest.BuildMetadata{InvocationID: buildID, StartedOn: &start, FinishedOn: &end}},
	}
	st, err := attest.NewStatement([]attest.Subject{{Name: name, Digest: map[string]string{"sha256": digestOf(content)}}},
		attest.PredicateSLSAv1, prov)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func approval(t *testing.T, key crypto.Signer, env, content string) []byte {
	t.Helper()
	st, err := attest.NewApproval(attest.ApprovalPredicate{Environment: env, Artifact: "sha256:" + digestOf(content),
		Approver: evilApprover, Reason: "release", Time: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := signer.SignStatement(context.Background(), key, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// auditKey reads the server's audit key, which signs red flags.
func auditKey(t *testing.T, dir string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "keys", "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("audit.key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// redFlags is a red flags statement about content, a build whose
// provenance bundle is prov, signed by key: two earlier builds compared,
// a dependency added and one changed since the last release.
func redFlags(t *testing.T, key crypto.Signer, content string, prov []byte, flags []attest.RedFlag) []byte {
	t.Helper()
	sum := sha256.Sum256(prov)
	pred := attest.RedFlagsPredicate{ComputedBy: "https://custody.example", ComputedAt: time.Now().UTC(),
		Build:   attest.RedFlagsBuild{Bundle: hex.EncodeToString(sum[:]), BuildID: "build-1"},
		Lineage: attest.RedFlagsLineage{SubjectName: evilName, SourceURI: "git+https://example.com/org/app", Track: "release", Compared: 2},
		Flags:   append([]attest.RedFlag{}, flags...),
		Dependencies: []attest.DependencyChange{{Change: "added", Name: evilDep, To: "v1.0.0"},
			{Change: "changed", Name: "golang.org/x/mod", From: "v0.20.0", To: "v0.21.0"},
			{Change: "removed", Name: "example.com/old", From: "v0.1.0"}},
	}
	st, err := attest.NewStatement([]attest.Subject{{Name: evilName, Digest: map[string]string{"sha256": digestOf(content)}}}, attest.PredicateRedFlags, pred)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := signer.SignStatement(context.Background(), key, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func seed(t *testing.T) *seeded {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	// The approver's key is trusted by the dashboard (DIR/keys/trusted) and
	// named in prod's policy.
	approver, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	apub, _ := signer.MarshalPublicKey(approver.Public())
	approverID, _ := gate.KeyID(approver.Public())
	if err := os.MkdirAll(filepath.Join(dir, "keys", "trusted"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "keys", "trusted", "approver.pub"), apub, 0o644)

	// Incident records come from a local ledger until the server records
	// incidents itself.
	ledger := incident.FileLedger{Dir: filepath.Join(dir, "incident-ledger")}
	ui := func(deps server.UIDeps) (http.Handler, error) {
		deps.Incidents = ledger.List
		return dashboard.ForServer(deps)
	}
	// The test holds the index, so that it can put what only the server
	// writes (red flags statements) as the server does.
	index, err := store.OpenSQLite(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(ctx, server.Config{Dir: dir, PublicURL: url, BatchMaxAge: 5 * time.Millisecond, UI: ui, Index: index})
	if err != nil {
		t.Fatal(err)
	}
	builderKey, _ := s.BuilderPublicKey(api.DefaultBuilderKey)
	builderKeyID, _ := gate.KeyID(builderKey)
	auditKeyID, _ := gate.KeyID(s.AuditPublicKey())
	os.MkdirAll(filepath.Join(dir, "policies"), 0o700)
	pol := fmt.Sprintf(`apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [%s]
signers: [{keyId: %s}]
requireLog: true
requireTimestamp: true
groups:
  release-managers:
    - {name: eve, keyIds: [%s]}
approvals:
  - {group: release-managers, count: 1}
redFlags:
  signers: [{keyId: %s}]
  requireApproval: {new-dependency: {group: release-managers, count: 1}}
`, builderID, builderKeyID, approverID, auditKeyID)
	if err := os.WriteFile(filepath.Join(dir, "policies", "prod.yaml"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close(); index.Close() })

	tok := map[api.Role]string{}
	for _, r := range api.Roles() {
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
	build, appr, dep := cl(api.RoleBuilder), cl(api.RoleApprover), cl(api.RoleDeployer)
	var provBundles [][]byte
	for i, content := range []string{"app v1", "app v2"} {
		b, err := build.Sign(ctx, provenance(t, fmt.Sprintf("build-%d", i+1), evilName, content))
		if err != nil {
			t.Fatalf("sign provenance: %v", err)
		}
		provBundles = append(provBundles, b)
	}
	// Red flags about app v1, signed as custody serve signs them, with its
	// audit key; and a statement the approver signs, which does not count.
	// No client may push red flags (the server reserves the type), so they
	// go into the index directly.
	for _, rf := range []struct {
		key   crypto.Signer
		flags []attest.RedFlag
	}{
		{auditKey(t, dir), []attest.RedFlag{{Kind: "new-dependency", Subject: evilDep, Message: evilFlag, Clear: "review it and approve the build"}}},
		{approver, nil},
	} {
		kid, _ := gate.KeyID(rf.key.Public())
		rec := &store.Evidence{Bundle: redFlags(t, rf.key, "app v1", provBundles[0], rf.flags), PredicateType: attest.PredicateRedFlags,
			Subjects: []store.Subject{{Name: evilName, Digests: map[string]string{"sha256": digestOf("app v1")}}}, SignerKeyID: kid, LogIndex: -1}
		if _, _, err := index.Put(ctx, rec); err != nil {
			t.Fatalf("index red flags: %v", err)
		}
	}
	if _, _, err := appr.Push(ctx, approval(t, approver, "prod", "app v1")); err != nil {
		t.Fatalf("push approval: %v", err)
	}
	good, bad := "sha256:"+digestOf("app v1"), "sha256:"+digestOf("app v2")
	now := time.Now().Add(-time.Hour)
	openID := "INC-" + now.Add(30*time.Minute).UTC().Format("20060102T150405Z") + "-0000000a"
	closedID := "INC-" + now.Add(-2*time.Hour).UTC().Format("20060102T150405Z") + "-0000000b"
	recs := []*store.Deployment{
		{Environment: "staging", Event: store.EventDeployed, Artifact: good, Name: evilName, Actor: "release-bot"},
		{Environment: "staging", Event: store.EventHealthy, Artifact: good},
		{Environment: "staging", Event: store.EventDeployed, Artifact: bad, Name: evilName, Actor: evilActor},
		{Environment: "staging", Event: store.EventHealthy, Artifact: bad},
		{Environment: "canary", Event: store.EventDeployed, Artifact: bad, Name: evilName, Actor: "release-bot"},
		{Environment: "prod", Event: store.EventDeployed, Artifact: good, Name: evilName, Actor: "release-bot", Decision: "allowed"},
		{Environment: "prod", Event: store.EventHealthy, Artifact: good},
		{Environment: "prod", Event: store.EventDeployed, Artifact: bad, Name: evilName, Actor: evilActor, Decision: "allowed"},
		{Environment: "prod", Event: store.EventUnhealthy, Artifact: bad, Detail: evilMessage},
		{Environment: "prod", Event: store.EventRolledBack, Artifact: good, Name: evilName, Actor: "release-bot", RollbackFrom: bad, Detail: "health check failed"},
		{Environment: "prod", Event: store.EventHealthy, Artifact: good},
	}
	for i, r := range recs {
		r.Time = now.Add(time.Duration(i) * time.Minute)
		if _, err := dep.AppendDeployment(ctx, r); err != nil {
			t.Fatalf("append deployment: %v", err)
		}
	}

	// The open incident: the builder compromised since 2h30m before it was
	// opened; the bad artifact quarantined; staging rolled back to good.
	opened := now.Add(30 * time.Minute).UTC()
	since := opened.Add(-openDetect)
	rolled := opened.Add(openContain)
	if _, err := dep.AppendDeployment(ctx, &store.Deployment{Environment: "staging", Event: store.EventRolledBack, Artifact: good,
		Name: evilName, Actor: "custody incident " + openID, RollbackFrom: bad, Time: rolled, Detail: "incident " + openID}); err != nil {
		t.Fatalf("append deployment: %v", err)
	}
	sel := incident.Selector{Builder: builderID}
	stagingSince := now.Add(2 * time.Minute)
	rep := incident.Report{ID: openID, Selector: sel, CompromisedSince: since, OpenedAt: opened, Actor: evilResponder,
		Found: &incident.Findings{Affected: []incident.Artifact{{Digest: bad, Names: []string{evilName},
			Evidence: []incident.Hit{{Source: "server:2", PredicateType: attest.PredicateSLSAv1, Proof: "rfc3161 timestamp", ProvenAt: since.Add(time.Hour)}}}},
			Spared: []incident.Artifact{}},
		Running: []incident.Placement{{Environment: "staging", Artifact: bad, Name: evilName, Since: stagingSince},
			{Environment: "canary", Artifact: bad, Name: evilName, Since: now.Add(4 * time.Minute)}},
		PromotionHalted: []incident.Placement{{Environment: "staging", Artifact: bad, Name: evilName, Since: stagingSince}},
		Rollbacks: []incident.Rollback{{Environment: "staging", From: bad, Outcome: incident.RolledBack, To: good, ToName: evilName, At: rolled},
			{Environment: "canary", From: bad, Outcome: incident.NotAttempted, Detail: "no --policy for canary given; run 'custody rollback --env canary ...'"}},
	}
	rep.Finish()
	repJSON, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	// The closed incident: a key compromised, nothing signed by it found.
	closedOpened := now.Add(-2 * time.Hour).UTC()
	rep2 := incident.Report{ID: closedID, Selector: incident.Selector{KeyID: strings.Repeat("ab", 32)}, CompromisedSince: closedOpened.Add(-closedDetect),
		OpenedAt: closedOpened, Actor: "oncall", Found: &incident.Findings{Affected: []incident.Artifact{}, Spared: []incident.Artifact{}}}
	rep2.Finish()
	rep2JSON, err := json.Marshal(rep2)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*store.IncidentRecord{
		{Incident: closedID, Event: store.IncidentOpened, Actor: "oncall", Time: closedOpened, Detail: rep2.Selector.String() + " compromised since " + rep2.CompromisedSince.Format(time.RFC3339)},
		{Incident: closedID, Event: store.IncidentReported, Actor: "oncall", Time: closedOpened.Add(time.Second), Report: rep2JSON},
		{Incident: closedID, Event: store.IncidentClosed, Actor: "oncall", Time: closedOpened.Add(10 * time.Minute), Detail: "nothing was signed with the key"},
		{Incident: openID, Event: store.IncidentOpened, Actor: evilResponder, Time: opened, Detail: sel.String() + " compromised since " + since.Format(time.RFC3339) + ": " + evilDetail},
		{Incident: openID, Event: store.IncidentQuarantined, Artifact: bad, Actor: evilResponder, Time: opened.Add(time.Second), Detail: evilDetail},
		{Incident: openID, Event: store.IncidentReported, Actor: evilResponder, Time: rolled.Add(time.Second), Report: repJSON},
	} {
		if _, err := ledger.Append(ctx, r); err != nil {
			t.Fatalf("append incident record: %v", err)
		}
	}
	// The server records the quarantine too, as custody incident open
	// --server does: its audit entry names the incident as the subject's
	// name, which is not a name of the artifact.
	if _, err := cl(api.RoleAdmin).AppendIncidents(ctx, []*store.IncidentRecord{
		{Incident: openID, Event: store.IncidentOpened, Actor: "oncall", Time: opened, Detail: sel.String() + " compromised"},
		{Incident: openID, Event: store.IncidentQuarantined, Artifact: bad, Actor: "oncall", Time: opened.Add(time.Second), Detail: "quarantined"},
	}); err != nil {
		t.Fatalf("append incident records to the server: %v", err)
	}
	return &seeded{url: url, srv: s, auditor: tok[api.RoleAuditor], deployer: tok[api.RoleDeployer], good: good, bad: bad,
		open: openID, closed: closedID, ledger: filepath.Join(ledger.Dir, "ledger.jsonl")}
}

package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/policy"
)

// fakePolicy allows the digests in allowed, as a Decider.
type fakePolicy struct {
	env     string
	allowed map[string]bool
	asked   []string
}

func (p *fakePolicy) decide(ctx context.Context, dg string) (*Verdict, error) {
	p.asked = append(p.asked, dg)
	d := &policy.Decision{Allowed: p.allowed[dg], Environment: p.env, Artifact: dg,
		PolicyDigest: "sha256:" + strings.Repeat("ab", 32)}
	if !d.Allowed {
		d.Failures = []policy.Failure{
			{Requirement: "approval:release-managers", Message: "needs 1 more approval(s) from group release-managers"},
			{Requirement: "vulnerabilities", Message: "CVE-1 is critical"},
		}
	}
	return &Verdict{Decision: d}, nil
}

func writeArtifact(t *testing.T, dir, name, content string) Artifact {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := digest.File(p)
	if err != nil {
		t.Fatal(err)
	}
	return Artifact{Path: p, Digest: d.String()}
}

func newGate(t *testing.T, pol *fakePolicy, health string) (*Gate, string) {
	dir := t.TempDir()
	log := filepath.Join(dir, "deployed.log")
	return &Gate{Environment: pol.env, History: FileHistory{Dir: filepath.Join(dir, "data")}, Decide: pol.decide,
		Command: []string{"sh", "-c", `echo "$CUSTODY_DIGEST {artifact}" >> ` + log}, HealthCommand: health, Actor: "test"}, log
}

func events(rs []*Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Event)
	}
	return strings.Join(out, ",")
}

func TestDeployDeniedNeverRuns(t *testing.T) {
	dir := t.TempDir()
	a := writeArtifact(t, dir, "app", "v1")
	g, log := newGate(t, &fakePolicy{env: "prod"}, "")
	res, err := g.Deploy(context.Background(), a)
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("Deploy = %v, want ErrDenied", err)
	}
	if res.Verdict == nil || res.Verdict.Decision.Allowed {
		t.Errorf("result has no denying verdict: %+v", res)
	}
	if _, err := os.Stat(log); err == nil {
		t.Errorf("the deploy command ran for a denied artifact")
	}
}

func TestSwapAfterVerification(t *testing.T) {
	dir := t.TempDir()
	a := writeArtifact(t, dir, "app", "v1")
	g, log := newGate(t, &fakePolicy{env: "prod", allowed: map[string]bool{a.Digest: true}}, "")
	g.afterDecision = func() {
		if err := os.WriteFile(a.Path, []byte("evil"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := g.Deploy(context.Background(), Artifact{Path: a.Path})
	if !errors.Is(err, ErrSwapped) {
		t.Fatalf("Deploy = %v, want ErrSwapped", err)
	}
	if _, err := os.Stat(log); err == nil {
		t.Errorf("the deploy command ran for a swapped artifact")
	}
	if len(res.Records) != 0 {
		t.Errorf("records written for a swapped artifact: %s", events(res.Records))
	}
}

func TestRollbackToLastGoodThatStillPasses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v1 := writeArtifact(t, dir, "v1", "one")
	v2 := writeArtifact(t, dir, "v2", "two")
	bad := writeArtifact(t, dir, "v3", "three")
	pol := &fakePolicy{env: "prod", allowed: map[string]bool{v1.Digest: true, v2.Digest: true, bad.Digest: true}}
	g, log := newGate(t, pol, `test "$CUSTODY_DIGEST" != "`+bad.Digest+`"`)
	for _, a := range []Artifact{v1, v2} {
		if _, err := g.Deploy(ctx, a); err != nil {
			t.Fatalf("Deploy(%s): %v", a.Path, err)
		}
	}
	// v2 was healthy but the policy now denies it: the rollback goes to v1.
	pol.allowed[v2.Digest] = false
	res, err := g.Deploy(ctx, bad)
	if !errors.Is(err, ErrUnhealthy) || errors.Is(err, ErrNoRollback) {
		t.Fatalf("Deploy(bad) = %v, want ErrUnhealthy with a rollback", err)
	}
	if got, want := events(res.Records), "deployed,unhealthy,rolled-back,healthy"; got != want {
		t.Errorf("records = %s, want %s", got, want)
	}
	if res.RolledBackTo == nil || res.RolledBackTo.Artifact != v1.Digest || res.RolledBackTo.RollbackFrom != bad.Digest {
		t.Errorf("rolled back to %+v, want v1 from the bad artifact", res.RolledBackTo)
	}
	want := "its policy denies it now: approval:release-managers: needs 1 more approval(s) from group release-managers (and 1 more: vulnerabilities)"
	if len(res.Skipped) != 1 || res.Skipped[0].Artifact != v2.Digest || res.Skipped[0].Reason != want || res.Skipped[0].Tried {
		t.Errorf("skipped = %+v, want v2 because %s", res.Skipped, want)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := lines[len(lines)-1]; last != v1.Digest+" "+v1.Path {
		t.Errorf("last deploy command got %q, want v1's digest and path", last)
	}
	recs, err := g.History.List(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	st := Current("prod", recs)
	if st.Running.Artifact != v1.Digest || st.Health != HealthHealthy || !st.RolledBack {
		t.Errorf("state = %+v, want v1 healthy after a rollback", st)
	}
}

func TestNoRollback(t *testing.T) {
	dir := t.TempDir()
	a := writeArtifact(t, dir, "app", "v1")
	g, _ := newGate(t, &fakePolicy{env: "prod", allowed: map[string]bool{a.Digest: true}}, "false")
	res, err := g.Deploy(context.Background(), a)
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, ErrNoRollback) {
		t.Fatalf("Deploy = %v, want ErrUnhealthy and ErrNoRollback", err)
	}
	if got := events(res.Records); got != "deployed,unhealthy" {
		t.Errorf("records = %s", got)
	}
	g.Command = []string{"false"}
	if _, err := g.Deploy(context.Background(), a); !errors.Is(err, ErrDeployFailed) || !errors.Is(err, ErrNoRollback) {
		t.Errorf("Deploy with a failing command = %v, want ErrDeployFailed and ErrNoRollback", err)
	}
}

// A rollback whose every candidate fails its health check is no rollback:
// RolledBackTo stays nil, and each candidate is listed as tried with why.
func TestRollbackCandidatesAllUnhealthy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v1 := writeArtifact(t, dir, "v1", "one")
	v2 := writeArtifact(t, dir, "v2", "two")
	bad := writeArtifact(t, dir, "v3", "three")
	g, _ := newGate(t, &fakePolicy{env: "prod", allowed: map[string]bool{v1.Digest: true, v2.Digest: true, bad.Digest: true}}, "")
	for _, a := range []Artifact{v1, v2} {
		if _, err := g.Deploy(ctx, a); err != nil {
			t.Fatalf("Deploy(%s): %v", a.Path, err)
		}
	}
	g.HealthCommand = "false"
	res, err := g.Deploy(ctx, bad)
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, ErrNoRollback) {
		t.Fatalf("Deploy(bad) = %v, want ErrUnhealthy and ErrNoRollback", err)
	}
	if !strings.Contains(err.Error(), "2 earlier artifact(s) considered, none usable (2 rolled back to and failed, 0 refused)") {
		t.Errorf("error %q does not say both candidates were tried", err)
	}
	if res.RolledBackTo != nil {
		t.Errorf("RolledBackTo = %+v after every rollback failed its health check", res.RolledBackTo)
	}
	if got, want := events(res.Records), "deployed,unhealthy,rolled-back,unhealthy,rolled-back,unhealthy"; got != want {
		t.Errorf("records = %s, want %s", got, want)
	}
	if len(res.Skipped) != 2 || res.Skipped[0].Artifact != v2.Digest || res.Skipped[1].Artifact != v1.Digest {
		t.Fatalf("skipped = %+v, want v2 then v1", res.Skipped)
	}
	for _, sk := range res.Skipped {
		if !sk.Tried || !strings.HasPrefix(sk.Reason, "health check failed: ") {
			t.Errorf("skipped %+v, want tried with its failed health check", sk)
		}
	}
	// On demand too.
	res, err = g.Rollback(ctx)
	if !errors.Is(err, ErrNoRollback) || res.RolledBackTo != nil {
		t.Errorf("Rollback = %+v, %v; want ErrNoRollback and no RolledBackTo", res, err)
	}
}

func TestPromoteNeedsHealthyInSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := writeArtifact(t, dir, "app", "v1")
	other := writeArtifact(t, dir, "other", "v2")
	staging, _ := newGate(t, &fakePolicy{env: "staging", allowed: map[string]bool{a.Digest: true, other.Digest: true}}, "")
	prod, _ := newGate(t, &fakePolicy{env: "prod", allowed: map[string]bool{a.Digest: true}}, "")
	prod.History = staging.History
	if _, err := prod.Promote(ctx, a, "staging", staging.History); !errors.Is(err, ErrNotHealthyInSource) {
		t.Errorf("Promote before any staging deploy = %v", err)
	}
	if _, err := staging.Deploy(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := prod.Promote(ctx, a, "staging", staging.History); err != nil {
		t.Errorf("Promote = %v", err)
	}
	if _, err := staging.Deploy(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := prod.Promote(ctx, a, "staging", staging.History); !errors.Is(err, ErrNotHealthyInSource) {
		t.Errorf("Promote of what no longer runs in staging = %v", err)
	}
}

func TestFileHistoryTruncated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := FileHistory{Dir: dir}
	a := writeArtifact(t, t.TempDir(), "app", "v1")
	r := &Record{Environment: "prod", Event: EventDeployed, Artifact: a.Digest, Time: nowUTC()}
	for range 2 {
		if _, err := h.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.List(ctx, "prod")
	if err != nil || len(got) != 2 || got[1].ID != 2 {
		t.Fatalf("List = %v, %v", got, err)
	}
	p := filepath.Join(dir, "prod.jsonl")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.List(ctx, "prod"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "line 2 is truncated") {
		t.Errorf("List of a truncated file = %v, want ErrCorrupt naming line 2", err)
	}
	if _, err := h.Append(ctx, r); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Append to a truncated file = %v, want ErrCorrupt", err)
	}
	if _, err := h.Append(ctx, &Record{Environment: "../x", Event: EventDeployed, Artifact: a.Digest, Time: nowUTC()}); err == nil {
		t.Errorf("Append to environment ../x succeeded")
	}
}

func nowUTC() time.Time { return time.Now().UTC() }

// The README's own flow builds every release to the same path (-o
// dist/app): the earlier artifact's file then holds the new one, and a
// rollback to it cannot run. The skip says so and what to do.
func TestRollbackWhenFileOverwritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v1 := writeArtifact(t, dir, "app", "one")
	pol := &fakePolicy{env: "prod", allowed: map[string]bool{v1.Digest: true}}
	g, _ := newGate(t, pol, `test "$CUSTODY_DIGEST" = "`+v1.Digest+`"`)
	if _, err := g.Deploy(ctx, v1); err != nil {
		t.Fatal(err)
	}
	v2 := writeArtifact(t, dir, "app", "two") // same path: v1's file is gone
	pol.allowed[v2.Digest] = true
	res, err := g.Deploy(ctx, v2)
	if !errors.Is(err, ErrNoRollback) {
		t.Fatalf("Deploy(v2) = %v, want ErrNoRollback", err)
	}
	if len(res.Skipped) != 1 || !res.Skipped[0].Restore {
		t.Fatalf("skipped = %+v, want v1 with Restore", res.Skipped)
	}
	for _, w := range []string{v1.Path + " now holds sha256:", "put " + v1.Digest + " back at " + v1.Path} {
		if !strings.Contains(res.Skipped[0].Reason, w) {
			t.Errorf("reason %q does not say %q", res.Skipped[0].Reason, w)
		}
	}
}

package deploy

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// fakeQuarantine quarantines the digests in q (digest -> incident ID);
// err, when set, is returned for every question.
type fakeQuarantine struct {
	q   map[string]string
	err error
}

func (f *fakeQuarantine) Quarantined(ctx context.Context, artifact string) (string, error) {
	return f.q[artifact], f.err
}

func TestQuarantine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := writeArtifact(t, dir, "good", "v1")
	bad := writeArtifact(t, dir, "bad", "v2")
	pol := &fakePolicy{env: "prod", allowed: map[string]bool{good.Digest: true, bad.Digest: true}}
	g, log := newGate(t, pol, "")
	for _, a := range []Artifact{good, bad} {
		if _, err := g.Deploy(ctx, a); err != nil {
			t.Fatalf("Deploy(%s) = %v", a.Path, err)
		}
	}
	q := &fakeQuarantine{q: map[string]string{bad.Digest: "INC-1"}}
	g.Quarantine = q

	t.Run("deploy refused", func(t *testing.T) {
		before, _ := os.ReadFile(log)
		_, err := g.Deploy(ctx, bad)
		if !errors.Is(err, ErrQuarantined) || !strings.Contains(err.Error(), "INC-1") {
			t.Fatalf("Deploy = %v, want ErrQuarantined naming INC-1", err)
		}
		if after, _ := os.ReadFile(log); string(after) != string(before) {
			t.Errorf("the deploy command ran for a quarantined artifact")
		}
	})
	t.Run("unknown quarantine refuses", func(t *testing.T) {
		g.Quarantine = &fakeQuarantine{err: errors.New("disk on fire")}
		defer func() { g.Quarantine = q }()
		if _, err := g.Deploy(ctx, good); !errors.Is(err, ErrQuarantined) {
			t.Fatalf("Deploy = %v, want ErrQuarantined", err)
		}
	})
	t.Run("rollback skips quarantined", func(t *testing.T) {
		// good runs; rolling back would go to bad, which is quarantined.
		if _, err := g.Deploy(ctx, good); err != nil {
			t.Fatal(err)
		}
		res, err := g.Rollback(ctx)
		if !errors.Is(err, ErrNoRollback) {
			t.Fatalf("Rollback = %v, want ErrNoRollback", err)
		}
		if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "INC-1") {
			t.Errorf("skipped = %+v, want bad skipped as quarantined", res.Skipped)
		}
	})
	t.Run("promote halted", func(t *testing.T) {
		src := g.History
		g2, _ := newGate(t, &fakePolicy{env: "staging", allowed: pol.allowed}, "")
		g2.Quarantine = q
		// bad ran healthy in prod earlier, but prod runs good now; make it
		// run bad again without the quarantine, then promote with it.
		g.Quarantine = nil
		if _, err := g.Deploy(ctx, bad); err != nil {
			t.Fatal(err)
		}
		g.Quarantine = q
		if _, err := g2.Promote(ctx, bad, "prod", src); !errors.Is(err, ErrQuarantined) {
			t.Fatalf("Promote = %v, want ErrQuarantined", err)
		}
	})
}

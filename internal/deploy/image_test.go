package deploy

import (
	"context"
	"os"
	"strings"
	"testing"
)

func imageArtifact(n byte) Artifact {
	return Artifact{Path: "oci://registry.example.com/team/app@sha256:" + strings.Repeat(string(rune('a'+n)), 64)}
}

// An image named by a pinned reference deploys with its digest taken from
// the reference (nothing to hash), the command gets the reference, and a
// rollback can go back to an earlier image (no file has to be kept).
func TestDeployImages(t *testing.T) {
	ctx := context.Background()
	v1, v2 := imageArtifact(1), imageArtifact(2)
	d1, d2 := "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	pol := &fakePolicy{env: "prod", allowed: map[string]bool{d1: true, d2: true}}
	g, log := newGate(t, pol, `test "$CUSTODY_DIGEST" != "`+d2+`"`)
	if _, err := g.Deploy(ctx, v1); err != nil {
		t.Fatalf("Deploy(v1): %v", err)
	}
	res, err := g.Deploy(ctx, v2)
	if err == nil || res.RolledBackTo == nil || res.RolledBackTo.Artifact != d1 {
		t.Fatalf("Deploy(unhealthy v2) = %v, rolled back to %+v; want a rollback to v1", err, res.RolledBackTo)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if want := d1 + " " + v1.Path; lines[0] != want || lines[len(lines)-1] != want {
		t.Errorf("deploy commands got %q, want %q first and last", lines, want)
	}
}

func TestDeployImageRefusesUnpinnedOrMismatched(t *testing.T) {
	pol := &fakePolicy{env: "prod", allowed: map[string]bool{}}
	g, _ := newGate(t, pol, "")
	for _, a := range []Artifact{
		{Path: "oci://registry.example.com/team/app:v1"},
		{Path: imageArtifact(1).Path, Digest: "sha256:" + strings.Repeat("f", 64)},
		{Path: "oci://Registry/App@sha256:" + strings.Repeat("b", 64)},
	} {
		if _, err := g.Deploy(context.Background(), a); err == nil {
			t.Errorf("Deploy(%+v) succeeded", a)
		}
	}
	if len(pol.asked) != 0 {
		t.Errorf("the policy was asked about %v", pol.asked)
	}
}

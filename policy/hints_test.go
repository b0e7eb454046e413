package policy

import (
	"context"
	"os"
	"strings"
	"testing"
)

// Missing evidence gets a hint naming the command that produces it, not one
// to hand-write an attestation; a rebuild that ran and mismatched says so.
func TestMissingEvidenceHints(t *testing.T) {
	b, err := os.ReadFile("testdata/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "requiredEvidence: [provenance, sbom, vuln-scan]", "requiredEvidence: [provenance, sbom, vuln-scan, rebuild]", 1)
	p, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	failure := func(ev *Evidence, req string) Failure {
		t.Helper()
		d, err := p.Evaluate(context.Background(), ev, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range d.Failures {
			if f.Requirement == req {
				return f
			}
		}
		t.Fatalf("no %s failure in %+v", req, d.Failures)
		return Failure{}
	}

	ev := goodEvidence()
	ev.VulnScans = nil
	for _, req := range []string{"evidence:vuln-scan", ReqVulnerabilities} {
		if f := failure(ev, req); !strings.Contains(f.Fix, "custody scan") || strings.Contains(f.Fix, "custody attest") {
			t.Errorf("%s fix = %q, want custody scan", req, f.Fix)
		}
	}

	ev = goodEvidence()
	if f := failure(ev, "evidence:rebuild"); !strings.Contains(f.Fix, "custody rebuild") || strings.Contains(f.Fix, "custody attest") {
		t.Errorf("no rebuild: fix = %q, want custody rebuild", f.Fix)
	}

	ev.Rebuilds = []Rebuild{rb(dave, false)}
	f := failure(ev, "evidence:rebuild")
	if !strings.Contains(f.Message, "did not reproduce") || strings.Contains(f.Message, "no verified rebuild evidence") {
		t.Errorf("mismatch: message = %q, want it to say the rebuild did not reproduce the artifact", f.Message)
	}
	if !strings.Contains(f.Fix, "custody inspect") || strings.Contains(f.Fix, "custody attest") {
		t.Errorf("mismatch: fix = %q, want the command that shows what differs", f.Fix)
	}
}

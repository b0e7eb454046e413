package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
)

// setupRedFlags is setup's policy with a redFlags section (the audit key
// as signer, two denied kinds, a new dependency needing security, an
// exception) and a latency budget, and setup's evidence with a red flags
// statement by the audit key about its provenance: 3 flags (one needing
// the approval dave gave, one excepted, one only noted) and a dependency
// diff of 50 changes, which Rego sees too.
func setupRedFlags(b *testing.B) (*policy.Policy, *policy.Evidence) {
	_, ev := setup(b)
	p, err := policy.Parse([]byte(baseDoc() + `redFlags:
  signers: [{keyId: ` + key("9") + `}]
  deny: [new-source, builder-changed]
  requireApproval: {new-dependency: {group: security, count: 1}}
  exceptions: [{kind: toolchain-changed, until: 2027-01-31, approvedBy: security}]
latencyBudget: {verify: 200ms, evaluate: 5ms, total: 1s}
`))
	if err != nil {
		b.Fatal(err)
	}
	var deps []attest.DependencyChange
	for i := range 50 {
		deps = append(deps, attest.DependencyChange{Change: "changed", Name: fmt.Sprintf("example.com/dep%d", i), From: "v1.0.0 h1:aaaa", To: "v1.0.1 h1:bbbb"})
	}
	s := ev.Provenance[0].Signature
	s.Signer = policy.Principal{KeyID: key("9")}
	ev.RedFlagReports = []policy.RedFlagReport{{Signature: s, RedFlagsPredicate: attest.RedFlagsPredicate{
		ComputedBy: "https://custody.example", ComputedAt: now.Add(-time.Hour),
		Build:   attest.RedFlagsBuild{Bundle: ev.Provenance[0].Bundle},
		Lineage: attest.RedFlagsLineage{SubjectName: "app", SourceURI: "git+https://github.com/org/app", Track: "release", Compared: 64},
		Flags: []attest.RedFlag{
			{Kind: "new-dependency", Subject: "example.com/new", Message: "example.com/new v0.1.0 never appeared in the 64 earlier builds", Clear: "review it"},
			{Kind: "toolchain-changed", Subject: "go", Message: "go1.26.8 (was go1.26.7)"},
			{Kind: "unusual-hour", Message: "built at 03h UTC; this lineage never built between 01h and 05h"},
		},
		Dependencies: deps,
	}}}
	return p, ev
}

// BenchmarkEvaluateRedFlags is BenchmarkEvaluate with red flags.
func BenchmarkEvaluateRedFlags(b *testing.B) {
	p, ev := setupRedFlags(b)
	ctx := context.Background()
	d, err := p.Evaluate(ctx, ev, now)
	if err != nil || !d.Allowed || len(d.Cleared) == 0 {
		b.Fatalf("setup is not allowed with a cleared flag: %v %+v", err, d)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := p.Evaluate(ctx, ev, now); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportP99(b, lat)
}

// BenchmarkInterleavedRedFlags alternates the policy with red flags and
// without (setup's), in the same run, and reports the first's time over
// the second's.
func BenchmarkInterleavedRedFlags(b *testing.B) {
	p, ev := setup(b)
	rp, rev := setupRedFlags(b)
	ctx := context.Background()
	var with, without time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := rp.Evaluate(ctx, rev, now); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := p.Evaluate(ctx, ev, now); err != nil {
			b.Fatal(err)
		}
		with += t1.Sub(t0)
		without += time.Since(t1)
	}
	if without > 0 {
		b.ReportMetric(float64(with)/float64(without), "redflags/base")
	}
}

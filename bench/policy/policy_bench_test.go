// Package policy benchmarks policy evaluation (package policy) per
// artifact: a declarative policy with one Rego rule, against a prepared OPA
// query of the same Rego rule run alone on the same evidence. Results are
// in README.md.
package policy

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
)

const rule = `package custody
deny contains msg if {
  some a in input.attestations
  a.predicateType == "https://in-toto.io/attestation/test-result/v0.1"
  a.predicate.result == "FAILED"
  msg := "test results report FAILED"
}
`

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func key(c string) string { return strings.Repeat(c, 64) }

// baseDoc is setup's policy document.
func baseDoc() string {
	return `apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [https://custody.dev/builders/local@v1]
sources: [{repo: github.com/org/app, refs: [refs/tags/v*]}]
signers: [{keyId: ` + key("1") + `}]
requiredEvidence: [provenance, sbom, vuln-scan, test-results]
maxAge: 720h
requireLog: true
requireTimestamp: true
maxSeverity: high
exceptions: [{id: CVE-2026-1234, until: 2027-01-31, approvedBy: security}]
groups:
  release-managers: [{name: alice, keyIds: [` + key("a") + `]}, {name: bob, keyIds: [` + key("b") + `]}, {name: carol, keyIds: [` + key("c") + `]}]
  security: [{name: dave, keyIds: [` + key("d") + `]}]
approvals: [{group: release-managers, count: 2}, {group: security, count: 1}]
rego: |
` + indent(rule)
}

func setup(b *testing.B) (*policy.Policy, *policy.Evidence) {
	p, err := policy.Parse([]byte(baseDoc()))
	if err != nil {
		b.Fatal(err)
	}
	sig := func(k string) policy.Signature {
		return policy.Signature{Signer: policy.Principal{KeyID: key(k)}, LogVerified: true, TimestampVerified: true, SignedAt: now.Add(-time.Hour), Bundle: key("e")}
	}
	art := "sha256:" + key("f")
	appr := func(k, name string) policy.Approval {
		return policy.Approval{Signature: sig(k), ApprovalPredicate: attest.ApprovalPredicate{Environment: "prod", Artifact: art, Approver: name, Time: now.Add(-time.Minute)}}
	}
	var findings []policy.Vulnerability
	for i := 0; i < 50; i++ {
		findings = append(findings, policy.Vulnerability{ID: "CVE-2026-" + strings.Repeat("1", i%4+1), Severity: policy.SeverityMedium})
	}
	ev := &policy.Evidence{
		Artifact: art,
		Provenance: []policy.Provenance{{Signature: sig("1"), Facts: attest.ProvenanceFacts{
			BuilderID: "https://custody.dev/builders/local@v1", SourceURI: "git+https://github.com/org/app", SourceRef: "refs/tags/v1.0.0",
			SourceCommit: key("0")[:40], FinishedOn: now.Add(-2 * time.Hour), BuildID: "b1",
		}}},
		Attestations: []policy.Attestation{
			{Signature: sig("1"), PredicateType: attest.PredicateCycloneDX, Predicate: json.RawMessage(`{"bomFormat":"CycloneDX","components":[{"name":"x"},{"name":"y"}]}`)},
			{Signature: sig("1"), PredicateType: attest.PredicateTestResult, Predicate: json.RawMessage(`{"result":"PASSED","passedTests":["a","b"]}`)},
		},
		VulnScans: []policy.VulnScan{{Signature: sig("1"), PredicateType: attest.PredicateVulnsV02, Scanner: "grype", Findings: findings}},
		Approvals: []policy.Approval{appr("a", "alice"), appr("b", "bob"), appr("d", "dave")},
	}
	return p, ev
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// BenchmarkEvaluate is the whole policy: declarative checks plus the Rego
// rule, per artifact. It also reports the p99 latency.
func BenchmarkEvaluate(b *testing.B) {
	p, ev := setup(b)
	ctx := context.Background()
	d, err := p.Evaluate(ctx, ev, now)
	if err != nil || !d.Allowed {
		b.Fatalf("setup is not allowed: %v %+v", err, d)
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

// BenchmarkOPAAlone is the baseline: the same Rego rule as a prepared OPA
// query, given the same evidence as input the way OPA takes Go values.
func BenchmarkOPAAlone(b *testing.B) {
	_, ev := setup(b)
	ctx := context.Background()
	q, err := policy.PrepareRules(ctx, rule)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		msgs, err := q.Eval(ctx, ev, now)
		if err != nil || len(msgs) != 0 {
			b.Fatal(err, msgs)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportP99(b, lat)
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkInterleaved runs both, alternating, so that a loaded machine
// slows them alike, and reports custody's time over OPA's.
func BenchmarkInterleaved(b *testing.B) {
	p, ev := setup(b)
	ctx := context.Background()
	q, err := policy.PrepareRules(ctx, rule)
	if err != nil {
		b.Fatal(err)
	}
	var ours, opa time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := p.Evaluate(ctx, ev, now); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := q.Eval(ctx, ev, now); err != nil {
			b.Fatal(err)
		}
		ours += t1.Sub(t0)
		opa += time.Since(t1)
	}
	if opa > 0 {
		b.ReportMetric(float64(ours)/float64(opa), "custody/opa")
	}
}

package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

// auditKey signs red flags; builder (goodEvidence's provenance signer)
// must not be able to.
var auditKey = Principal{KeyID: "abcd" + strings.Repeat("0", 60)}

// rfPolicy is minimal, a security group, an approval-free base and the
// redFlags section of the example.
const rfPolicy = `apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [https://custody.dev/builders/local@v1]
signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]
groups:
  security:
    - {name: dave, keyIds: [dddd000000000000000000000000000000000000000000000000000000000000]}
    - {name: erin, keyIds: [eeee000000000000000000000000000000000000000000000000000000000000]}
redFlags:
  signers: [{keyId: abcd000000000000000000000000000000000000000000000000000000000000}]
  deny: [new-source, builder-changed]
  requireApproval: {new-dependency: {group: security, count: 1}}
  exceptions:
    - {kind: toolchain-changed, until: 2026-12-31, approvedBy: security}
`

// rfEvidence is goodEvidence's provenance with a red flags statement by
// signer about it holding flags.
func rfEvidence(signer Principal, flags ...attest.RedFlag) *Evidence {
	ev := goodEvidence()
	ev.Approvals = nil
	ev.VulnScans = nil
	ev.Attestations = nil
	ev.RedFlagReports = []RedFlagReport{redFlagReport(signer, ev.Provenance[0].Bundle, flags...)}
	return ev
}

func redFlagReport(signer Principal, bundle string, flags ...attest.RedFlag) RedFlagReport {
	s := sig(signer)
	s.Bundle = strings.Repeat("f", 64)
	return RedFlagReport{Signature: s, RedFlagsPredicate: attest.RedFlagsPredicate{
		ComputedBy: "https://custody.example", ComputedAt: now.Add(-time.Hour),
		Build:   attest.RedFlagsBuild{Bundle: bundle},
		Lineage: attest.RedFlagsLineage{SubjectName: "app", Compared: 12},
		Flags:   append([]attest.RedFlag{}, flags...),
	}}
}

var (
	flagNewDep = attest.RedFlag{Kind: "new-dependency", Subject: "github.com/evil/pkg",
		Message: "github.com/evil/pkg v1.0.0 never appeared in any of the 12 earlier builds", Clear: "review github.com/evil/pkg and approve the build"}
	flagSource = attest.RedFlag{Kind: "new-source", Subject: "github.com/fork/app",
		Message: "built from github.com/fork/app; every earlier build came from github.com/org/app", Clear: "build from github.com/org/app"}
	flagTool = attest.RedFlag{Kind: "toolchain-changed", Subject: "go", Message: "go1.26.0 (was go1.25.5)"}
	flagHour = attest.RedFlag{Kind: "unusual-hour", Message: "built at 03h UTC; this lineage never built between 01h and 05h"}
)

func TestRedFlags(t *testing.T) {
	p := mustParse(t, rfPolicy)
	tests := []struct {
		name    string
		ev      func() *Evidence
		failReq []string
		msgs    []string // substrings of the failures' messages and fixes
		cleared []Clearance
	}{
		{name: "no flags", ev: func() *Evidence { return rfEvidence(auditKey) }},
		{name: "flag the policy only notes", ev: func() *Evidence { return rfEvidence(auditKey, flagHour) }},
		{name: "denied kind", ev: func() *Evidence { return rfEvidence(auditKey, flagSource) },
			failReq: []string{"redflag:new-source"},
			msgs:    []string{"red flag new-source: built from github.com/fork/app", "build from github.com/org/app", "redFlags.exceptions"}},
		{name: "new dependency needs security", ev: func() *Evidence { return rfEvidence(auditKey, flagNewDep) },
			failReq: []string{"redflag:new-dependency"},
			msgs:    []string{"github.com/evil/pkg v1.0.0 never appeared", "needs 1 more approval(s) from group security", "1 of dave, erin must sign an approval", "review github.com/evil/pkg"}},
		{name: "new dependency approved by security", ev: func() *Evidence {
			ev := rfEvidence(auditKey, flagNewDep)
			ev.Approvals = []Approval{approval(dave, "prod")}
			return ev
		}, cleared: []Clearance{{Requirement: "redflag:new-dependency", By: ClearedByApproval, Detail: "approved by dave (group security)"}}},
		{name: "approval by a non-member does not clear", ev: func() *Evidence {
			ev := rfEvidence(auditKey, flagNewDep)
			ev.Approvals = []Approval{approval(alice, "prod")}
			return ev
		}, failReq: []string{"redflag:new-dependency"}, msgs: []string{"counts for no group"}},
		{name: "approval for staging does not clear prod", ev: func() *Evidence {
			ev := rfEvidence(auditKey, flagNewDep)
			ev.Approvals = []Approval{approval(dave, "staging")}
			return ev
		}, failReq: []string{"redflag:new-dependency"}},
		{name: "excepted kind", ev: func() *Evidence { return rfEvidence(auditKey, flagTool) }},
		{name: "each flag explained", ev: func() *Evidence { return rfEvidence(auditKey, flagSource, flagNewDep, flagHour) },
			failReq: []string{"redflag:new-source", "redflag:new-dependency"}},
		{name: "forged by the builder: ignored, fails closed", ev: func() *Evidence { return rfEvidence(builder) },
			failReq: []string{ReqRedFlags}, msgs: []string{"does not count: not a redFlags signer", "no red flags statement signed by a redFlags signer"}},
		{name: "builder's clean statement does not hide the server's flags", ev: func() *Evidence {
			ev := rfEvidence(auditKey, flagSource)
			ev.RedFlagReports = append(ev.RedFlagReports, redFlagReport(builder, ev.Provenance[0].Bundle))
			return ev
		}, failReq: []string{"redflag:new-source"}},
		{name: "no statement: fails closed", ev: func() *Evidence {
			ev := rfEvidence(auditKey)
			ev.RedFlagReports = nil
			return ev
		}, failReq: []string{ReqRedFlags}, msgs: []string{"redFlags.missing: allow"}},
		{name: "statement about another build only", ev: func() *Evidence {
			ev := rfEvidence(auditKey)
			ev.RedFlagReports[0].Build.Bundle = strings.Repeat("9", 64)
			return ev
		}, failReq: []string{ReqRedFlags}},
		{name: "flags of a statement about another build still count", ev: func() *Evidence {
			ev := rfEvidence(auditKey)
			ev.RedFlagReports = append(ev.RedFlagReports, redFlagReport(auditKey, strings.Repeat("9", 64), flagSource))
			return ev
		}, failReq: []string{"redflag:new-source"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Evaluate(context.Background(), tc.ev(), now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			all := ""
			for _, f := range d.Failures {
				got = append(got, f.Requirement)
				all += f.Message + "\n" + f.Fix + "\n"
			}
			if strings.Join(got, ",") != strings.Join(tc.failReq, ",") {
				t.Fatalf("failures %v, want %v: %+v", got, tc.failReq, d.Failures)
			}
			if d.Allowed != (len(tc.failReq) == 0) {
				t.Fatalf("allowed %v with failures %v", d.Allowed, got)
			}
			for _, m := range tc.msgs {
				if !strings.Contains(all, m) {
					t.Errorf("failures do not say %q:\n%s", m, all)
				}
			}
			if tc.cleared != nil && (len(d.Cleared) != len(tc.cleared) || d.Cleared[0] != tc.cleared[0]) {
				t.Errorf("cleared %+v, want %+v", d.Cleared, tc.cleared)
			}
		})
	}
}

// TestRedFlagsExplainEach: a denial names each flag of a kind and each
// way to clear it.
func TestRedFlagsExplainEach(t *testing.T) {
	p := mustParse(t, rfPolicy)
	other := attest.RedFlag{Kind: "new-dependency", Subject: "example.com/b", Message: "example.com/b v0.1.0 is new", Clear: "review example.com/b"}
	d, err := p.Evaluate(context.Background(), rfEvidence(auditKey, flagNewDep, other), now)
	if err != nil {
		t.Fatal(err)
	}
	f := d.Failures[0]
	for _, want := range []string{flagNewDep.Message, other.Message} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message %q does not name %q", f.Message, want)
		}
	}
	for _, want := range []string{flagNewDep.Clear, other.Clear} {
		if !strings.Contains(f.Fix, want) {
			t.Errorf("fix %q does not say %q", f.Fix, want)
		}
	}
}

func TestRedFlagsExceptions(t *testing.T) {
	y := strings.Replace(rfPolicy, "    - {kind: toolchain-changed, until: 2026-12-31, approvedBy: security}\n",
		"    - {kind: new-source, subject: github.com/fork/app, artifact: "+artifact+", until: 2026-06-01, approvedBy: security}\n", 1)
	p := mustParse(t, y)
	for _, tc := range []struct {
		name  string
		at    time.Time
		flag  attest.RedFlag
		allow bool
	}{
		{"the excepted subject, on its last day", now, flagSource, true},
		{"expired the next day", now.Add(24 * time.Hour), flagSource, false},
		{"another subject", now, attest.RedFlag{Kind: "new-source", Subject: "github.com/other/app", Message: "m"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := rfEvidence(auditKey, tc.flag)
			ev.Provenance[0].Facts.FinishedOn = tc.at.Add(-time.Hour)
			d, err := p.Evaluate(context.Background(), ev, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allow {
				t.Fatalf("allowed %v, want %v: %+v", d.Allowed, tc.allow, d.Failures)
			}
			if tc.allow && (len(d.Cleared) != 1 || d.Cleared[0].By != ClearedByException || d.Cleared[0].Requirement != "redflag:new-source") {
				t.Fatalf("cleared %+v, want new-source by exception", d.Cleared)
			}
		})
	}
}

func TestRedFlagsMissingAllow(t *testing.T) {
	p := mustParse(t, strings.Replace(rfPolicy, "  deny: [", "  missing: allow\n  deny: [", 1))
	ev := rfEvidence(auditKey)
	ev.RedFlagReports = nil
	d, err := p.Evaluate(context.Background(), ev, now)
	if err != nil || !d.Allowed {
		t.Fatalf("missing: allow denied: %v %+v", err, d)
	}
	// A forged statement still does not count, and the flags of the
	// audit key's still act.
	d, _ = p.Evaluate(context.Background(), rfEvidence(auditKey, flagSource), now)
	if d.Allowed {
		t.Fatal("missing: allow let a denied flag through")
	}
}

// TestRedFlagsRego: Rego sees the counting flags as input.redFlags, and
// never a forged statement's.
func TestRedFlagsRego(t *testing.T) {
	y := rfPolicy + `rego: |
  package custody
  deny contains msg if {
    some f in input.redFlags
    f.kind == "unusual-hour"
    msg := sprintf("no builds at night: %s", [f.message])
  }
`
	p := mustParse(t, y)
	d, err := p.Evaluate(context.Background(), rfEvidence(auditKey, flagHour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Failures) != 1 || d.Failures[0].Requirement != ReqRego || !strings.Contains(d.Failures[0].Message, "no builds at night: built at 03h") {
		t.Fatalf("rego did not see input.redFlags: %+v", d.Failures)
	}
	ev := rfEvidence(auditKey)
	ev.RedFlagReports = append(ev.RedFlagReports, redFlagReport(builder, ev.Provenance[0].Bundle, flagHour))
	d, _ = p.Evaluate(context.Background(), ev, now)
	if !d.Allowed {
		t.Fatalf("rego saw a forged statement's flags: %+v", d.Failures)
	}
}

func TestRedFlagsParse(t *testing.T) {
	base := `apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [b]
signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]
groups: {security: [{name: dave, keyIds: [dddd000000000000000000000000000000000000000000000000000000000000]}]}
`
	signer := "  signers: [{keyId: abcd000000000000000000000000000000000000000000000000000000000000}]\n"
	for _, tc := range []struct{ name, section, err string }{
		{"no signers", "redFlags: {deny: [new-source]}\n", "redFlags.signers is empty"},
		{"unknown kind", "redFlags:\n" + signer + "  deny: [new-sauce]\n", `"new-sauce" is not a red flag kind`},
		{"twice", "redFlags:\n" + signer + "  deny: [new-source, new-source]\n", "listed twice"},
		{"deny and approve", "redFlags:\n" + signer + "  deny: [new-source]\n  requireApproval: {new-source: {group: security, count: 1}}\n", "both denied and needs approval"},
		{"unknown group", "redFlags:\n" + signer + "  requireApproval: {new-dependency: {group: sec, count: 1}}\n", `group "sec", which is not in groups`},
		{"count too high", "redFlags:\n" + signer + "  requireApproval: {new-dependency: {group: security, count: 2}}\n", "has only 1 member"},
		{"zero count", "redFlags:\n" + signer + "  requireApproval: {new-dependency: {group: security, count: 0}}\n", "must be at least 1"},
		{"bad date", "redFlags:\n" + signer + "  exceptions: [{kind: new-source, until: tomorrow, approvedBy: x}]\n", "not a date"},
		{"no approver", "redFlags:\n" + signer + "  exceptions: [{kind: new-source, until: 2026-01-01}]\n", "needs kind, until and approvedBy"},
		{"bad artifact", "redFlags:\n" + signer + "  exceptions: [{kind: new-source, artifact: abc, until: 2026-01-01, approvedBy: x}]\n", "not sha256:HEX"},
		{"missing", "redFlags:\n" + signer + "  missing: maybe\n", "neither deny nor allow"},
		{"unknown field", "redFlags:\n" + signer + "  denny: [new-source]\n", "not found"},
		{"bad signer", "redFlags:\n  signers: [{keyId: xyz}]\n", "redFlags.signers[0]"},
		{"budget step", "latencyBudget: {verfy: 200ms}\n", `step "verfy"`},
		{"budget value", "latencyBudget: {verify: fast}\n", "positive duration"},
		{"budget negative", "latencyBudget: {verify: -1s}\n", "positive duration"},
		{"budget over an hour", "latencyBudget: {total: 2h}\n", "at most 1h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base + tc.section))
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want ErrMalformed saying %q", err, tc.err)
			}
		})
	}
	p := mustParse(t, base+"redFlags:\n"+signer+"  requireApproval: {new-dependency: {group: security, count: 1}}\nlatencyBudget: {verify: 200ms, total: 1s}\n")
	if p.Budget(StepVerify) != 200*time.Millisecond || p.Budget(StepFetch) != 0 {
		t.Fatalf("budgets %v", p.budget)
	}
}

// TestLatencyBudget: a decision records each step's time against the
// budget and which were over, never changing the outcome; without a
// budget it records nothing.
func TestLatencyBudget(t *testing.T) {
	p := mustParse(t, rfPolicy+"latencyBudget: {verify: 200ms, total: 1s}\n")
	d, err := p.Evaluate(context.Background(), rfEvidence(auditKey), now)
	if err != nil || !d.Allowed {
		t.Fatal(err, d)
	}
	p.Measure(d, StepVerify, 300*time.Millisecond)
	p.Measure(d, StepTotal, 400*time.Millisecond)
	p.Measure(d, StepFetch, time.Minute)
	if got := d.OverBudget(); len(got) != 1 || got[0] != StepVerify {
		t.Fatalf("over budget %v, want [verify]", got)
	}
	var steps []string
	for _, l := range d.Latency {
		steps = append(steps, l.Step)
	}
	if strings.Join(steps, ",") != "fetch,verify,evaluate,total" {
		t.Fatalf("steps %v", steps)
	}
	if !d.Allowed {
		t.Fatal("a step over budget changed the decision")
	}
	q := mustParse(t, rfPolicy)
	d, _ = q.Evaluate(context.Background(), rfEvidence(auditKey), now)
	q.Measure(d, StepVerify, time.Hour)
	if len(d.Latency) != 0 {
		t.Fatalf("latency recorded without a budget: %+v", d.Latency)
	}
}

package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/policy"
)

// TestDecisionFigures: decisions recorded as VSAs through the server's
// signing service (as custody deploy --server and the admission webhook
// record them) give the share of decisions over the latency budget per
// environment and step, and the denials a later decision cleared with an
// approval or an exception, per reason, on /metrics and the metrics page.
func TestDecisionFigures(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	dep, err := client.New(s.url, s.deployer, client.WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-10 * time.Minute)
	lat := func(verify float64) []policy.StepLatency {
		return []policy.StepLatency{{Step: policy.StepVerify, Seconds: verify, BudgetSeconds: 0.2, OverBudget: verify > 0.2},
			{Step: policy.StepTotal, Seconds: verify + 0.1, BudgetSeconds: 1}}
	}
	for i, d := range []*policy.Decision{
		// good is held for a new dependency, then security approves it:
		// a false positive of redflag:new-dependency, cleared by approval.
		{Environment: "prod", Artifact: s.good, Failures: []policy.Failure{{Requirement: "redflag:new-dependency", Message: "m", Fix: "f"}}, Latency: lat(0.3)},
		{Environment: "prod", Artifact: s.good, Allowed: true, Cleared: []policy.Clearance{{Requirement: "redflag:new-dependency", By: policy.ClearedByApproval, Detail: "approved by eve"}}, Latency: lat(0.1)},
		// bad is denied for a vulnerability and stays denied.
		{Environment: "prod", Artifact: s.bad, Failures: []policy.Failure{{Requirement: "vulnerabilities", Message: "m", Fix: "f"}}, Latency: lat(0.15)},
		{Environment: "prod", Artifact: s.bad, Failures: []policy.Failure{{Requirement: "vulnerabilities", Message: "m", Fix: "f"}}, Latency: lat(0.25)},
	} {
		d.PolicyDigest, d.Time, d.Passed = "sha256:"+strings.Repeat("0", 64), at.Add(time.Duration(i)*time.Minute), []string{}
		vsa, err := d.VSA("https://custody.example/deploy")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dep.Sign(ctx, vsa); err != nil {
			t.Fatalf("record decision: %v", err)
		}
	}
	code, prom := get(t, s.url+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, w := range []string{
		`custody_decisions_measured{environment="prod",step="verify"} 4`,
		`custody_decisions_over_budget_ratio{environment="prod",step="verify"} 0.5`,
		`custody_decisions_over_budget_ratio{environment="prod",step="total"} 0`,
		`custody_denials{reason="redflag:new-dependency"} 1`,
		`custody_denials{reason="vulnerabilities"} 1`,
		`custody_denials_cleared{by="approval",reason="redflag:new-dependency"} 1`,
	} {
		if !strings.Contains(prom, w) {
			t.Errorf("/metrics: missing %q", w)
		}
	}
	if strings.Contains(prom, `custody_denials_cleared{by="approval",reason="vulnerabilities"}`) {
		t.Error("/metrics: a denial never cleared is counted as cleared")
	}
	code, page := get(t, s.url+"/ui/metrics", s.auditor)
	if code != http.StatusOK {
		t.Fatalf("/ui/metrics: %d", code)
	}
	for _, w := range []string{"Decisions over their latency budget", "prod verify (2 of 4)", "50.0%",
		"<td>redflag:new-dependency</td><td>1</td><td>1</td><td>0</td><td>100%</td>",
		"<td>vulnerabilities</td><td>1</td><td>0</td><td>0</td><td>0%</td>"} {
		if !strings.Contains(page, w) {
			t.Errorf("/ui/metrics: missing %q", w)
		}
	}
}

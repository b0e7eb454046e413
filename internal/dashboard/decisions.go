package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
)

// decisionFigures are what the newest recorded decisions (VSAs of custody
// deploy and the admission webhook, signed by a decision signer) say:
// how often each step was over its policy's latency budget, and which
// denials a later decision about the same artifact in the same
// environment cleared with an approval or an exception (false positives),
// per reason.
type decisionFigures struct {
	// Read is how many decisions were read.
	Read int
	// Budget counts, per environment and step, the decisions that
	// measured the step against a budget and those over it.
	Budget map[[2]string]*budgetCount
	// Denied counts, per reason (a failed requirement), the artifacts
	// denied for it in an environment; Cleared, per reason and way, those
	// of them a later decision cleared.
	Denied  map[string]int
	Cleared map[[2]string]int
}

type budgetCount struct{ N, Over int }

// vsaDecision is what the figures read of a VSA.
type vsaDecision struct {
	Custody *policy.VSADecisionExt `json:"custody"`
}

// decisionFiguresOf reads the newest VSAs (in index order) signed by a
// decision signer. Nil without Config.DecisionSigners.
func (d *Dashboard) decisionFiguresOf(ctx context.Context) (*decisionFigures, error) {
	if d.cfg.DecisionSigners == nil {
		return nil, nil
	}
	recs, err := d.newest(ctx, attest.PredicateVSA)
	if err != nil {
		return nil, err
	}
	signers := d.cfg.DecisionSigners()
	f := &decisionFigures{Budget: map[[2]string]*budgetCount{}, Denied: map[string]int{}, Cleared: map[[2]string]int{}}
	denied := map[[3]string]bool{}  // environment, artifact, reason
	cleared := map[[3]string]bool{} // counted once
	for _, rec := range recs {
		if !slices.Contains(signers, rec.SignerKeyID) || len(rec.Subjects) == 0 {
			continue
		}
		st, err := statementOf(rec.Bundle)
		if err != nil {
			continue
		}
		var v vsaDecision
		if json.Unmarshal(st.Predicate, &v) != nil || v.Custody == nil || v.Custody.Environment == "" {
			continue
		}
		f.Read++
		env, art := v.Custody.Environment, rec.Subjects[0].Digests["sha256"]
		for _, l := range v.Custody.Latency {
			if l.BudgetSeconds <= 0 || !slices.Contains(policy.Steps, l.Step) {
				continue
			}
			k := [2]string{env, l.Step}
			if f.Budget[k] == nil {
				f.Budget[k] = &budgetCount{}
			}
			f.Budget[k].N++
			if l.OverBudget {
				f.Budget[k].Over++
			}
		}
		for _, fl := range v.Custody.Failures {
			k := [3]string{env, art, fl.Requirement}
			if !denied[k] {
				denied[k] = true
				f.Denied[fl.Requirement]++
			}
		}
		for _, c := range v.Custody.Cleared {
			k := [3]string{env, art, c.Requirement}
			if denied[k] && !cleared[k] && (c.By == policy.ClearedByApproval || c.By == policy.ClearedByException) {
				cleared[k] = true
				f.Cleared[[2]string{c.Requirement, c.By}]++
			}
		}
	}
	return f, nil
}

// decisionCollector exports decisionFigures on /metrics.
type decisionCollector struct{ d *Dashboard }

var (
	descMeasured = prometheus.NewDesc("custody_decisions_measured",
		"Recorded decisions (newest 500 VSAs by a decision signer) that measured a step against their policy's latency budget, by environment and step.",
		[]string{"environment", "step"}, nil)
	descOverBudget = prometheus.NewDesc("custody_decisions_over_budget_ratio",
		"Share of those decisions whose step took longer than the policy's latencyBudget, by environment and step.",
		[]string{"environment", "step"}, nil)
	descDenied = prometheus.NewDesc("custody_denials",
		"Artifacts a recorded decision denied in an environment (newest 500 VSAs), by reason (the failed requirement).",
		[]string{"reason"}, nil)
	descCleared = prometheus.NewDesc("custody_denials_cleared",
		"Of those, the ones a later decision cleared with an approval or an exception (false positives), by reason and by (approval, exception).",
		[]string{"reason", "by"}, nil)
)

func (c decisionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMeasured
	ch <- descOverBudget
	ch <- descDenied
	ch <- descCleared
}

func (c decisionCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.d.stats.get(context.Background())
	if err != nil || s.decisions == nil {
		return
	}
	f := s.decisions
	for k, b := range f.Budget {
		ch <- prometheus.MustNewConstMetric(descMeasured, prometheus.GaugeValue, float64(b.N), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(descOverBudget, prometheus.GaugeValue, float64(b.Over)/float64(b.N), k[0], k[1])
	}
	for r, n := range f.Denied {
		ch <- prometheus.MustNewConstMetric(descDenied, prometheus.GaugeValue, float64(n), r)
	}
	for k, n := range f.Cleared {
		ch <- prometheus.MustNewConstMetric(descCleared, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// falsePositive is one row of the metrics page's false positive table.
type falsePositive struct {
	Reason      string
	Denied      int
	ByApproval  int
	ByException int
	Share       string
}

// decisionCharts draws the share of decisions over budget per environment
// and step, and the denials later cleared per reason.
func decisionCharts(f *decisionFigures) (budget, cleared Chart, rows []falsePositive) {
	var bl []string
	var bv []float64
	keys := make([][2]string, 0, len(f.Budget))
	for k := range f.Budget {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && slices.Index(policy.Steps, keys[i][1]) < slices.Index(policy.Steps, keys[j][1])
	})
	for _, k := range keys {
		b := f.Budget[k]
		bl = append(bl, fmt.Sprintf("%s %s (%d of %d)", k[0], k[1], b.Over, b.N))
		bv = append(bv, 100*float64(b.Over)/float64(b.N))
	}
	budget = hbars("Decisions over their latency budget (newest recorded decisions)", bl, bv, func(v float64) string { return fmt.Sprintf("%.1f%%", v) })
	reasons := make([]string, 0, len(f.Denied))
	for r := range f.Denied {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var cl []string
	var cv []float64
	for _, r := range reasons {
		fp := falsePositive{Reason: r, Denied: f.Denied[r], ByApproval: f.Cleared[[2]string{r, policy.ClearedByApproval}],
			ByException: f.Cleared[[2]string{r, policy.ClearedByException}]}
		fp.Share = fmt.Sprintf("%.0f%%", 100*float64(fp.ByApproval+fp.ByException)/float64(fp.Denied))
		rows = append(rows, fp)
		if n := fp.ByApproval + fp.ByException; n > 0 {
			cl, cv = append(cl, r), append(cv, float64(n))
		}
	}
	cleared = hbars("Denials later cleared by an approval or exception (false positives), by reason", cl, cv, intf)
	return budget, cleared, rows
}

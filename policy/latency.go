package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Steps of a decision a latencyBudget may bound.
const (
	// StepFetch is reading the evidence (a directory, a server, a
	// registry).
	StepFetch = "fetch"
	// StepVerify is verifying it (gate.Gather).
	StepVerify = "verify"
	// StepEvaluate is Evaluate itself.
	StepEvaluate = "evaluate"
	// StepTotal is the whole decision.
	StepTotal = "total"
)

// Steps lists the steps, in the order a Decision lists their latency.
var Steps = []string{StepFetch, StepVerify, StepEvaluate, StepTotal}

// maxBudget bounds a latency budget.
const maxBudget = time.Hour

// StepLatency is how long one step of a decision took.
type StepLatency struct {
	Step    string  `json:"step"`
	Seconds float64 `json:"seconds"`
	// BudgetSeconds is the policy's budget for the step (0: none).
	BudgetSeconds float64 `json:"budgetSeconds,omitempty"`
	// OverBudget is true when the step took longer than its budget.
	OverBudget bool `json:"overBudget,omitempty"`
}

// validateLatencyBudget checks latencyBudget: known steps, each a
// positive Go duration of at most an hour.
func (p *Policy) validateLatencyBudget() error {
	p.budget = map[string]time.Duration{}
	for step, v := range p.LatencyBudget {
		if !slices.Contains(Steps, step) {
			return fmt.Errorf("latencyBudget names step %q; steps are %s", step, strings.Join(Steps, ", "))
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxBudget {
			return fmt.Errorf("latencyBudget.%s %q is not a positive duration of at most 1h, such as 200ms", step, v)
		}
		p.budget[step] = d
	}
	return nil
}

// Budget returns the policy's budget for step, or 0 when it declares none.
func (p *Policy) Budget(step string) time.Duration { return p.budget[step] }

// Measure records on d that step took took, against the policy's budget,
// replacing an earlier record of the step. It records nothing when the
// policy declares no latencyBudget. The caller of Evaluate measures the
// steps around it (fetch, verify, total); Evaluate measures evaluate.
func (p *Policy) Measure(d *Decision, step string, took time.Duration) {
	if d == nil || len(p.budget) == 0 {
		return
	}
	l := StepLatency{Step: step, Seconds: took.Seconds()}
	if b := p.budget[step]; b > 0 {
		l.BudgetSeconds = b.Seconds()
		l.OverBudget = took > b
	}
	d.Latency = slices.DeleteFunc(d.Latency, func(x StepLatency) bool { return x.Step == step })
	d.Latency = append(d.Latency, l)
	slices.SortFunc(d.Latency, func(a, b StepLatency) int { return slices.Index(Steps, a.Step) - slices.Index(Steps, b.Step) })
}

// OverBudget returns the steps of d that took longer than their budget.
func (d *Decision) OverBudget() []string {
	var out []string
	for _, l := range d.Latency {
		if l.OverBudget {
			out = append(out, l.Step)
		}
	}
	return out
}

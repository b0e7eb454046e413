//go:build !custody_norego

package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/custody-dev/custody/attest"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// RegoQuery is the query custom rules answer: a set of deny messages.
const RegoQuery = "data.custody.deny"

// Rules is a prepared custom rule module (see PrepareRules).
type Rules struct {
	pq rego.PreparedEvalQuery
}

// prepared compiles and prepares the policy's Rego once.
func (p *Policy) prepared() (*Rules, error) {
	p.regoOnce.Do(func() {
		q, err := PrepareRules(context.Background(), p.Rego)
		if err != nil {
			p.regoErr = err
			return
		}
		p.regoQ = q
	})
	return p.regoQ, p.regoErr
}

// PrepareRules compiles a custom rule module (package custody, a "deny" set
// of strings) into a prepared query of RegoQuery. Only the builtins in
// regoAllowed may be called; any other is refused with an error naming it. Exported for benchmarks and tools that want the
// bare OPA query.
func PrepareRules(ctx context.Context, module string) (*Rules, error) {
	mod, err := ast.ParseModuleWithOpts("policy.rego", module, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("couldn't parse rego: %w", err)
	}
	if got := mod.Package.Path.String(); got != "data.custody" {
		return nil, fmt.Errorf("rego package is %s, want package custody", got)
	}
	if err := checkBuiltins(mod); err != nil {
		return nil, err
	}
	pq, err := rego.New(
		rego.Query(RegoQuery),
		rego.ParsedModule(mod),
		rego.Store(inmem.New()),
		rego.Capabilities(regoCapabilities()),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't compile rego: %w", err)
	}
	return &Rules{pq: pq}, nil
}

// Eval runs the query with input (any JSON-able value, or an ast.Value) at
// now and returns the deny messages, sorted.
func (q *Rules) Eval(ctx context.Context, input any, now time.Time) ([]string, error) {
	opts := []rego.EvalOption{rego.EvalTime(now)}
	if v, ok := input.(ast.Value); ok {
		opts = append(opts, rego.EvalParsedInput(v))
	} else {
		opts = append(opts, rego.EvalInput(input))
	}
	rs, err := q.pq.Eval(ctx, opts...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		for _, e := range r.Expressions {
			switch v := e.Value.(type) {
			case []any:
				for _, m := range v {
					if s, ok := m.(string); ok {
						out = append(out, s)
					} else {
						b, _ := json.Marshal(m)
						out = append(out, string(b))
					}
				}
			case nil:
			default:
				return nil, fmt.Errorf("deny is %T, not a set of messages", e.Value)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// regoInput converts ev to the Rego input value (regoInputJSON, then
// regoValue), with redFlags: the red flags p counts.
func (p *Policy) regoInput(ev *Evidence) (ast.Value, error) {
	b, err := regoInputJSON(ev, p.RegoRedFlags(ev))
	if err != nil {
		return nil, err
	}
	return regoValue(b)
}

// regoIn is the Rego input: the evidence and the red flags that count.
type regoIn struct {
	*Evidence
	RedFlags []attest.RedFlag `json:"redFlags"`
}

// regoInputJSON is the JSON form of the Rego input: ev with empty lists as
// [] (never null), so that count() and iteration work on them, and
// redFlags.
func regoInputJSON(ev *Evidence, flags []attest.RedFlag) ([]byte, error) {
	in := *ev
	in.Provenance = nonNil(in.Provenance)
	in.Attestations = nonNil(in.Attestations)
	in.Approvals = nonNil(in.Approvals)
	in.Rebuilds = nonNil(in.Rebuilds)
	in.VulnScans = nonNil(in.VulnScans)
	in.Reviews = nonNil(in.Reviews)
	in.Authors = nonNil(in.Authors)
	in.RedFlagReports = nonNil(in.RedFlagReports)
	return json.Marshal(regoIn{Evidence: &in, RedFlags: nonNil(flags)})
}

func (p *Policy) checkRego(ctx context.Context, d *Decision, ev *Evidence, now time.Time) error {
	q, err := p.prepared()
	if err != nil {
		d.fail(ReqRego, "custom rules could not be prepared: "+err.Error(), "fix the policy's rego")
		return nil
	}
	in, err := p.regoInput(ev)
	if err != nil {
		d.fail(ReqRego, "evidence could not be given to the custom rules: "+err.Error(), "report this as a custody bug")
		return nil
	}
	msgs, err := q.Eval(ctx, in, now)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.fail(ReqRego, "custom rules failed to evaluate: "+err.Error(), "fix the policy's rego; a rule that errors denies")
		return nil
	}
	for _, m := range msgs {
		d.fail(ReqRego, m, "satisfy the custom rule, or change it in the policy")
	}
	if len(msgs) == 0 {
		d.pass("custom rules: no deny")
	}
	return nil
}

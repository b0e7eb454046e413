//go:build custody_norego

package policy

import (
	"context"
	"time"
)

// Rules stands for prepared custom rules; in this build there are none.
type Rules struct{}

// prepared does not compile Rego in this build: the rules are refused when
// a decision needs them (checkRego), not when the policy is read.
func (p *Policy) prepared() (*Rules, error) { return nil, nil }

// checkRego refuses to decide: leaving the rules out would allow what they
// deny.
func (p *Policy) checkRego(context.Context, *Decision, *Evidence, time.Time) error {
	return ErrRegoUnavailable
}

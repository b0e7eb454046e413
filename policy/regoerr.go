package policy

import "errors"

// ErrRegoUnavailable is returned (wrapped) by Evaluate for a policy with
// custom Rego rules in a build without the Rego engine (build tag
// custody_norego, the lean verifier custody-verify): the decision needs the
// full custody binary.
var ErrRegoUnavailable = errors.New("this policy has custom Rego rules, which this build does not evaluate: decide with the full custody binary (custody verify --pack)")

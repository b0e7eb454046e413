package attest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// PredicateApproval is the in-toto predicate type of an approval, written
// by `custody approve` (schema in policy/APPROVAL.md): a person's approval
// of one artifact for one environment. Its statement's only subject is the
// artifact.
const PredicateApproval = "https://custody.dev/approval/v1"

// MaxApprovalBytes bounds the approval predicates ParseApproval reads.
const MaxApprovalBytes = 64 << 10

// ApprovalPredicate is the predicate of PredicateApproval.
type ApprovalPredicate struct {
	Environment string    `json:"environment"`
	Artifact    string    `json:"artifact"` // sha256:HEX
	Approver    string    `json:"approver"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
}

// NewApproval returns the in-toto statement (PredicateApproval, the
// artifact as its only subject) that an approver signs. It validates the
// predicate as ParseApproval does.
func NewApproval(p ApprovalPredicate) (*Statement, error) {
	p.Time = p.Time.UTC().Truncate(time.Second)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	sub := Subject{Digest: map[string]string{"sha256": strings.TrimPrefix(p.Artifact, "sha256:")}}
	return NewStatement([]Subject{sub}, PredicateApproval, p)
}

// ParseApproval parses an approval predicate from untrusted bytes. Unlike
// the larger predicates it refuses members it does not know. Besides what
// decodePredicate refuses (over MaxApprovalBytes, a duplicate member,
// invalid UTF-8), it refuses what Validate refuses.
func ParseApproval(b []byte) (*ApprovalPredicate, error) {
	var p ApprovalPredicate
	if err := decodePredicate("approval", b, MaxApprovalBytes, true, &p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the rules ParseApproval applies: an environment and an
// approver of 1 to 1024 bytes, a reason of at most 4096, an artifact that
// is sha256:HEX (lowercase) and a time.
func (p *ApprovalPredicate) Validate() error {
	switch {
	case p.Environment == "" || len(p.Environment) > maxNameLen:
		return errors.New("approval has no environment (or one over 1024 bytes)")
	case p.Approver == "" || len(p.Approver) > maxNameLen:
		return errors.New("approval has no approver (or one over 1024 bytes)")
	case len(p.Reason) > 4*maxNameLen:
		return errors.New("approval reason is over 4096 bytes")
	case !sha256Digest.MatchString(p.Artifact):
		return fmt.Errorf("approval artifact %q is not sha256:HEX (64 lowercase hex digits)", p.Artifact)
	case p.Time.IsZero():
		return errors.New("approval has no time")
	}
	return nil
}

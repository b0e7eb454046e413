package pack

import (
	"context"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
)

// Result is the decision a pack gives: the environment's policy evaluated
// on the evidence that verified, as custody policy check decides with the
// server, and the quarantine the packer found.
type Result struct {
	Decision *policy.Decision `json:"decision"`
	// Rejected are the pack's bundles that did not become evidence.
	Rejected []gate.Rejected `json:"rejected"`
	// RedFlags are the red flags statements the decision did not count
	// (the device was not given the audit key), shown apart.
	RedFlags []RedFlagsSeen `json:"redFlags"`
	// Quarantined is the incident that quarantined the artifact, or "".
	Quarantined string `json:"quarantined,omitempty"`
	// QuarantineChecked is true when the packer consulted an incident
	// ledger. A pack whose packer did not cannot say the artifact is not
	// quarantined, and allows nothing.
	QuarantineChecked bool `json:"quarantineChecked"`
	// Allowed is the decision's Allowed, the quarantine checked and clear.
	Allowed     bool          `json:"allowed"`
	Checkpoints []*Checkpoint `json:"checkpoints"`
	TrustRoot   int           `json:"trustRootVersion"`
	Created     time.Time     `json:"packCreated"`
}

// Decide evaluates the pack's policy on its bundles, verified with extra
// (the device's --key/--trusted-root, may be nil) and the trust root's
// keys, logs, CAs and TSAs, at now. The pack's own trusted-root.json is
// not trusted: only the packer vouches for it, and a packer key must not
// be able to add a CA or a log that the admins did not sign into the
// trust root (custody policy check does not trust it either).
func (o *Opened) Decide(ctx context.Context, extra root.TrustedMaterial, now time.Time) (*Result, error) {
	var tms root.TrustedMaterialCollection
	if extra != nil {
		tms = append(tms, extra)
	}
	tm, err := o.Root.Root.TrustedMaterial()
	if err != nil {
		return nil, fmt.Errorf("trust root version %d: %w", o.Root.Version, err)
	}
	tms = append(tms, tm)
	ev, rej, err := gate.Gather(ctx, o.Artifact, o.Bundles, tms)
	if err != nil {
		return nil, err
	}
	d, err := o.Policy.Policy().Evaluate(ctx, ev, now)
	if err != nil {
		return nil, err
	}
	rej, seen := o.redFlagsApart(ctx, rej)
	q := o.Manifest.Quarantine
	r := &Result{Decision: d, Rejected: rej, RedFlags: seen, Quarantined: q.Incident, QuarantineChecked: q.Checked,
		Checkpoints: o.Checkpoints, TrustRoot: o.Root.Version, Created: o.Manifest.Created}
	r.Allowed = d.Allowed && q.Checked && q.Incident == ""
	return r, nil
}

// Refusal says why r does not allow the artifact and what would fix it;
// "" when it is allowed. Quarantine comes first, then a quarantine nobody
// consulted, then the policy's first failure.
func (r *Result) Refusal() (reason, fix string) {
	d := r.Decision
	switch {
	case r.Quarantined != "":
		return fmt.Sprintf("%s is quarantined by incident %s", d.Artifact, r.Quarantined),
			"an incident quarantined this artifact: 'custody incident list' shows which, and what to deploy instead"
	case !r.QuarantineChecked:
		return fmt.Sprintf("the packer of this pack of %s consulted no incident ledger: nothing says it is not quarantined", d.Artifact),
			"make the pack with 'custody pack --server', or with --data DIR whose incident ledger it consults"
	case !d.Allowed && len(d.Failures) > 0:
		first := d.Failures[0]
		return fmt.Sprintf("%s denied in %s: %s: %s", d.Artifact, d.Environment, first.Requirement, first.Message), first.Fix
	case !d.Allowed:
		return fmt.Sprintf("%s denied in %s", d.Artifact, d.Environment), ""
	}
	return "", ""
}

package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
)

// ReqRedFlags is the requirement of a red flags statement itself (none
// signed by a redFlags signer about a verified provenance); a flag the
// policy acts on fails as reqRedFlagPrefix + its kind.
const (
	ReqRedFlags      = "redflags"
	reqRedFlagPrefix = "redflag:"
)

// Values of RedFlags.Missing.
const (
	RedFlagsMissingDeny  = "deny"
	RedFlagsMissingAllow = "allow"
)

// RedFlags says how the policy acts on red flags: the findings a custody
// server signs (attest.PredicateRedFlags, https://custody.dev/redflags/v1)
// when it compares a build with the earlier builds of its lineage.
//
// Only statements signed by one of Signers count; the server signs them
// with its audit key, so Signers names that key (custody policy key-id
// audit.pub). A statement signed by anyone else (a builder that writes
// its own "no red flags") is ignored, and the decision says so. With a
// RedFlags section, a decision needs at least one counting statement about
// a verified provenance of the artifact: without one it denies (fails
// closed) unless Missing is "allow".
type RedFlags struct {
	// Signers may sign red flags statements: the server's audit key.
	// Required.
	Signers []Principal `yaml:"signers" json:"signers"`
	// Deny lists kinds (attest.RedFlagKinds) that deny the artifact.
	Deny []string `yaml:"deny,omitempty" json:"deny,omitempty"`
	// RequireApproval maps a kind to the approvals it needs: Count
	// distinct members of Group (see Groups) who approved the artifact for
	// this environment, counted as the approvals rules count them. A kind
	// is in Deny or in RequireApproval, not both.
	RequireApproval map[string]ApprovalRule `yaml:"requireApproval,omitempty" json:"requireApproval,omitempty"`
	// Exceptions waive flags until a date.
	Exceptions []RedFlagException `yaml:"exceptions,omitempty" json:"exceptions,omitempty"`
	// Missing is what a decision does without a counting red flags
	// statement about a verified provenance: "deny" (the default) or
	// "allow".
	Missing string `yaml:"missing,omitempty" json:"missing,omitempty"`
}

// RedFlagException waives the flags of one kind (those about Subject only,
// when given; of Artifact only, when given) through Until (inclusive, UTC).
type RedFlagException struct {
	Kind       string `yaml:"kind" json:"kind"`
	Subject    string `yaml:"subject,omitempty" json:"subject,omitempty"`
	Artifact   string `yaml:"artifact,omitempty" json:"artifact,omitempty"`
	Until      string `yaml:"until" json:"until"` // YYYY-MM-DD
	ApprovedBy string `yaml:"approvedBy" json:"approvedBy"`

	until time.Time
}

// RedFlagReport is one verified red flags statement about the artifact,
// whoever signed it; the policy's redFlags.signers say which count.
type RedFlagReport struct {
	Signature
	attest.RedFlagsPredicate
}

// Clearance is a requirement that would have failed but held because of
// an approval or an exception: a red flag approved or excepted, a
// vulnerability excepted. A denial later cleared so is what the metrics
// count as a false positive.
type Clearance struct {
	Requirement string `json:"requirement"`
	// By is "approval" or "exception".
	By     string `json:"by"`
	Detail string `json:"detail"`
}

// Ways a Clearance clears.
const (
	ClearedByApproval  = "approval"
	ClearedByException = "exception"
)

func (d *Decision) clear(req, by, detail string) {
	d.Cleared = append(d.Cleared, Clearance{Requirement: req, By: by, Detail: detail})
}

func knownRedFlagKind(k string) bool { return slices.Contains(attest.RedFlagKinds, k) }

// validateRedFlags checks the redFlags section against the groups
// validateGroups indexed.
func (p *Policy) validateRedFlags() error {
	rf := p.RedFlags
	if rf == nil {
		return nil
	}
	if len(rf.Signers) == 0 {
		return errors.New("redFlags.signers is empty: name the key that signs red flags (the server's audit key: custody policy key-id audit.pub)")
	}
	if len(rf.Signers) > maxListLen || len(rf.Deny) > maxListLen || len(rf.RequireApproval) > maxListLen || len(rf.Exceptions) > maxListLen {
		return fmt.Errorf("redFlags lists more than %d entries", maxListLen)
	}
	for i := range rf.Signers {
		if err := checkPrincipal(fmt.Sprintf("redFlags.signers[%d]", i), &rf.Signers[i]); err != nil {
			return err
		}
	}
	kinds := "; kinds are " + strings.Join(attest.RedFlagKinds, ", ")
	seen := map[string]bool{}
	for i, k := range rf.Deny {
		switch {
		case !knownRedFlagKind(k):
			return fmt.Errorf("redFlags.deny[%d] %q is not a red flag kind%s", i, k, kinds)
		case seen[k]:
			return fmt.Errorf("redFlags.deny[%d] %q is listed twice", i, k)
		}
		seen[k] = true
	}
	for k, r := range rf.RequireApproval {
		switch ms, ok := p.members[r.Group]; {
		case !knownRedFlagKind(k):
			return fmt.Errorf("redFlags.requireApproval names %q, which is not a red flag kind%s", k, kinds)
		case seen[k]:
			return fmt.Errorf("redFlags: %s is both denied and needs approval; keep one", k)
		case !ok:
			return fmt.Errorf("redFlags.requireApproval.%s names group %q, which is not in groups", k, r.Group)
		case r.Count < 1 || r.Count > maxApprovalThreshold:
			return fmt.Errorf("redFlags.requireApproval.%s.count %d must be at least 1", k, r.Count)
		case r.Count > len(ms):
			return fmt.Errorf("redFlags.requireApproval.%s needs %d of group %q, which has only %d member(s)", k, r.Count, r.Group, len(ms))
		}
	}
	for i := range rf.Exceptions {
		e := &rf.Exceptions[i]
		switch {
		case !knownRedFlagKind(e.Kind):
			return fmt.Errorf("redFlags.exceptions[%d].kind %q is not a red flag kind%s", i, e.Kind, kinds)
		case e.ApprovedBy == "" || len(e.ApprovedBy) > maxNameLen || len(e.Subject) > maxNameLen:
			return fmt.Errorf("redFlags.exceptions[%d] needs kind, until and approvedBy (each at most %d bytes)", i, maxNameLen)
		case e.Artifact != "" && !sha256Digest.MatchString(e.Artifact):
			return fmt.Errorf("redFlags.exceptions[%d].artifact %q is not sha256:HEX", i, e.Artifact)
		}
		t, err := time.Parse(time.DateOnly, e.Until)
		if err != nil || !dateRe.MatchString(e.Until) {
			return fmt.Errorf("redFlags.exceptions[%d].until %q is not a date YYYY-MM-DD", i, e.Until)
		}
		e.until = t.AddDate(0, 0, 1)
	}
	switch rf.Missing {
	case "", RedFlagsMissingDeny, RedFlagsMissingAllow:
	default:
		return fmt.Errorf("redFlags.missing %q is neither deny nor allow", rf.Missing)
	}
	return nil
}

// redFlagSigner reports whether s signed as one of redFlags.signers.
func (p *Policy) redFlagSigner(s Signature) bool {
	if p.RedFlags == nil || (s.Signer.KeyID == "" && (s.Signer.Identity == "" || s.Signer.Issuer == "")) {
		return false
	}
	for _, t := range p.RedFlags.Signers {
		if t.admits(s.Signer, s.Certificate) {
			return true
		}
	}
	return false
}

// countedRedFlags are the red flags a decision acts on.
type countedRedFlags struct {
	flags []attest.RedFlag // from counting statements, each once
	// about: a counting statement is about a verified provenance.
	about   bool
	by      []string // who computed the counting statements
	ignored []string // statements that do not count, and why
}

// redFlagsOf collects the flags of the statements in ev signed by a
// redFlags signer.
func (p *Policy) redFlagsOf(ev *Evidence) countedRedFlags {
	var c countedRedFlags
	prov := map[string]bool{}
	for _, pv := range ev.Provenance {
		prov[pv.Bundle] = true
	}
	seen := map[attest.RedFlag]bool{}
	for _, r := range ev.RedFlagReports {
		if !p.redFlagSigner(r.Signature) {
			c.ignored = append(c.ignored, fmt.Sprintf("a red flags statement signed by %s does not count: not a redFlags signer", r.Signer))
			continue
		}
		c.about = c.about || prov[r.Build.Bundle]
		if !slices.Contains(c.by, r.ComputedBy) {
			c.by = append(c.by, r.ComputedBy)
		}
		for _, f := range r.Flags {
			if !seen[f] {
				seen[f] = true
				c.flags = append(c.flags, f)
			}
		}
	}
	return c
}

// RegoRedFlags returns the red flags Rego sees as input.redFlags: those
// of the statements in ev signed by a redFlags signer (none without a
// redFlags section).
func (p *Policy) RegoRedFlags(ev *Evidence) []attest.RedFlag {
	if p.RedFlags == nil {
		return []attest.RedFlag{}
	}
	return nonNil(p.redFlagsOf(ev).flags)
}

// checkRedFlags judges the counted red flags: a kind in deny fails, one
// in requireApproval fails until its group approved, an excepted flag
// passes; every failure names each flag and what would clear it.
func (p *Policy) checkRedFlags(d *Decision, ev *Evidence, now time.Time, tally func() *approvalTally) {
	rf := p.RedFlags
	if rf == nil {
		return
	}
	c := p.redFlagsOf(ev)
	if !c.about {
		msg := "no red flags statement signed by a redFlags signer (" + principals(rf.Signers) + ") about a verified provenance of " + ev.Artifact
		if len(c.ignored) > 0 {
			msg += "; " + strings.Join(c.ignored, "; ")
		}
		if rf.Missing == RedFlagsMissingAllow {
			d.pass("%s; allowed: redFlags.missing is allow", msg)
		} else {
			d.fail(ReqRedFlags, msg, "push the provenance to the custody server, which signs red flags for every build it indexes, and decide with its evidence (--server); "+
				"name its audit key in redFlags.signers; or set redFlags.missing: allow")
		}
	}
	if c.about && len(c.flags) == 0 {
		d.pass("no red flags (compared by %s)", strings.Join(c.by, ", "))
		return
	}
	var kinds []string
	byKind := map[string][]attest.RedFlag{}
	for _, f := range c.flags {
		if byKind[f.Kind] == nil {
			kinds = append(kinds, f.Kind)
		}
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}
	for _, k := range kinds {
		p.judgeRedFlag(d, ev.Artifact, k, byKind[k], now, tally)
	}
}

// judgeRedFlag judges the flags of one kind.
func (p *Policy) judgeRedFlag(d *Decision, artifact, kind string, flags []attest.RedFlag, now time.Time, tally func() *approvalTally) {
	rf, req := p.RedFlags, reqRedFlagPrefix+kind
	var open, waived []string
	var clears []string
	for _, f := range flags {
		if e := p.redFlagException(kind, f.Subject, artifact, now); e != nil {
			waived = append(waived, fmt.Sprintf("%s (excepted until %s by %s)", f.Message, e.Until, e.ApprovedBy))
			continue
		}
		open = append(open, f.Message)
		if f.Clear != "" && !slices.Contains(clears, f.Clear) {
			clears = append(clears, f.Clear)
		}
	}
	denied := slices.Contains(rf.Deny, kind)
	rule, needsApproval := rf.RequireApproval[kind]
	if len(open) == 0 {
		if denied || needsApproval {
			d.clear(req, ClearedByException, strings.Join(waived, "; "))
		}
		d.pass("red flag %s excepted: %s", kind, strings.Join(waived, "; "))
		return
	}
	found := fmt.Sprintf("red flag %s: %s", kind, strings.Join(open, "; "))
	clear := ""
	if len(clears) > 0 {
		clear = strings.Join(clears, "; ") + "; "
	}
	except := fmt.Sprintf("or add an exception (redFlags.exceptions: kind %s, subject, until, approvedBy)", kind)
	switch {
	case denied:
		d.fail(req, found+" (the policy denies "+kind+")", clear+except)
	case needsApproval:
		t := tally()
		have := len(t.approved[rule.Group])
		if have >= rule.Count {
			who := strings.Join(sortedKeys(t.approved[rule.Group]), ", ")
			d.clear(req, ClearedByApproval, fmt.Sprintf("approved by %s (group %s)", who, rule.Group))
			d.pass("%s; approved by %d of %d from group %s: %s", found, have, rule.Count, rule.Group, who)
			return
		}
		var can []string
		for _, name := range sortedMemberNames(p.members[rule.Group]) {
			if !t.approved[rule.Group][name] && !t.conflict(p.members[rule.Group][name]) {
				can = append(can, name)
			}
		}
		msg := fmt.Sprintf("%s; needs %d more approval(s) from group %s", found, rule.Count-have, rule.Group)
		if len(t.notes) > 0 {
			msg += "; " + strings.Join(t.notes, "; ")
		}
		d.fail(req, msg, fmt.Sprintf("%d of %s must sign an approval (%s) of %s for environment %s; %s%s",
			rule.Count-have, orNone(strings.Join(can, ", ")), attest.PredicateApproval, artifact, p.Environment, clear, except))
	default:
		d.pass("%s (noted: the policy neither denies it nor requires an approval)", found)
	}
}

// redFlagException returns the exception that waives a flag of kind about
// subject in artifact at now, or nil.
func (p *Policy) redFlagException(kind, subject, artifact string, now time.Time) *RedFlagException {
	for i := range p.RedFlags.Exceptions {
		e := &p.RedFlags.Exceptions[i]
		if e.Kind == kind && (e.Subject == "" || e.Subject == subject) && (e.Artifact == "" || e.Artifact == artifact) && now.Before(e.until) {
			return e
		}
	}
	return nil
}

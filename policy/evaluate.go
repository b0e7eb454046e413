package policy

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/verify/match"
)

// Requirement names a Failure can carry; required evidence fails as
// "evidence:" + the name in RequiredEvidence, approvals as "approval:" +
// the group.
const (
	ReqArtifact        = "artifact"
	ReqProvenance      = "provenance"
	ReqBuilder         = "builder"
	ReqSource          = "source"
	ReqSigner          = "signer"
	ReqLog             = "log"
	ReqTimestamp       = "timestamp"
	ReqMaxAge          = "max-age"
	ReqRebuild         = "rebuild"
	ReqVulnerabilities = "vulnerabilities"
	ReqRego            = "rego"
	reqEvidencePrefix  = "evidence:"
	reqApprovalPrefix  = "approval:"
)

// clockSkew is how far in the future a verified time may lie.
const clockSkew = 5 * time.Minute

// Failure is one requirement the evidence did not satisfy.
type Failure struct {
	Requirement string `json:"requirement"`
	Message     string `json:"message"` // what failed
	Fix         string `json:"fix"`     // what would satisfy it
}

// Decision is the outcome of Evaluate. Allowed is true only when Failures
// is empty.
type Decision struct {
	Allowed      bool      `json:"allowed"`
	Environment  string    `json:"environment"`
	PolicyDigest string    `json:"policyDigest"`
	Artifact     string    `json:"artifact"`
	Time         time.Time `json:"time"`
	Failures     []Failure `json:"failures"`
	// Passed describes each requirement that held, in evaluation order.
	Passed []string `json:"passed"`
	// Inputs are the SHA-256 of the bundles whose evidence was considered.
	Inputs []string `json:"inputs,omitempty"`
	// Cleared are the requirements that held only because of an approval
	// or an exception (see Clearance).
	Cleared []Clearance `json:"cleared,omitempty"`
	// Latency is how long each step of the decision took, against the
	// policy's latencyBudget; empty when the policy declares none.
	Latency []StepLatency `json:"latency,omitempty"`
}

// ErrNoEvidence is returned by Evaluate for a nil Evidence.
var ErrNoEvidence = errors.New("no evidence given")

// Evaluate decides whether the artifact of ev may enter the policy's
// environment at now. It fails closed: every requirement it cannot decide
// (no provenance, no signing time when one is required, a vulnerability
// threshold without a scan, a Rego rule that errors) is a Failure.
//
// It returns an error only for a Policy not built by Parse, a nil ev
// (ErrNoEvidence) or a cancelled ctx; callers must treat an error as a
// denial.
func (p *Policy) Evaluate(ctx context.Context, ev *Evidence, now time.Time) (*Decision, error) {
	if p == nil || p.digest == "" {
		return nil, errors.New("policy was not built by policy.Parse")
	}
	if ev == nil {
		return nil, ErrNoEvidence
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Decision{
		Environment:  p.Environment,
		PolicyDigest: p.digest,
		Artifact:     ev.Artifact,
		Time:         now.UTC(),
		Failures:     []Failure{},
		Passed:       []string{},
	}
	if !sha256Digest.MatchString(ev.Artifact) {
		d.fail(ReqArtifact, fmt.Sprintf("artifact %q is not a sha256:HEX digest", ev.Artifact), "identify the artifact by its sha256 digest")
		d.Allowed = false
		return d, nil
	}
	start := time.Now()
	d.Inputs = ev.inputs()
	var t *approvalTally
	tally := func() *approvalTally {
		if t == nil {
			t = p.tallyApprovals(ev, now)
		}
		return t
	}
	p.checkProvenance(d, ev, now)
	p.checkRequiredEvidence(d, ev)
	p.checkRebuilds(d, ev)
	p.checkVulnerabilities(d, ev, now)
	p.checkApprovals(d, ev, tally)
	p.checkReviews(d, ev, now)
	p.checkRedFlags(d, ev, now, tally)
	if p.Rego != "" {
		if err := p.checkRego(ctx, d, ev, now); err != nil {
			return nil, err
		}
	}
	d.Allowed = len(d.Failures) == 0
	p.Measure(d, StepEvaluate, time.Since(start))
	return d, nil
}

func (d *Decision) fail(req, msg, fix string) {
	d.Failures = append(d.Failures, Failure{Requirement: req, Message: msg, Fix: fix})
}

func (d *Decision) pass(format string, args ...any) {
	d.Passed = append(d.Passed, fmt.Sprintf(format, args...))
}

func (ev *Evidence) inputs() []string {
	seen := map[string]bool{}
	add := func(s Signature) {
		if s.Bundle != "" {
			seen[s.Bundle] = true
		}
	}
	for _, x := range ev.Provenance {
		add(x.Signature)
	}
	for _, x := range ev.Attestations {
		add(x.Signature)
	}
	for _, x := range ev.Approvals {
		add(x.Signature)
	}
	for _, x := range ev.Rebuilds {
		add(x.Signature)
	}
	for _, x := range ev.VulnScans {
		add(x.Signature)
	}
	for _, x := range ev.Reviews {
		add(x.Signature)
	}
	for _, x := range ev.RedFlagReports {
		add(x.Signature)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkProvenance passes when one provenance satisfies every provenance
// requirement; otherwise it reports the failures of the one that came
// closest.
func (p *Policy) checkProvenance(d *Decision, ev *Evidence, now time.Time) {
	if len(ev.Provenance) == 0 {
		d.fail(ReqProvenance, "no verified SLSA provenance for "+ev.Artifact,
			fmt.Sprintf("build it with a trusted builder (%s) that signs provenance, and supply that bundle (bundles that fail verification are ignored)", strings.Join(p.TrustedBuilders, ", ")))
		return
	}
	var best *Decision
	for i := range ev.Provenance {
		one := &Decision{}
		p.checkOneProvenance(one, &ev.Provenance[i], now)
		if len(one.Failures) == 0 {
			d.Passed = append(d.Passed, one.Passed...)
			return
		}
		if best == nil || len(one.Failures) < len(best.Failures) {
			best = one
		}
	}
	d.Failures = append(d.Failures, best.Failures...)
	d.Passed = append(d.Passed, best.Passed...)
}

func (p *Policy) checkOneProvenance(d *Decision, pv *Provenance, now time.Time) {
	f := pv.Facts
	builderOK := false
	for _, b := range p.TrustedBuilders {
		builderOK = builderOK || match.Builder(f.BuilderID, b)
	}
	if builderOK {
		d.pass("builder %s is trusted", f.BuilderID)
	} else {
		d.fail(ReqBuilder, fmt.Sprintf("built by %s, trusted builders are %s", f.BuilderID, strings.Join(p.TrustedBuilders, ", ")),
			"rebuild the artifact on a trusted builder, or add this builder to trustedBuilders")
	}

	p.checkSource(d, f.SourceURI, f.SourceRef)
	if f.Dirty {
		d.fail(ReqSource, "built from a work tree with uncommitted changes (dirty)", "commit the changes and rebuild from a clean checkout")
	}

	if p.trustedSigner(pv.Signature) {
		d.pass("provenance signed by trusted %s", pv.Signer)
	} else {
		d.fail(ReqSigner, fmt.Sprintf("provenance signed by %s, which is not a trusted signer (trusted: %s)", pv.Signer, principals(p.Signers)),
			"sign provenance with a key or identity listed in signers")
	}
	p.checkLogTimestamp(d, "provenance", "", pv.Signature)

	if p.maxAge > 0 {
		at, what := f.FinishedOn, "build finished"
		if at.IsZero() {
			at, what = f.StartedOn, "build started"
		}
		if at.IsZero() {
			at, what = pv.SignedAt, "provenance signed"
		}
		switch age := now.Sub(at); {
		case at.IsZero():
			d.fail(ReqMaxAge, fmt.Sprintf("no build time and no verified signing time, so age can't be checked against maxAge %s", p.MaxAge),
				"use a builder that records build times, or have the bundle logged or timestamped")
		case age < -clockSkew:
			d.fail(ReqMaxAge, fmt.Sprintf("%s at %s, in the future", what, at.UTC().Format(time.RFC3339)), "check the builder's clock and rebuild")
		case age > p.maxAge:
			d.fail(ReqMaxAge, fmt.Sprintf("%s %s ago (%s), more than maxAge %s", what, age.Round(time.Second), at.UTC().Format(time.RFC3339), p.MaxAge),
				"rebuild the artifact, or raise maxAge")
		default:
			d.pass("%s %s ago, within maxAge %s", what, age.Round(time.Second), p.MaxAge)
		}
	}
}

func (p *Policy) checkSource(d *Decision, uri, ref string) {
	if len(p.Sources) == 0 {
		d.pass("source %s not restricted by the policy", orNone(uri))
		return
	}
	var allowed []string
	for _, s := range p.Sources {
		if !match.Source(uri, s.Repo) {
			allowed = append(allowed, s.Repo)
			continue
		}
		if len(s.Refs) == 0 {
			d.pass("source %s is allowed (any ref)", uri)
			return
		}
		for _, g := range s.Refs {
			if ok, _ := path.Match(g, ref); ok && ref != "" {
				d.pass("source %s at %s matches %s", uri, ref, g)
				return
			}
		}
		d.fail(ReqSource, fmt.Sprintf("source %s at ref %s, allowed refs are %s", uri, orNone(ref), strings.Join(s.Refs, ", ")),
			"build from an allowed ref (for example tag a release), or add the ref to sources")
		return
	}
	d.fail(ReqSource, fmt.Sprintf("built from source %s, allowed sources are %s", orNone(uri), strings.Join(allowed, ", ")),
		"build from an allowed repository, or add it to sources")
}

func (p *Policy) checkLogTimestamp(d *Decision, what, req string, s Signature) {
	suffix := ""
	if req != "" {
		suffix = " (" + req + ")"
	}
	if p.RequireLog {
		if s.LogVerified {
			d.pass("%s log inclusion verified", what)
		} else {
			d.fail(ReqLog+suffix, what+" has no verified transparency log inclusion",
				"sign through a custody server (or log the bundle) and verify with its trusted root (--trusted-root)")
		}
	}
	if p.RequireTimestamp {
		if s.TimestampVerified && !s.SignedAt.IsZero() {
			d.pass("%s signing time %s verified", what, s.SignedAt.UTC().Format(time.RFC3339))
		} else {
			d.fail(ReqTimestamp+suffix, what+" has no verified signing time (RFC 3161 timestamp or log integration time)",
				"sign through a custody server (or timestamp the bundle) and verify with its trusted root (--trusted-root)")
		}
	}
}

func (p *Policy) checkRequiredEvidence(d *Decision, ev *Evidence) {
	for _, k := range p.kinds {
		req := reqEvidencePrefix + k.name
		var found []Signature
		if k.name == EvidenceRebuild {
			for _, r := range ev.Rebuilds {
				if r.Matched && ev.rebuildOfThisBuild(r) {
					found = append(found, r.Signature)
				}
			}
		} else {
			for _, a := range ev.Attestations {
				if k.matches(a.PredicateType) {
					found = append(found, a.Signature)
				}
			}
			for _, v := range ev.VulnScans {
				if k.matches(v.PredicateType) {
					found = append(found, v.Signature)
				}
			}
		}
		if len(found) == 0 {
			msg, fix := missingEvidence(k.name, k.types, ev)
			d.fail(req, msg, fix)
			continue
		}
		// One piece that meets the log and timestamp requirements suffices.
		var best *Decision
		for _, s := range found {
			one := &Decision{}
			p.checkLogTimestamp(one, k.name+" evidence", req, s)
			if best == nil || len(one.Failures) < len(best.Failures) {
				best = one
			}
		}
		if len(best.Failures) > 0 {
			d.Failures = append(d.Failures, best.Failures...)
			continue
		}
		d.pass("%s evidence present (%d verified)", k.name, len(found))
	}
}

// scanHint says how to get a vulnerability scan.
const scanHint = "scan it: custody scan --key KEY --osv-db DIR ARTIFACT (or sign one with the build: custody build --osv-db DIR)"

// missingEvidence is the failure message and fix of required evidence of
// kind (predicate types) that ev lacks: the command that produces it, and
// for a rebuild that ran but did not reproduce this build, that it did not.
func missingEvidence(kind string, types []string, ev *Evidence) (msg, fix string) {
	msg = fmt.Sprintf("no verified %s evidence (predicate type %s)", kind, strings.Join(types, " or "))
	switch kind {
	case EvidenceRebuild:
		for _, r := range ev.Rebuilds {
			if !r.Matched && ev.rebuildOfThisBuild(r) {
				return fmt.Sprintf("the rebuild by %s of %s did not reproduce %s, and no rebuild did", r.Signer, describeRebuildOf(r), ev.Artifact),
					"see which outputs differ, with both digests and diffoscope's report when it ran: custody inspect --json ARTIFACT.rebuild.sigstore.json; " +
						"make the build reproducible (-trimpath, SOURCE_DATE_EPOCH, no build ID) and rebuild: custody rebuild --key REBUILDER_KEY ARTIFACT"
			}
		}
		return msg, "have another machine and key rebuild it from its provenance bundle: custody rebuild --key REBUILDER_KEY ARTIFACT"
	case EvidenceVulnScan:
		return msg, scanHint
	}
	return msg, fmt.Sprintf("attest it: custody attest --predicate-type %s --predicate FILE ARTIFACT", types[0])
}

// rebuildOfThisBuild reports whether r replayed a build whose verified
// provenance is in ev: its recorded build ID and provenance bundle digest
// (each when recorded, at least one of them) are those of one provenance.
func (ev *Evidence) rebuildOfThisBuild(r Rebuild) bool {
	if r.BuildID == "" && r.ProvenanceBundle == "" {
		return false
	}
	for _, pv := range ev.Provenance {
		if (r.BuildID == "" || r.BuildID == pv.Facts.BuildID) && (r.ProvenanceBundle == "" || r.ProvenanceBundle == pv.Bundle) {
			return true
		}
	}
	return false
}

// describeRebuildOf says which build a rebuild replayed, for messages.
func describeRebuildOf(r Rebuild) string {
	switch {
	case r.BuildID != "" && r.ProvenanceBundle != "":
		return fmt.Sprintf("build %s (provenance bundle %s)", r.BuildID, short12(r.ProvenanceBundle))
	case r.BuildID != "":
		return "build " + r.BuildID
	case r.ProvenanceBundle != "":
		return "the build of provenance bundle " + short12(r.ProvenanceBundle)
	}
	return "a build it does not name"
}

func (p *Policy) checkRebuilds(d *Decision, ev *Evidence) {
	for _, r := range ev.Rebuilds {
		// A mismatch denies even when it names another build of the same
		// digest: something that claims to be this artifact did not
		// reproduce.
		if !r.Matched {
			d.fail(ReqRebuild, fmt.Sprintf("an independent rebuild by %s of %s did not reproduce %s", r.Signer, describeRebuildOf(r), ev.Artifact),
				"find out why the rebuild differs (non-hermetic build, tampering) before deploying")
		}
	}
	if p.Rebuilders <= 0 {
		return
	}
	// Independent: a rebuilder that signed the provenance is the builder
	// checking itself, and one rebuilder counts once however often it ran.
	builders := map[string]bool{}
	for _, pr := range ev.Provenance {
		builders[principalKey(pr.Signer)] = true
	}
	agree := map[string]bool{}
	var names, other []string
	for _, r := range ev.Rebuilds {
		k := principalKey(r.Signer)
		if r.Matched && !ev.rebuildOfThisBuild(r) {
			other = append(other, fmt.Sprintf("%s replayed %s, not a build of this artifact's verified provenance", r.Signer, describeRebuildOf(r)))
			continue
		}
		if !r.Matched || builders[k] || agree[k] {
			continue
		}
		agree[k] = true
		names = append(names, r.Signer.String())
	}
	if len(agree) < p.Rebuilders {
		have := "none"
		if len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		msg := fmt.Sprintf("needs %d independent rebuilder(s) that reproduced %s, not the builder; agreeing so far: %s", p.Rebuilders, ev.Artifact, have)
		if len(other) > 0 {
			msg += "; not counted: " + strings.Join(other, "; ")
		}
		d.fail(ReqRebuild, msg,
			"have another machine and key rebuild it from this artifact's provenance bundle: custody rebuild --key REBUILDER_KEY ARTIFACT")
		return
	}
	d.pass("%d independent rebuilder(s) reproduced the artifact", len(agree))
}

// principalKey identifies a signer: its key ID, or its identity and issuer.
func principalKey(p Principal) string {
	if p.KeyID != "" {
		return "key:" + strings.ToLower(p.KeyID)
	}
	return "id:" + p.Identity + "\x00" + p.Issuer
}

func (p *Policy) checkVulnerabilities(d *Decision, ev *Evidence, now time.Time) {
	if p.MaxSeverity == "" {
		return
	}
	if len(ev.VulnScans) == 0 {
		d.fail(ReqVulnerabilities, fmt.Sprintf("maxSeverity is %s but there is no verified vulnerability scan", p.maxSev),
			scanHint)
		return
	}
	exc := map[string]Exception{}
	for _, e := range p.Exceptions {
		exc[e.ID] = e
	}
	seen := map[string]bool{}
	var over, waived, expired []string
	for _, s := range ev.VulnScans {
		for _, v := range s.Findings {
			if v.Severity <= p.maxSev || seen[v.ID] {
				continue
			}
			seen[v.ID] = true
			e, ok := exc[v.ID]
			switch {
			case ok && now.Before(e.until):
				waived = append(waived, fmt.Sprintf("%s (%s, excepted until %s by %s)", v.ID, v.Severity, e.Until, e.ApprovedBy))
			case ok:
				expired = append(expired, fmt.Sprintf("%s (%s, exception expired %s)", v.ID, v.Severity, e.Until))
			default:
				over = append(over, fmt.Sprintf("%s (%s)", v.ID, v.Severity))
			}
		}
	}
	sort.Strings(over)
	over = append(over, expired...)
	if len(over) > 0 {
		d.fail(ReqVulnerabilities, fmt.Sprintf("%d vulnerabilit(ies) above maxSeverity %s: %s", len(over), p.maxSev, strings.Join(over, ", ")),
			"upgrade the affected dependencies and rebuild, or add a time-limited exception approved by security")
		return
	}
	if len(waived) > 0 {
		d.clear(ReqVulnerabilities, ClearedByException, strings.Join(waived, ", "))
		d.pass("no vulnerability above %s except %s", p.maxSev, strings.Join(waived, ", "))
		return
	}
	d.pass("no vulnerability above %s in %d scan(s)", p.maxSev, len(ev.VulnScans))
}

// checkApprovals counts, per rule, the distinct members of its group who
// approved this artifact for this environment, never counting a member who
// built the artifact (signed its provenance) or authored its source (per
// ev.Authors, or a commit the verified reviews list up to the source
// commit: see reviewedAuthors).
func (p *Policy) checkApprovals(d *Decision, ev *Evidence, tally func() *approvalTally) {
	if len(p.Approvals) == 0 {
		return
	}
	tally().judge(d, ev.Artifact)
}

// tallyApprovals counts the approvals in ev (see checkApprovals).
func (p *Policy) tallyApprovals(ev *Evidence, now time.Time) *approvalTally {
	t := p.newApprovalTally(ev, now)
	for _, a := range ev.Approvals {
		t.count(a, ev.Artifact, now)
	}
	return t
}

// approvalTally collects, for checkApprovals, who approved per group and
// notes on approvals that did not count, each note once.
type approvalTally struct {
	p        *Policy
	excluded map[Principal]bool         // provenance signers
	authors  map[string]bool            // lowercased ev.Authors
	reviewed map[string]string          // see reviewedAuthors
	approved map[string]map[string]bool // group -> member names
	notes    []string
	noted    map[string]bool
}

func (p *Policy) newApprovalTally(ev *Evidence, now time.Time) *approvalTally {
	t := &approvalTally{
		p:        p,
		excluded: map[Principal]bool{},
		authors:  map[string]bool{},
		reviewed: p.reviewedAuthors(ev, now),
		approved: map[string]map[string]bool{},
		noted:    map[string]bool{},
	}
	for _, pv := range ev.Provenance {
		t.excluded[pv.Signer] = true
	}
	for _, a := range ev.Authors {
		t.authors[strings.ToLower(a)] = true
	}
	return t
}

// conflict reports whether m built or authored the artifact, so that m's
// approval does not count (separation of duties).
func (t *approvalTally) conflict(m *Member) bool {
	if t.authors[strings.ToLower(m.Name)] || t.p.authoredReviewed(m.Name, t.reviewed) != "" {
		return true
	}
	for _, k := range m.KeyIDs {
		if t.excluded[Principal{KeyID: k}] {
			return true
		}
	}
	for _, id := range m.Identities {
		if t.excluded[Principal{Identity: id.Identity, Issuer: id.Issuer}] || t.authors[strings.ToLower(id.Identity)] {
			return true
		}
	}
	return false
}

func (t *approvalTally) note(s string) {
	if !t.noted[s] {
		t.noted[s] = true
		t.notes = append(t.notes, s)
	}
}

// count adds approval a to every group where its signer is a member
// without a conflict, or notes why it does not count.
func (t *approvalTally) count(a Approval, artifact string, now time.Time) {
	p := t.p
	switch {
	case a.Environment != p.Environment:
		t.note(fmt.Sprintf("approval by %s is for environment %s, not %s", a.Signer, a.Environment, p.Environment))
		return
	case a.Artifact != artifact:
		t.note(fmt.Sprintf("approval by %s is for %s, not this artifact", a.Signer, a.Artifact))
		return
	case a.Time.After(now.Add(clockSkew)):
		t.note(fmt.Sprintf("approval by %s is dated in the future (%s)", a.Signer, a.Time.UTC().Format(time.RFC3339)))
		return
	}
	member := false
	for g, ms := range p.members {
		for _, m := range ms {
			if !m.holds(a.Signer) {
				continue
			}
			member = true
			if t.conflict(m) {
				if c := p.authoredReviewed(m.Name, t.reviewed); c != "" {
					t.note(fmt.Sprintf("%s's approval does not count: %s authored %s, in the reviewed source (separation of duties)", m.Name, m.Name, c))
					continue
				}
				t.note(fmt.Sprintf("%s's approval does not count: %s built or authored this artifact (separation of duties)", m.Name, m.Name))
				continue
			}
			if t.approved[g] == nil {
				t.approved[g] = map[string]bool{}
			}
			t.approved[g][m.Name] = true
		}
	}
	if !member {
		t.note(fmt.Sprintf("approval signed by %s counts for no group: that signer is not a member", a.Signer))
	}
}

// judge passes or fails each approval rule on the tally.
func (t *approvalTally) judge(d *Decision, artifact string) {
	p, approved := t.p, t.approved
	soFar := approvedSoFar(approved)
	for _, r := range p.Approvals {
		have := len(approved[r.Group])
		if have >= r.Count {
			d.pass("%d of %d approval(s) from group %s: %s", have, r.Count, r.Group, strings.Join(sortedKeys(approved[r.Group]), ", "))
			continue
		}
		msg := fmt.Sprintf("needs %d more approval(s) from group %s; approved so far: %s", r.Count-have, r.Group, soFar)
		if len(t.notes) > 0 {
			msg += "; " + strings.Join(t.notes, "; ")
		}
		var can []string
		for _, name := range sortedMemberNames(p.members[r.Group]) {
			if !approved[r.Group][name] && !t.conflict(p.members[r.Group][name]) {
				can = append(can, name)
			}
		}
		fix := fmt.Sprintf("%d of %s must sign an approval (%s) of %s for environment %s", r.Count-have, orNone(strings.Join(can, ", ")), attest.PredicateApproval, artifact, p.Environment)
		if len(can) < r.Count-have {
			fix = fmt.Sprintf("group %s has too few members who did not build or author this artifact; add approvers to the group", r.Group)
		}
		d.fail(reqApprovalPrefix+r.Group, msg, fix)
	}
}

func (m *Member) holds(s Principal) bool {
	if s.KeyID != "" {
		for _, k := range m.KeyIDs {
			if k == s.KeyID {
				return true
			}
		}
		return false
	}
	for _, id := range m.Identities {
		if id.Identity == s.Identity && id.Issuer == s.Issuer && s.Identity != "" {
			return true
		}
	}
	return false
}

func approvedSoFar(approved map[string]map[string]bool) string {
	groups := map[string][]string{}
	for g, names := range approved {
		for n := range names {
			groups[n] = append(groups[n], g)
		}
	}
	if len(groups) == 0 {
		return "none"
	}
	var out []string
	for _, n := range sortedKeys2(groups) {
		gs := groups[n]
		sort.Strings(gs)
		out = append(out, fmt.Sprintf("%s (%s)", n, strings.Join(gs, ", ")))
	}
	return strings.Join(out, ", ")
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys2(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedMemberNames(m map[string]*Member) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// trustedSigner reports whether sig's signer is one of the policy's
// signers: the same key, or the same identity and issuer, or (for a signer
// named by certificate extensions) the same issuer and a certificate whose
// extensions match.
func (p *Policy) trustedSigner(sig Signature) bool {
	s := sig.Signer
	if s.KeyID == "" && (s.Identity == "" || s.Issuer == "") {
		return false
	}
	for _, t := range p.Signers {
		if t.admits(s, sig.Certificate) {
			return true
		}
	}
	return false
}

// admits reports whether signer s, with certificate facts c, is t.
func (t Principal) admits(s Principal, c *CertificateFacts) bool {
	switch {
	case t.KeyID != "" || s.KeyID != "":
		return t.KeyID == s.KeyID
	case t.Issuer != s.Issuer || (t.Identity != "" && t.Identity != s.Identity):
		return false
	case !t.byExtensions():
		return t.Identity == s.Identity
	case c == nil:
		return false
	case t.SourceRepository != "" && t.SourceRepository != c.SourceRepository:
		return false
	}
	return globMatch(t.Ref, c.Ref) && globMatch(t.Workflow, c.Workflow())
}

// globMatch matches v against the path.Match pattern g; "" matches all.
func globMatch(g, v string) bool {
	if g == "" {
		return true
	}
	ok, _ := path.Match(g, v)
	return ok && v != ""
}

// String renders a principal for messages.
func (s Principal) String() string {
	switch {
	case s.KeyID != "":
		k := s.KeyID
		if len(k) > 16 {
			k = k[:16] + "…"
		}
		return "key " + k
	case s.byExtensions():
		var parts []string
		for _, f := range [][2]string{{"identity", s.Identity}, {"repository", s.SourceRepository}, {"ref", s.Ref}, {"workflow", s.Workflow}} {
			if f[1] != "" {
				parts = append(parts, f[0]+" "+f[1])
			}
		}
		return fmt.Sprintf("%s (issuer %s)", strings.Join(parts, ", "), s.Issuer)
	case s.Identity != "":
		return fmt.Sprintf("identity %s (issuer %s)", s.Identity, s.Issuer)
	}
	return "an unknown signer"
}

func principals(ps []Principal) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

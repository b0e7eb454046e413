package dashboard

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
)

var digestRe = lazyre.New(`^sha256:[0-9a-f]{64}$`)

// Check is one named check with its outcome.
type Check struct {
	Name   string
	Pass   bool
	Reason string
	Link   string // proof endpoint, for log inclusion
}

// evidenceRow is one bundle about the artifact, with its checks.
type evidenceRow struct {
	Record   *store.Evidence
	Kind     string
	Verified bool
	Checks   []Check
	Detail   []string // kind-specific facts (approver and group, rebuild match, findings)
}

// buildView is a verified provenance: the source and the build.
type buildView struct {
	Facts      attest.ProvenanceFacts
	Toolchains map[string]string
	Signer     string
	EvidenceID int64
}

type decisionView struct {
	Environment string
	Decision    *policy.Decision
	// Quarantined: an incident quarantined the artifact, so the deploy
	// gate refuses it whatever the policy decides.
	Quarantined bool
	// QuarantineUnknown: the incident records could not be read, so
	// whether the gate refuses it is unknown.
	QuarantineUnknown bool
}

type artifactView struct {
	Digest      string
	Names       []string
	Builds      []buildView
	Unverified  []*store.Evidence // provenance records that did not verify
	Evidence    []evidenceRow
	Deployments []*store.Deployment
	Decisions   []decisionView
	Truncated   bool
	LogSize     uint64
	Quarantine  quarantineView
	RedFlags    []redFlagsView
}

// statementOf returns the in-toto statement of a DSSE bundle, unverified:
// only for showing facts of a bundle that gate.Gather verified.
func statementOf(bundle []byte) (*attest.Statement, error) {
	var b struct {
		DSSE *struct {
			Payload string `json:"payload"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil || b.DSSE == nil {
		return nil, fmt.Errorf("not a DSSE bundle")
	}
	p, err := base64.StdEncoding.DecodeString(b.DSSE.Payload)
	if err != nil {
		return nil, fmt.Errorf("DSSE payload is not base64")
	}
	return attest.ParseStatement(p)
}

func kindOf(predicateType string) string {
	for kind, types := range policy.EvidenceKinds {
		for _, t := range types {
			if t == predicateType {
				return kind
			}
		}
	}
	switch predicateType {
	case attest.PredicateApproval:
		return "approval"
	case attest.PredicateVSA:
		return "decision (VSA)"
	case attest.PredicateRedFlags:
		return "red flags"
	}
	return predicateType
}

// groupsOf names the approval groups of env's policy the signer belongs to.
func groupsOf(p *policy.Policy, s policy.Principal) []string {
	if p == nil {
		return nil
	}
	var out []string
	for g, members := range p.Groups {
		for _, m := range members {
			hit := false
			for _, k := range m.KeyIDs {
				hit = hit || (s.KeyID != "" && k == s.KeyID)
			}
			for _, id := range m.Identities {
				hit = hit || (s.Identity != "" && id.Identity == s.Identity && (id.Issuer == "" || id.Issuer == s.Issuer))
			}
			if hit {
				out = append(out, g+" ("+m.Name+")")
			}
		}
	}
	sort.Strings(out)
	return out
}

func sigChecks(sig policy.Signature, rec *store.Evidence, logSize uint64) []Check {
	cs := []Check{{Name: "signature", Pass: true, Reason: "verified, signed by " + sig.Signer.String()}}
	lc := Check{Name: "log inclusion", Pass: sig.LogVerified}
	if sig.LogVerified {
		lc.Reason = fmt.Sprintf("inclusion at index %d verified against a trusted log", rec.LogIndex)
	} else {
		lc.Reason = "no verified transparency log entry"
	}
	if rec.LogIndex >= 0 && logSize > uint64(rec.LogIndex) {
		lc.Link = fmt.Sprintf("/proof/inclusion?index=%d&size=%d", rec.LogIndex, logSize)
	}
	tc := Check{Name: "timestamp", Pass: sig.TimestampVerified}
	if sig.TimestampVerified {
		tc.Reason = "signed at " + sig.SignedAt.UTC().Format(time.RFC3339) + " (verified)"
	} else {
		tc.Reason = "no verified signing time"
	}
	return append(cs, lc, tc)
}

// artifactData verifies everything about digest and lays it out.
func (d *Dashboard) artifactData(ctx context.Context, digest string) (*artifactView, error) {
	var ck checked
	v, err := ck.get(ctx, d, digest)
	if err != nil {
		return nil, err
	}
	av := &artifactView{Digest: digest, Truncated: v.truncated, Quarantine: d.quarantineOf(ctx, digest)}
	if cp, err := d.cfg.Log.Checkpoint(ctx); err == nil {
		av.LogSize = cp.Size
	}
	pols, err := d.policies()
	if err != nil {
		return nil, fmt.Errorf("couldn't load policies: %w", err)
	}
	av.Names = subjectNames(v.records, digest)

	rb := newRowBuilder(v.records, av.LogSize)
	av.Builds = rb.addProvenance(v.ev.Provenance)
	rb.addApprovals(v.ev.Approvals, pols)
	rb.addRebuilds(v.ev.Rebuilds)
	rb.addVulnScans(v.ev.VulnScans)
	av.RedFlags = d.redFlagViews(v.ev.RedFlagReports, rb)
	for _, a := range v.ev.Attestations {
		rb.row(a.Signature)
	}
	av.Evidence, av.Unverified = rb.finish(v)

	if av.Deployments, err = d.deploymentsOf(ctx, digest); err != nil {
		return nil, err
	}
	if av.Decisions, err = d.decisions(ctx, v.ev, pols, av.Quarantine); err != nil {
		return nil, err
	}
	return av, nil
}

// subjectNames lists, sorted, the names the records give digest as a
// subject, leaving out the server's own audit records.
func subjectNames(records []*store.Evidence, digest string) []string {
	names := map[string]bool{}
	for _, r := range records {
		if r.PredicateType == api.PredicateAudit {
			// The server's own records name subjects for their purpose
			// (a quarantine names the incident), not the artifact.
			continue
		}
		for _, s := range r.Subjects {
			if s.Digests["sha256"] == digest[len("sha256:"):] && s.Name != "" {
				names[s.Name] = true
			}
		}
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// rowBuilder makes one evidence row per verified bundle, adding what each
// kind of evidence says about the artifact.
type rowBuilder struct {
	byBundle map[string]*store.Evidence
	rows     map[string]*evidenceRow
	logSize  uint64
}

func newRowBuilder(records []*store.Evidence, logSize uint64) *rowBuilder {
	rb := &rowBuilder{byBundle: map[string]*store.Evidence{}, rows: map[string]*evidenceRow{}, logSize: logSize}
	for _, r := range records {
		rb.byBundle[r.BundleSHA256] = r
	}
	return rb
}

// row returns the verified row of sig's bundle, nil if no record holds it.
func (rb *rowBuilder) row(sig policy.Signature) *evidenceRow {
	rec := rb.byBundle[sig.Bundle]
	if rec == nil {
		return nil
	}
	r := rb.rows[sig.Bundle]
	if r == nil {
		r = &evidenceRow{Record: rec, Kind: kindOf(rec.PredicateType), Verified: true, Checks: sigChecks(sig, rec, rb.logSize)}
		rb.rows[sig.Bundle] = r
	}
	return r
}

// addProvenance adds builder details to provenance rows and returns the
// builds, with the toolchains custody's own provenance records.
func (rb *rowBuilder) addProvenance(provs []policy.Provenance) []buildView {
	var builds []buildView
	for _, p := range provs {
		r := rb.row(p.Signature)
		if r == nil {
			continue
		}
		b := buildView{Facts: p.Facts, Signer: p.Signer.String(), EvidenceID: r.Record.ID}
		b.Toolchains = toolchainsOf(r.Record.Bundle)
		builds = append(builds, b)
		r.Detail = append(r.Detail, "builder "+p.Facts.BuilderID, "build ID "+p.Facts.BuildID)
	}
	return builds
}

// toolchainsOf returns the toolchains a SLSA v1 provenance bundle records in
// custody's internal parameters, nil if none.
func toolchainsOf(bundle []byte) map[string]string {
	st, err := statementOf(bundle)
	if err != nil || st.PredicateType != attest.PredicateSLSAv1 {
		return nil
	}
	var prov struct {
		BuildDefinition struct {
			InternalParameters attest.CustodyInternalParameters `json:"internalParameters"`
		} `json:"buildDefinition"`
	}
	if json.Unmarshal(st.Predicate, &prov) != nil {
		return nil
	}
	return prov.BuildDefinition.InternalParameters.Toolchains
}

// addApprovals says who approved for which environment, and in which of
// that environment's policy groups the signer is.
func (rb *rowBuilder) addApprovals(approvals []policy.Approval, pols map[string]*policy.Policy) {
	for _, a := range approvals {
		r := rb.row(a.Signature)
		if r == nil {
			continue
		}
		groups := groupsOf(pols[a.Environment], a.Signer)
		g := "in no approval group of the policy"
		if len(groups) > 0 {
			g = "groups: " + fmt.Sprint(groups)
		}
		r.Detail = append(r.Detail, fmt.Sprintf("approved by %s for %s at %s; %s", a.Approver, a.Environment, a.Time.UTC().Format(time.RFC3339), g))
		if a.Reason != "" {
			r.Detail = append(r.Detail, "reason: "+a.Reason)
		}
	}
}

func (rb *rowBuilder) addRebuilds(rebuilds []policy.Rebuild) {
	for _, x := range rebuilds {
		r := rb.row(x.Signature)
		if r == nil {
			continue
		}
		c := Check{Name: "rebuild agrees", Pass: x.Matched, Reason: "the rebuild produced the same digest"}
		if !x.Matched {
			c.Reason = "the rebuild produced a different digest"
		}
		r.Checks = append(r.Checks, c)
	}
}

// addVulnScans lists each scan's scanner and its first ten findings.
func (rb *rowBuilder) addVulnScans(scans []policy.VulnScan) {
	for _, s := range scans {
		r := rb.row(s.Signature)
		if r == nil {
			continue
		}
		r.Detail = append(r.Detail, fmt.Sprintf("scanner %s: %d findings", s.Scanner, len(s.Findings)))
		for i, f := range s.Findings {
			if i == 10 {
				r.Detail = append(r.Detail, fmt.Sprintf("… and %d more", len(s.Findings)-10))
				break
			}
			r.Detail = append(r.Detail, fmt.Sprintf("%s (%v)", f.ID, f.Severity))
		}
	}
}

// finish returns one row per record, in the records' order, with a failed
// signature check for each record not used as verified evidence, and the
// unverified provenance records.
func (rb *rowBuilder) finish(v *verified) (rows []evidenceRow, unverified []*store.Evidence) {
	for _, rec := range v.records {
		r := rb.rows[rec.BundleSHA256]
		if r == nil {
			reason, ok := v.rejected[rec.BundleSHA256]
			if !ok {
				reason = "not used as evidence"
			}
			r = &evidenceRow{Record: rec, Kind: kindOf(rec.PredicateType),
				Checks: []Check{{Name: "signature", Pass: false, Reason: reason}}}
			rb.rows[rec.BundleSHA256] = r
			if r.Kind == policy.EvidenceProvenance {
				unverified = append(unverified, rec)
			}
		}
		rows = append(rows, *r)
	}
	return rows, unverified
}

// deploymentsOf lists the deployments of digest and rollbacks from it.
func (d *Dashboard) deploymentsOf(ctx context.Context, digest string) ([]*store.Deployment, error) {
	deps, err := d.allDeployments(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("couldn't read deployments: %w", err)
	}
	var out []*store.Deployment
	for _, dep := range deps {
		if dep.Artifact == digest || dep.RollbackFrom == digest {
			out = append(out, dep)
		}
	}
	return out, nil
}

// decisions evaluates every environment's policy on ev, by environment name.
func (d *Dashboard) decisions(ctx context.Context, ev *policy.Evidence, pols map[string]*policy.Policy, q quarantineView) ([]decisionView, error) {
	var envs []string
	for e := range pols {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	var out []decisionView
	for _, e := range envs {
		dec, err := pols[e].Evaluate(ctx, ev, d.cfg.Now())
		if err != nil {
			return nil, fmt.Errorf("couldn't evaluate the policy of %s: %w", e, err)
		}
		out = append(out, decisionView{Environment: e, Decision: dec, Quarantined: len(q.Records) > 0,
			QuarantineUnknown: !q.Checked && d.cfg.Incidents != nil})
	}
	return out, nil
}

func (d *Dashboard) artifact(r *http.Request) view {
	digest := r.PathValue("digest")
	if !digestRe.MatchString(digest) {
		return fail(http.StatusBadRequest, "an artifact is named by sha256:HEX (64 lowercase hex digits)")
	}
	av, err := d.artifactData(r.Context(), digest)
	if err != nil {
		return fail(http.StatusInternalServerError, err.Error())
	}
	return view{name: "artifact", title: "Artifact " + digest[:19], data: av}
}

type evidenceView struct {
	Row       evidenceRow
	Artifacts []string // sha256 digests of its subjects
	Statement string   // pretty-printed, shown as text
}

func (d *Dashboard) evidence(r *http.Request) view {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return fail(http.StatusBadRequest, "evidence is named by a positive number")
	}
	rec, err := d.cfg.Index.Get(r.Context(), id)
	if err != nil {
		return fail(http.StatusNotFound, "no evidence with that ID")
	}
	ev := evidenceView{}
	for _, s := range rec.Subjects {
		if h := s.Digests["sha256"]; h != "" && digestRe.MatchString("sha256:"+h) {
			ev.Artifacts = append(ev.Artifacts, "sha256:"+h)
		}
	}
	if st, err := statementOf(rec.Bundle); err == nil {
		raw, _ := json.Marshal(st)
		var buf bytes.Buffer
		if json.Indent(&buf, raw, "", "  ") == nil {
			ev.Statement = buf.String()
		}
	}
	// Checks come from verifying the bundle as evidence about its first
	// subject, exactly as on the artifact page.
	ev.Row = evidenceRow{Record: rec, Kind: kindOf(rec.PredicateType),
		Checks: []Check{{Name: "signature", Pass: false, Reason: "names no sha256 subject: not verified"}}}
	if len(ev.Artifacts) > 0 {
		av, err := d.artifactData(r.Context(), ev.Artifacts[0])
		if err != nil {
			return fail(http.StatusInternalServerError, err.Error())
		}
		for _, row := range av.Evidence {
			if row.Record.ID == rec.ID {
				ev.Row = row
			}
		}
	}
	return view{name: "evidence", title: fmt.Sprintf("Evidence %d", id), data: ev}
}

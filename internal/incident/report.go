package incident

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/deploy"
)

// Rollback outcomes in a report.
const (
	RolledBack   = "rolled-back"   // the environment runs an unaffected artifact again
	NoRollback   = "none-possible" // no earlier artifact is good and unaffected
	NotAttempted = "not-attempted" // no policy or deploy command for the environment was given
	RollbackFail = "failed"        // the rollback could not be carried out (see Detail)
)

// Report is what an incident found, blocked and rolled back, with times.
// Its JSON form is stored in the incident's "reported" record.
type Report struct {
	ID               string    `json:"id"`
	Selector         Selector  `json:"compromised"`
	CompromisedSince time.Time `json:"compromisedSince"`
	OpenedAt         time.Time `json:"openedAt"`
	Actor            string    `json:"actor,omitempty"`
	// Found is every artifact with evidence from the compromised signer.
	Found *Findings `json:"found"`
	// Unreadable are bundles that could not be read while searching.
	Unreadable []Unreadable `json:"unreadable,omitempty"`
	// Running is where affected artifacts ran when the incident opened.
	Running []Placement `json:"running"`
	// Quarantined are the quarantine records written.
	Quarantined []Quarantined `json:"quarantined"`
	// PromotionHalted lists, per environment an affected artifact runs in,
	// that it can no longer be promoted from there (nor deployed anywhere).
	PromotionHalted []Placement `json:"promotionHalted"`
	Rollbacks       []Rollback  `json:"rollbacks"`
	TrustRoot       *TrustRoot  `json:"trustRoot,omitempty"`
	Metrics         Metrics     `json:"metrics"`
	// Abridged, when set, says what MarshalAtMost left out so that the
	// report fits in one ledger record (the quarantine records still name
	// every artifact).
	Abridged string `json:"abridged,omitempty"`
	// Record is the ID of the ledger record that holds the report (set by
	// Open; not part of the JSON form).
	Record int64 `json:"-"`
}

// MarshalAtMost returns the report as JSON of at most max bytes: whole
// when it fits; else without the evidence of each artifact, the list of
// quarantine records (each is its own ledger record) and all but 100
// unreadable bundles; else also without the lists of affected and spared
// artifacts (the metrics keep their counts). Abridged says which. An
// error means even that does not fit.
func (r *Report) MarshalAtMost(max int) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil || len(b) <= max {
		return b, err
	}
	short := *r
	found := &Findings{Affected: make([]Artifact, len(r.Found.Affected)), Spared: make([]Artifact, len(r.Found.Spared))}
	for i, a := range r.Found.Affected {
		found.Affected[i] = Artifact{Digest: a.Digest, Names: a.Names}
	}
	for i, a := range r.Found.Spared {
		found.Spared[i] = Artifact{Digest: a.Digest, Names: a.Names}
	}
	short.Found, short.Quarantined = found, nil
	if len(short.Unreadable) > 100 {
		short.Unreadable = short.Unreadable[:100]
	}
	short.Abridged = fmt.Sprintf("over %d bytes: the evidence of each artifact, the quarantine records (see the ledger) and all but 100 unreadable bundles are left out", max)
	if b, err = json.Marshal(&short); err != nil || len(b) <= max {
		return b, err
	}
	short.Found = &Findings{Affected: []Artifact{}, Spared: []Artifact{}}
	short.Abridged = fmt.Sprintf("over %d bytes: the affected and spared artifacts (counted in the metrics; the quarantine records in the ledger name each), their evidence and all but 100 unreadable bundles are left out", max)
	if b, err = json.Marshal(&short); err != nil || len(b) <= max {
		return b, err
	}
	return nil, fmt.Errorf("incident report is %d bytes even abridged, more than the limit of %d", len(b), max)
}

// Unreadable is a bundle the search could not read, and why.
type Unreadable struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// Placement is an artifact running in an environment.
type Placement struct {
	Environment string    `json:"environment"`
	Artifact    string    `json:"artifact"`
	Name        string    `json:"name,omitempty"`
	Since       time.Time `json:"since,omitzero"`
}

// Quarantined is one quarantine record.
type Quarantined struct {
	Artifact string    `json:"artifact"`
	At       time.Time `json:"at"`
	Record   int64     `json:"record"`
}

// Rollback is what happened to one environment that ran an affected artifact.
type Rollback struct {
	Environment string           `json:"environment"`
	From        string           `json:"from"`
	Outcome     string           `json:"outcome"`
	To          string           `json:"to,omitempty"`
	ToName      string           `json:"toName,omitempty"`
	At          time.Time        `json:"at,omitzero"`
	Detail      string           `json:"detail,omitempty"`
	Skipped     []deploy.Skipped `json:"skipped,omitempty"`
}

// TrustRoot is the revocation written to a trust root.
type TrustRoot struct {
	Path    string `json:"path"`
	Version int    `json:"version"`
	KeyID   string `json:"keyId"`
	Signed  int    `json:"signatures"`
	Needed  int    `json:"threshold"`
	Note    string `json:"note"`
	// Push is what became of the new version on the server (incident open
	// --server); nil in local mode.
	Push *TrustPush `json:"push,omitempty"`
}

// TrustPush is the revoked trust root version sent to a server, which
// checks policy changes against it and serves it to every client that
// pulls (custody trust pull).
type TrustPush struct {
	Server string `json:"server"`
	// Accepted is true when the server holds the new version (it accepted
	// it now, or already had it).
	Accepted bool `json:"accepted"`
	// Version is the server's trust root version after the push (0 when
	// not accepted).
	Version int `json:"version,omitempty"`
	// Detail says why it was not pushed or refused, and what to run.
	Detail string `json:"detail,omitempty"`
}

// Metrics of an incident.
type Metrics struct {
	ArtifactsAffected int `json:"artifactsAffected"`
	ArtifactsSpared   int `json:"artifactsSpared"`
	// SecondsToLastRollback is the time from opening to the last
	// successful rollback; absent when nothing was rolled back.
	SecondsToLastRollback *float64 `json:"secondsToLastRollback,omitempty"`
	// FailedVerifications counts, by reason, the evidence and rollback
	// candidates that did not pass while the incident was handled.
	FailedVerifications map[string]int `json:"failedVerifications"`
}

// Finish computes the metrics from the rest of the report.
func (r *Report) Finish() {
	m := Metrics{ArtifactsAffected: len(r.Found.Affected), ArtifactsSpared: len(r.Found.Spared), FailedVerifications: map[string]int{}}
	var last time.Time
	for _, rb := range r.Rollbacks {
		if rb.Outcome == RolledBack && rb.At.After(last) {
			last = rb.At
		}
		for _, sk := range rb.Skipped {
			m.FailedVerifications[skipReason(sk.Reason)]++
		}
	}
	if !last.IsZero() {
		s := last.Sub(r.OpenedAt).Seconds()
		m.SecondsToLastRollback = &s
	}
	for _, a := range r.Found.Affected {
		for _, h := range a.Evidence {
			if h.ProvenAt.IsZero() {
				m.FailedVerifications["time not proven"]++
			} else {
				m.FailedVerifications["signed after compromise"]++
			}
		}
	}
	if len(r.Unreadable) > 0 {
		m.FailedVerifications["unreadable bundle"] += len(r.Unreadable)
	}
	r.Metrics = m
}

// skipReason groups a rollback skip reason into a metric label.
func skipReason(reason string) string {
	switch {
	case strings.Contains(reason, "quarantined"):
		return "quarantined"
	case strings.Contains(reason, "policy denies"):
		return "denied by policy"
	case strings.Contains(reason, "file is gone"), strings.Contains(reason, "not a file path"):
		return "artifact file missing"
	case strings.Contains(reason, "changed"), strings.Contains(reason, "overwritten"):
		return "artifact changed"
	}
	return "deploy or health check failed"
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	fmt.Fprintf(w, "incident %s opened %s", r.ID, ts(r.OpenedAt))
	if r.Actor != "" {
		fmt.Fprintf(w, " by %s", r.Actor)
	}
	fmt.Fprintf(w, "\ncompromised: %s since %s\n", r.Selector, ts(r.CompromisedSince))
	affected, spared := len(r.Found.Affected), len(r.Found.Spared)
	if r.Abridged != "" {
		affected, spared = r.Metrics.ArtifactsAffected, r.Metrics.ArtifactsSpared
	}
	fmt.Fprintf(w, "found: %d affected artifact(s), %d signed before the compromise (proven)\n", affected, spared)
	if r.Abridged != "" {
		fmt.Fprintf(w, "abridged: %s\n", r.Abridged)
	}
	for _, a := range r.Found.Affected {
		fmt.Fprintf(w, "  AFFECTED %s %v\n", a.Digest, a.Names)
		for _, h := range a.Evidence {
			when := h.Proof
			if !h.ProvenAt.IsZero() {
				when = h.Proof + " " + ts(h.ProvenAt)
			}
			fmt.Fprintf(w, "           %s (%s)\n", h.Source, when)
		}
	}
	for _, a := range r.Found.Spared {
		if len(a.Evidence) == 0 {
			fmt.Fprintf(w, "  spared   %s %v: signed before the compromise\n", a.Digest, a.Names)
			continue
		}
		fmt.Fprintf(w, "  spared   %s %v: signed before the compromise (%s %s)\n", a.Digest, a.Names, a.Evidence[0].Proof, ts(a.Evidence[0].ProvenAt))
	}
	for _, u := range r.Unreadable {
		fmt.Fprintf(w, "  unreadable %s: %s\n", u.Source, u.Reason)
	}
	for _, p := range r.Running {
		fmt.Fprintf(w, "running: %s runs affected %s (%s) since %s\n", p.Environment, p.Artifact, p.Name, ts(p.Since))
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(w, "blocked: %s quarantined at %s\n", q.Artifact, ts(q.At))
	}
	for _, p := range r.PromotionHalted {
		fmt.Fprintf(w, "promotion halted: %s from %s\n", p.Artifact, p.Environment)
	}
	for _, rb := range r.Rollbacks {
		switch rb.Outcome {
		case RolledBack:
			fmt.Fprintf(w, "ROLLED BACK: %s from %s to %s (%s) at %s\n", rb.Environment, rb.From, rb.To, rb.ToName, ts(rb.At))
		case NoRollback:
			fmt.Fprintf(w, "NO ROLLBACK: %s still runs affected %s: %s\n", rb.Environment, rb.From, rb.Detail)
		default:
			fmt.Fprintf(w, "NOT ROLLED BACK (%s): %s still runs affected %s: %s\n", rb.Outcome, rb.Environment, rb.From, rb.Detail)
		}
		for _, sk := range rb.Skipped {
			if sk.Tried {
				fmt.Fprintf(w, "  rollback to %s (%s) failed: %s\n", sk.Artifact, sk.Name, sk.Reason)
				continue
			}
			fmt.Fprintf(w, "  not rolled back to %s (%s): %s\n", sk.Artifact, sk.Name, sk.Reason)
		}
	}
	if t := r.TrustRoot; t != nil {
		fmt.Fprintf(w, "trust root: key %s revoked since %s in %s version %d (%d of %d admin signatures): %s\n",
			t.KeyID, ts(r.CompromisedSince), t.Path, t.Version, t.Signed, t.Needed, t.Note)
		switch p := t.Push; {
		case p == nil:
		case p.Accepted:
			fmt.Fprintf(w, "trust root: %s accepted it: the server's trust root is version %d\n", p.Server, p.Version)
		default:
			fmt.Fprintf(w, "TRUST ROOT NOT ON THE SERVER: %s: %s\n", p.Server, p.Detail)
		}
	}
	m := r.Metrics
	fmt.Fprintf(w, "metrics: %d artifact(s) affected", m.ArtifactsAffected)
	if m.SecondsToLastRollback != nil {
		fmt.Fprintf(w, ", %.3fs from open to last rollback", *m.SecondsToLastRollback)
	}
	var reasons []string
	for k := range m.FailedVerifications {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(w, ", %d %s", m.FailedVerifications[k], k)
	}
	fmt.Fprintln(w)
}

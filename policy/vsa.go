package policy

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
)

// VSADecisionExt is custody's member "custody" of a VSA
// (attest.VSAPredicate.Custody): the environment, failures and passed
// checks.
type VSADecisionExt struct {
	Environment string    `json:"environment"`
	Failures    []Failure `json:"failures"`
	Passed      []string  `json:"passed"`
	// Cleared and Latency are the Decision's (omitted when empty).
	Cleared []Clearance   `json:"cleared,omitempty"`
	Latency []StepLatency `json:"latency,omitempty"`
}

// EnvironmentURI is the resourceUri a VSA names for an environment.
func EnvironmentURI(env string) string { return "urn:custody:environment:" + env }

// PolicyURI is the policy.uri a VSA names for an environment's policy.
func PolicyURI(env string) string { return "urn:custody:policy:" + env }

// VSA returns the decision as an in-toto Statement v1 (JSON) about the
// artifact with a SLSA VSA v1 predicate: verifier.id verifierID, resourceUri
// EnvironmentURI(env), policy PolicyURI(env) with the policy digest,
// verificationResult PASSED or FAILED, verifiedLevels SLSA_BUILD_LEVEL_1 for
// an allowed artifact (signed provenance from a trusted builder was
// verified; custody does not assess the builder's own level) or FAILED.
// The statement is unsigned; sign it with signer.SignStatement.
func (d *Decision) VSA(verifierID string) ([]byte, error) {
	if verifierID == "" {
		return nil, errors.New("no verifier id")
	}
	alg, hex, ok := strings.Cut(d.Artifact, ":")
	if !ok || !sha256Digest.MatchString(d.Artifact) {
		return nil, errors.New("decision has no sha256 artifact digest")
	}
	pdAlg, pdHex, _ := strings.Cut(d.PolicyDigest, ":")
	ext, err := json.Marshal(&VSADecisionExt{Environment: d.Environment, Failures: d.Failures, Passed: d.Passed, Cleared: d.Cleared, Latency: d.Latency})
	if err != nil {
		return nil, err
	}
	pred := attest.VSAPredicate{
		Verifier:           attest.VSAVerifier{ID: verifierID},
		TimeVerified:       d.Time.UTC(),
		ResourceURI:        EnvironmentURI(d.Environment),
		Policy:             attest.VSAPolicy{URI: PolicyURI(d.Environment), Digest: map[string]string{pdAlg: pdHex}},
		VerificationResult: attest.VSAFailed,
		VerifiedLevels:     []string{"FAILED"},
		SLSAVersion:        "1.0",
		Custody:            ext,
	}
	if d.Allowed {
		pred.VerificationResult = attest.VSAPassed
		pred.VerifiedLevels = []string{"SLSA_BUILD_LEVEL_1"}
	}
	for _, in := range d.Inputs {
		pred.InputAttestations = append(pred.InputAttestations, attest.VSAInput{Digest: map[string]string{"sha256": in}})
	}
	st, err := attest.NewStatement([]attest.Subject{{Digest: map[string]string{alg: hex}}}, attest.PredicateVSA, pred)
	if err != nil {
		return nil, err
	}
	return st.Marshal()
}

// Change is how a candidate's decision changes between two policies.
type Change string

// Changes Diff reports.
const (
	NewlyDenied  Change = "newly-denied"
	NewlyAllowed Change = "newly-allowed"
)

// DiffEntry is one artifact whose decision differs between two policies.
type DiffEntry struct {
	Artifact string    `json:"artifact"`
	Change   Change    `json:"change"`
	Old      *Decision `json:"old"`
	New      *Decision `json:"new"`
}

// Diff evaluates every candidate under old and new at now and returns the
// artifacts the new policy would newly deny or newly allow, sorted by
// artifact. A candidate that cannot be evaluated counts as denied.
func Diff(old, new *Policy, candidates []*Evidence, now time.Time) []DiffEntry {
	var out []DiffEntry
	for _, ev := range candidates {
		if ev == nil {
			continue
		}
		a := decideOrDeny(old, ev, now)
		b := decideOrDeny(new, ev, now)
		switch {
		case a.Allowed && !b.Allowed:
			out = append(out, DiffEntry{Artifact: ev.Artifact, Change: NewlyDenied, Old: a, New: b})
		case !a.Allowed && b.Allowed:
			out = append(out, DiffEntry{Artifact: ev.Artifact, Change: NewlyAllowed, Old: a, New: b})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Artifact < out[j].Artifact })
	return out
}

func decideOrDeny(p *Policy, ev *Evidence, now time.Time) *Decision {
	d, err := p.Evaluate(context.Background(), ev, now)
	if err == nil {
		return d
	}
	d = &Decision{Artifact: ev.Artifact, Time: now.UTC(), Passed: []string{}}
	if p != nil {
		d.Environment, d.PolicyDigest = p.Environment, p.digest
	}
	d.Failures = []Failure{{Requirement: "evaluation", Message: "couldn't evaluate: " + err.Error(), Fix: "fix the policy or the evidence"}}
	return d
}

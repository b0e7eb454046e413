package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// PredicateVSA is the SLSA Verification Summary Attestation v1 predicate
// type (https://slsa.dev/spec/v1.0/verification_summary): custody records
// every policy decision as one (`custody deploy`, the admission webhook),
// signed with the server's audit key or the deployer's key.
const PredicateVSA = "https://slsa.dev/verification_summary/v1"

// VSA verification results.
const (
	VSAPassed = "PASSED"
	VSAFailed = "FAILED"
)

// VSAPredicate is the predicate of PredicateVSA. Custody carries custody's
// decision details (policy.VSADecisionExt, and the admission request for
// the webhook's decisions); consumers ignore unknown members.
type VSAPredicate struct {
	Verifier           VSAVerifier     `json:"verifier"`
	TimeVerified       time.Time       `json:"timeVerified"`
	ResourceURI        string          `json:"resourceUri"`
	Policy             VSAPolicy       `json:"policy"`
	InputAttestations  []VSAInput      `json:"inputAttestations,omitempty"`
	VerificationResult string          `json:"verificationResult"`
	VerifiedLevels     []string        `json:"verifiedLevels"`
	SLSAVersion        string          `json:"slsaVersion,omitempty"`
	Custody            json.RawMessage `json:"custody,omitempty"`
}

// VSAVerifier identifies who verified.
type VSAVerifier struct {
	ID string `json:"id"`
}

// VSAPolicy names the policy version that decided.
type VSAPolicy struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest"`
}

// VSAInput is one bundle whose evidence was considered.
type VSAInput struct {
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest"`
}

// ParseVSA parses a VSA predicate from untrusted bytes. Members it does
// not know are ignored. Besides what decodePredicate refuses (over
// MaxStatementBytes, a duplicate member, invalid UTF-8), it refuses no
// verifier.id, no timeVerified, no resourceUri, a verificationResult other
// than PASSED or FAILED, and no verifiedLevels.
func ParseVSA(b []byte) (*VSAPredicate, error) {
	var p VSAPredicate
	if err := decodePredicate("VSA", b, MaxStatementBytes, false, &p); err != nil {
		return nil, err
	}
	switch {
	case p.Verifier.ID == "" || len(p.Verifier.ID) > maxNameLen:
		return nil, errors.New("VSA names no verifier.id (or one over 1024 bytes)")
	case p.TimeVerified.IsZero():
		return nil, errors.New("VSA has no timeVerified")
	case p.ResourceURI == "":
		return nil, errors.New("VSA has no resourceUri")
	case p.VerificationResult != VSAPassed && p.VerificationResult != VSAFailed:
		return nil, fmt.Errorf("VSA verificationResult %q is neither %s nor %s", p.VerificationResult, VSAPassed, VSAFailed)
	case len(p.VerifiedLevels) == 0:
		return nil, errors.New("VSA has no verifiedLevels")
	}
	return &p, nil
}

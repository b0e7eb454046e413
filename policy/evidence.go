package policy

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
)

// Evidence is everything known about one artifact, all of it verified
// before it is put here (internal/gate builds it from bundles that passed
// verify.Verify and drops the rest). Evaluate and the Rego rules see
// exactly this; nothing unverified belongs in it. Its JSON form (the json
// tags) is the Rego input.
type Evidence struct {
	// Artifact is the artifact's digest, "sha256:HEX".
	Artifact string `json:"artifact"`
	// Provenance holds every verified SLSA provenance about the artifact.
	Provenance []Provenance `json:"provenance"`
	// Attestations are the other verified statements about the artifact
	// (SBOMs, vulnerability scans, test results, rebuilds, ...), approvals
	// excluded.
	Attestations []Attestation `json:"attestations"`
	// Approvals are verified approval statements (attest.PredicateApproval).
	Approvals []Approval `json:"approvals"`
	// Rebuilds are verified rebuild results (attest.PredicateRebuild).
	Rebuilds []Rebuild `json:"rebuilds"`
	// VulnScans are verified vulnerability scans with their findings.
	VulnScans []VulnScan `json:"vulnScans"`
	// Reviews are verified source review attestations (PredicateReview)
	// whose subject is a source commit of the artifact's verified
	// provenance.
	Reviews []Review `json:"reviews"`
	// RedFlagReports are verified red flags statements
	// (attest.PredicateRedFlags) about the artifact, whoever signed them:
	// the policy's redFlags.signers say which count.
	RedFlagReports []RedFlagReport `json:"redFlagReports"`
	// Authors are people who authored the source change, when the
	// evidence records them (names, emails or identities). They never count
	// as approvers.
	Authors []string `json:"authors"`
}

// Signature is what verification established about one signed statement.
type Signature struct {
	// Signer is who signed it: KeyID for a key-signed bundle, Identity and
	// Issuer for a certificate.
	Signer Principal `json:"signer"`
	// LogVerified is true when a transparency log inclusion was verified
	// against a trusted log.
	LogVerified bool `json:"logVerified"`
	// TimestampVerified is true when a signing time was proven by a
	// verified RFC 3161 timestamp or a verified log integration time.
	TimestampVerified bool `json:"timestampVerified"`
	// SignedAt is the earliest verified signing time; zero when none.
	SignedAt time.Time `json:"signedAt,omitzero"`
	// Bundle is the lowercase hex SHA-256 of the bundle it came from.
	Bundle string `json:"bundle,omitempty"`
	// Certificate is what the verified certificate of a keyless signer
	// says of the build; nil for a key.
	Certificate *CertificateFacts `json:"certificate,omitempty"`
}

// CertificateFacts are Fulcio certificate extensions of a keyless signer
// (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
type CertificateFacts struct {
	// SourceRepository is the source repository URI (1.3.6.1.4.1.57264.1.12).
	SourceRepository string `json:"sourceRepository,omitempty"`
	// Ref is the source repository ref (1.3.6.1.4.1.57264.1.14).
	Ref string `json:"ref,omitempty"`
	// BuildSignerURI is the workflow that signed, at its ref
	// (1.3.6.1.4.1.57264.1.9).
	BuildSignerURI string `json:"buildSignerURI,omitempty"`
}

// Workflow is the path of the signing workflow: BuildSignerURI without its
// "@ref", and without the source repository URI when it lies in it
// (".github/workflows/release.yml"; a reusable workflow of another
// repository keeps its full URI).
func (c *CertificateFacts) Workflow() string {
	w := c.BuildSignerURI
	if i := strings.LastIndex(w, "@"); i >= 0 {
		w = w[:i]
	}
	if c.SourceRepository != "" {
		if rest, ok := strings.CutPrefix(w, strings.TrimRight(c.SourceRepository, "/")+"/"); ok {
			return rest
		}
	}
	return w
}

// Provenance is one verified SLSA provenance statement.
type Provenance struct {
	Signature
	Facts attest.ProvenanceFacts `json:"facts"`
}

// Attestation is one verified statement of another predicate type.
type Attestation struct {
	Signature
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Approval is one verified approval statement.
type Approval struct {
	Signature
	attest.ApprovalPredicate
}

// Rebuild is one verified independent rebuild result.
type Rebuild struct {
	Signature
	// Matched is true when the rebuild produced the same artifact digest.
	Matched bool `json:"matched"`
	// BuildID is the build ID (invocation ID) of the provenance the
	// rebuild replayed, as the rebuild predicate records it.
	BuildID string `json:"buildId,omitempty"`
	// ProvenanceBundle is the lowercase hex SHA-256 of the provenance
	// bundle the rebuild replayed, as the rebuild predicate records it.
	ProvenanceBundle string `json:"provenanceBundle,omitempty"`
}

// VulnScan is one verified vulnerability scan.
type VulnScan struct {
	Signature
	PredicateType string          `json:"predicateType"`
	Scanner       string          `json:"scanner,omitempty"`
	Findings      []Vulnerability `json:"findings"`
}

// Vulnerability is one finding of a scan.
type Vulnerability struct {
	ID string `json:"id"`
	// Severity is the highest severity any method gave it; findings whose
	// severity could not be read count as critical.
	Severity Severity `json:"severity"`
}

// nonNil returns s, or an empty slice for nil (JSON [] rather than null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

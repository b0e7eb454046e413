package api

import (
	"encoding/json"

	"github.com/custody-dev/custody/attest"
)

// PredicateAudit is the predicate type of the server's audit entries,
// defined in attest with the predicate's one parser (attest.ParseAudit).
const PredicateAudit = attest.PredicateAudit

// AuditKeyName is the name under which GET /api/v1/keys/{name} serves the
// audit key's public key. No builder key may have this name.
const AuditKeyName = "audit"

// AuditPredicate is the predicate of an audit entry: attest's type, which
// the API also carries.
type AuditPredicate = attest.AuditPredicate

// SubjectPolicyPrefix prefixes the environment in the subject name of
// "policy.changed" audit entries ("policy/prod"); the digest is the SHA-256
// of the signed policy bytes (policy.Signed.Digest).
const SubjectPolicyPrefix = "policy/"

// SubjectTrustRoot is the subject name of "trust.changed" audit entries;
// the digest is the SHA-256 of the accepted document's JSON.
const SubjectTrustRoot = "trust-root"

// PolicyChange is the detail of a "policy.changed" audit entry.
type PolicyChange struct {
	Environment string `json:"environment"`
	// Version is the policy's version; Previous the version it replaced
	// (0: none) and PreviousDigest that version's digest.
	Version        int    `json:"version"`
	Previous       int    `json:"previous"`
	PreviousDigest string `json:"previousDigest,omitempty"`
	// Digest is the SHA-256 of the signed policy bytes: the digest every
	// decision made under this policy records.
	Digest string `json:"digest"`
	// TrustRootVersion is the version of the custody trust root whose
	// admins' signatures were counted; Admins lists the counted key IDs.
	TrustRootVersion int      `json:"trustRootVersion"`
	Admins           []string `json:"admins"`
	// Envelope is the signed policy (policy.Signed JSON).
	Envelope json.RawMessage `json:"envelope"`
}

// TrustChange is the detail of a "trust.changed" audit entry.
type TrustChange struct {
	// Version is the accepted version; Previous the one it replaced (0:
	// none, the version the server was started with).
	Version  int `json:"version"`
	Previous int `json:"previous"`
	// Digest is "sha256:HEX" of Document.
	Digest   string          `json:"digest"`
	Document json.RawMessage `json:"document"`
}

// PolicyPushAnswer is the answer of POST /api/v1/policies.
type PolicyPushAnswer struct {
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	Digest      string `json:"digest"`
	Existed     bool   `json:"existed"`
}

// TrustPushAnswer is the answer of POST /api/v1/trust-root.
type TrustPushAnswer struct {
	Version int  `json:"version"`
	Existed bool `json:"existed"`
}

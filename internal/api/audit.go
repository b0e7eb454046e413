package api

import (
	"encoding/json"
	"time"
)

// PredicateAudit is the predicate type of the server's audit entries: one
// in-toto statement per action that changes state (a deployment record, an
// incident step, a policy or trust root change), signed with the server's
// audit key (GET /api/v1/keys/audit), timestamped, appended to the
// transparency log and indexed like any evidence. Signing and approving
// need no audit entry of their own: the signed bundle is the log entry, and
// it names its signer.
const PredicateAudit = "https://custody.dev/audit/v1"

// AuditKeyName is the name under which GET /api/v1/keys/{name} serves the
// audit key's public key. No builder key may have this name.
const AuditKeyName = "audit"

// AuditPredicate is the predicate of an audit entry (PredicateAudit).
type AuditPredicate struct {
	// Action names what happened: "deployment.deployed", "incident.quarantined",
	// "policy.changed", "trust.changed", "token.revoked", ….
	Action string `json:"action"`
	// Actor is who did it, as the client says (a user or CI job).
	Actor string `json:"actor,omitempty"`
	// Token is the authenticated token that asked for it: "role" or
	// "role:name". Unlike Actor, the server vouches for it.
	Token string `json:"token"`
	// Time is when the server recorded the action (UTC).
	Time time.Time `json:"time"`
	// Detail is the action's record as the API received it (a deployment
	// record, incident records, the signed policy …).
	Detail json.RawMessage `json:"detail,omitempty"`
}

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

package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// PredicateAudit is the predicate type of a custody server's audit
// entries: one in-toto statement per action that changes state (a
// deployment record, an incident step, a policy or trust root change),
// signed with the server's audit key (GET /api/v1/keys/audit), timestamped,
// appended to the transparency log and indexed like any evidence. Signing
// and approving need no audit entry of their own: the signed bundle is the
// log entry, and it names its signer. The server refuses this type from
// every client path.
const PredicateAudit = "https://custody.dev/audit/v1"

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
	// Identity, Issuer and Session name the person who asked, when they
	// signed in through an OIDC provider: the identity (email or
	// subject) and issuer of their verified ID token, and the short form
	// of their session ID (a hash prefix, never the ID).
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	Session  string `json:"session,omitempty"`
	// Time is when the server recorded the action (UTC).
	Time time.Time `json:"time"`
	// Detail is the action's record as the API received it (a deployment
	// record, incident records, the signed policy …).
	Detail json.RawMessage `json:"detail,omitempty"`
}

// AuditAction is the form of an audit action: lowercase dotted words.
var AuditAction = regexp.MustCompile(`^[a-z]+(\.[a-z-]+)+$`)

// ParseAudit parses an audit predicate from untrusted bytes (an entry read
// back from the log or the index). Members it does not know are ignored.
// Besides what decodePredicate refuses (over MaxStatementBytes, a
// duplicate member, invalid UTF-8), it refuses an action that is not
// AuditAction's form, no token and no time.
func ParseAudit(b []byte) (*AuditPredicate, error) {
	var p AuditPredicate
	if err := decodePredicate("audit", b, MaxStatementBytes, false, &p); err != nil {
		return nil, err
	}
	switch {
	case len(p.Action) > maxNameLen || !AuditAction.MatchString(p.Action):
		return nil, fmt.Errorf("audit action %q is malformed", p.Action)
	case p.Token == "" || len(p.Token) > maxNameLen:
		return nil, errors.New("audit predicate names no token (or one over 1024 bytes)")
	case p.Time.IsZero():
		return nil, errors.New("audit predicate has no time")
	}
	return &p, nil
}

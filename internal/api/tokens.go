package api

import (
	"fmt"
	"time"
)

// Role is what a token may do.
type Role string

// Roles a token can have.
const (
	RoleBuilder  Role = "builder"
	RoleApprover Role = "approver"
	RoleDeployer Role = "deployer"
	RoleAuditor  Role = "auditor"
	RoleAdmin    Role = "admin"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleBuilder, RoleApprover, RoleDeployer, RoleAuditor, RoleAdmin}
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want builder, approver, deployer, auditor or admin)", s)
}

// TokenPrefix starts every token.
const TokenPrefix = "cust_"

// DefaultBuilderKey is the name of the builder key a server creates on
// first start, and the key builder tokens sign with unless told otherwise.
const DefaultBuilderKey = "builder"

// TokenIDLen is the length of a token ID: the first hex digits of the
// token's SHA-256.
const TokenIDLen = 12

// TokenStatus describes a token; never its secret.
type TokenStatus struct {
	ID       string    `json:"id"` // first TokenIDLen hex digits of its SHA-256
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Key      string    `json:"key,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
	LastUsed time.Time `json:"lastUsed,omitzero"` // as of the server's last batch of last-use times
}

// State is "active", "expired" or "revoked" at now.
func (t *TokenStatus) State(now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

// TokenList is the tokens of a data directory: the answer of GET
// /api/v1/tokens.
type TokenList struct {
	Tokens []TokenStatus `json:"tokens"`
	// Skipped says which lines of the tokens file hold no token record
	// (the server ignores them too).
	Skipped []string `json:"skipped,omitempty"`
}

// RevokeRequest is the body of POST /api/v1/tokens/revoke.
type RevokeRequest struct {
	// Name is the token's name, or its ID (TokenIDLen or more hex digits
	// of its SHA-256).
	Name string `json:"name"`
}

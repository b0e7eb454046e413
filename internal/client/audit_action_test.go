package client

import "testing"

// TestActionTypeWanted checks which predicate types auditTrail searches for
// an action filter: a filter on sign, approve or decide never searches the
// audit predicate, and one on an audit action ("incident.open", "incident")
// searches only the audit predicate.
func TestActionTypeWanted(t *testing.T) {
	audit := actionType{predicateType: "audit", action: ""}
	sign := actionType{predicateType: "provenance", action: ActionSign}
	for _, c := range []struct {
		filter      string
		audit, sign bool
	}{
		{"", true, true},
		{ActionSign, false, true},
		{ActionApprove, false, false},
		{ActionDecide, false, false},
		{"incident.open", true, false},
		{"incident", true, false},
	} {
		if got := audit.wanted(c.filter); got != c.audit {
			t.Errorf("audit predicate wanted for %q = %v, want %v", c.filter, got, c.audit)
		}
		if got := sign.wanted(c.filter); got != c.sign {
			t.Errorf("provenance wanted for %q = %v, want %v", c.filter, got, c.sign)
		}
	}
}

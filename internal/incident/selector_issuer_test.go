package incident

import (
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/store"
)

// An identity is named with its issuer: a selector without one is refused,
// and evidence of the same SAN from another issuer does not match.
func TestSelectorIdentityNeedsIssuer(t *testing.T) {
	if err := (Selector{Identity: "ci@example.com"}).Validate(); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("identity without issuer: %v", err)
	}
	if err := (Selector{KeyID: strings.Repeat("a", 64), Issuer: "https://x"}).Validate(); err == nil {
		t.Fatal("issuer without identity accepted")
	}
	sel := Selector{Identity: "ci@example.com", Issuer: "https://accounts.example.com"}
	if err := sel.Validate(); err != nil {
		t.Fatal(err)
	}
	ours := &Evidence{Evidence: store.Evidence{SignerIdentity: "ci@example.com", SignerIssuer: "https://accounts.example.com"}}
	theirs := &Evidence{Evidence: store.Evidence{SignerIdentity: "ci@example.com", SignerIssuer: "https://evil.example.com"}}
	if !sel.Matches(ours) || sel.Matches(theirs) {
		t.Fatalf("matches ours %v, theirs %v", sel.Matches(ours), sel.Matches(theirs))
	}
}

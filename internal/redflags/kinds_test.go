package redflags

import (
	"slices"
	"testing"

	"github.com/custody-dev/custody/attest"
)

// TestKindsInAttest: the kinds a policy may name (attest.RedFlagKinds,
// which the policy package validates redFlags against) are exactly the
// kinds Compute reports. Add a new kind to both.
func TestKindsInAttest(t *testing.T) {
	if !slices.Equal(Kinds, attest.RedFlagKinds) {
		t.Fatalf("redflags.Kinds %v != attest.RedFlagKinds %v: a policy could not name a kind, or would accept one never reported", Kinds, attest.RedFlagKinds)
	}
}

package verify

import (
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"
)

func parseBundle(t *testing.T, b []byte) *bundle.Bundle {
	t.Helper()
	bu := new(bundle.Bundle)
	if err := bu.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	return bu
}

// TestProvenSigningTime checks the signing time of every genuine corpus
// bundle that carries a log entry or timestamp against the time Verify
// proves for it, and that an untrusted root or a changed signature proves
// nothing.
func TestProvenSigningTime(t *testing.T) {
	for _, c := range genuineCases() {
		t.Run(c.name, func(t *testing.T) {
			raw := readCorpus(t, c.bundle)
			rep := mustVerify(t, c, raw)
			at, proof, err := ProvenSigningTime(parseBundle(t, raw), c.tm(t))
			if rep.SignedAt.IsZero() {
				if err == nil {
					t.Fatalf("proved %s by %s; Verify proves no time", at, proof)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !at.Equal(rep.SignedAt) || (proof != ProofLogEntry && proof != ProofTimestamp) {
				t.Fatalf("ProvenSigningTime = %s by %q, Verify's SignedAt = %s", at, proof, rep.SignedAt)
			}
		})
	}
	c := genuineCases()[2]
	raw := readCorpus(t, c.bundle)
	t.Run("untrusted log", func(t *testing.T) {
		if at, _, err := ProvenSigningTime(parseBundle(t, raw), scaffolding(t)); err == nil {
			t.Fatalf("proved %s with a root that does not hold the bundle's log", at)
		}
	})
	t.Run("no trusted root", func(t *testing.T) {
		if _, _, err := ProvenSigningTime(parseBundle(t, raw), nil); err == nil || !strings.Contains(err.Error(), "no trusted root") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("signature changed after logging", func(t *testing.T) {
		b := parseBundle(t, editBundle(t, raw, flipSignatureBit(t)))
		if at, _, err := ProvenSigningTime(b, publicGood(t)); err == nil || !strings.Contains(err.Error(), "log entry") {
			t.Fatalf("proved %s (err %v): the log entry is over another signature", at, err)
		}
	})
}

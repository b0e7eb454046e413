package attest

import (
	"encoding/json"
	"testing"
)

// roundTrip checks that what a parser accepted, marshalled again, parses.
func roundTrip[T any](t *testing.T, v *T, parse func([]byte) (*T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parse(b); err != nil {
		t.Fatalf("round trip of %s: %v", b, err)
	}
}

package server

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
)

func TestReservedPredicate(t *testing.T) {
	for _, tc := range []struct {
		t    string
		want bool
	}{
		{api.PredicateAudit, true},
		{"https://custody.dev/audit/v2", true},
		{"HTTP://CUSTODY.DEV/Audit/v1", true},
		{" https://custody.dev/audit/v1 ", true},
		{"https://custody.dev/audit", true},
		{"https://custody.dev/audit#x", true},
		{"https://custody.dev/trust-root/v1", true},
		{"https://custody.dev/trust-keys/v1", true},
		{"https://custody.dev/policy/v1", true},
		{"custody.dev/policy/v1", true},
		{"https://custody.dev/auditor/v1", false},
		{"https://custody.dev/approval/v1", false},
		{"https://custody.dev/rebuild/v1", false},
		{"https://custody.dev/review/v1", false},
		{"https://slsa.dev/verification_summary/v1", false},
		{"https://slsa.dev/provenance/v1", false},
		{"https://example.com/custody.dev/audit/v1", false},
	} {
		if got := reservedPredicate(tc.t); got != tc.want {
			t.Errorf("reservedPredicate(%q) = %v; want %v", tc.t, got, tc.want)
		}
	}
}

// FuzzCheckReserved holds checkReserved to the readers of a statement:
// whatever predicate type encoding/json (and so attest.ParseStatement)
// reads from a payload, checkReserved refuses the payload when that type
// is reserved.
func FuzzCheckReserved(f *testing.F) {
	for _, s := range []string{
		`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://custody.dev/audit/v1","subject":[],"predicate":{}}`,
		`{"predicateType":"https://example.com/x","PredicateType":"https://custody.dev/audit/v1"}`,
		`{"predicateType":"https://custody.dev/audit/v1","predicateType":"https://example.com/x"}`,
		`{"predicatetype":"HTTPS://custody.dev/Audit/v1"`,
		`{"predicate\u0054ype":"https://custody.dev/trust-root/v1"}`,
		`{"predicateType":"https://slsa.dev/provenance/v1"}`,
		`[]`, `null`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		err := checkReserved(attest.PayloadType, []byte(payload))
		if err != nil && !errors.Is(err, errReserved) {
			t.Fatalf("checkReserved error %v does not wrap errReserved", err)
		}
		var st struct {
			PredicateType string `json:"predicateType"`
		}
		if json.Unmarshal([]byte(payload), &st) == nil && reservedPredicate(st.PredicateType) && err == nil {
			t.Fatalf("payload %q: encoding/json reads reserved predicate type %q, checkReserved accepts it", payload, st.PredicateType)
		}
	})
}

package attest

import (
	"strings"
	"testing"
	"time"
)

const testArtifact = "sha256:abababababababababababababababababababababababababababababababab"

func TestParseApproval(t *testing.T) {
	good := `{"environment":"prod","artifact":"` + testArtifact + `","approver":"alice","time":"2026-01-01T00:00:00Z"}`
	tests := []struct{ name, in, err string }{
		{"good", good, ""},
		{"unknown field", strings.Replace(good, `"approver"`, `"extra":1,"approver"`, 1), "unknown field"},
		{"no env", strings.Replace(good, `"prod"`, `""`, 1), "environment"},
		{"upper hex", strings.Replace(good, "abab", "ABAB", 1), "sha256:HEX"},
		{"no time", strings.Replace(good, `,"time":"2026-01-01T00:00:00Z"`, "", 1), "no time"},
		{"trailing", good + "{}", "not JSON"},
		// Which environment did alice approve? Refused, not guessed.
		{"duplicate member", strings.Replace(good, `"environment":"prod"`, `"environment":"dev","environment":"prod"`, 1), "duplicate"},
		{"invalid utf-8", strings.Replace(good, `"alice"`, "\"al\xffce\"", 1), "UTF-8"},
		{"oversized", strings.Replace(good, `"alice"`, `"`+strings.Repeat("a", MaxApprovalBytes)+`"`, 1), "limit"},
		{"not an object", `"prod"`, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseApproval([]byte(tt.in))
			if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := NewApproval(ApprovalPredicate{Environment: "prod", Artifact: testArtifact, Approver: "alice", Time: now})
	if err != nil || st.PredicateType != PredicateApproval || st.Subject[0].Digest["sha256"] != strings.TrimPrefix(testArtifact, "sha256:") {
		t.Fatalf("NewApproval: %v %+v", err, st)
	}
}

// FuzzParseApproval: the approval parser never panics and what it accepts
// round-trips through NewApproval.
func FuzzParseApproval(f *testing.F) {
	f.Add([]byte(`{"environment":"prod","artifact":"` + testArtifact + `","approver":"alice","reason":"ok","time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"environment":"prod"}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseApproval(b)
		if err != nil {
			return
		}
		if _, err := NewApproval(*a); err != nil {
			t.Fatalf("accepted approval does not build: %v", err)
		}
		roundTrip(t, a, ParseApproval)
	})
}

package server

import (
	"testing"

	"github.com/custody-dev/custody/internal/store"
)

// FuzzParseIncidentRequest: the body of POST /api/v1/incidents is either
// refused or yields records that CheckIncidentBatch then judges; it never
// panics, and a batch is never over the cap.
func FuzzParseIncidentRequest(f *testing.F) {
	for _, s := range []string{
		`{"incident":"INC-20260301T120000Z-00000001","event":"opened","time":"2026-03-01T12:00:00Z"}`,
		`{"records":[{"incident":"INC-20260301T120000Z-00000001","event":"quarantined","artifact":"sha256:` +
			"0000000000000000000000000000000000000000000000000000000000000000" + `","time":"2026-03-01T12:00:00Z"}]}`,
		`{"records":[]}`, `{"records":null}`, `{"records":[null]}`, `[]`, `null`, `{}`, `{"records":{}}`,
		`{"incident":"x","report":{"a":1},"event":"reported","time":"2026-03-01T12:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, single, err := parseIncidentRequest(body)
		if err != nil {
			return
		}
		if single && len(recs) != 1 {
			t.Fatalf("single request gave %d records", len(recs))
		}
		if len(recs) > store.MaxIncidentBatch {
			t.Fatalf("%d records passed the cap", len(recs))
		}
		ns, err := store.CheckIncidentBatch(recs)
		if err != nil {
			return
		}
		if _, err := incidentAuditEvents(ns, auditMaxDetail); err != nil {
			t.Fatalf("valid records have no audit events: %v", err)
		}
	})
}

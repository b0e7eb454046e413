package dashboard

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/store"
)

func TestIncidentFigures(t *testing.T) {
	t0 := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	report := func(id string, detect time.Duration, rollbacks ...incident.Rollback) json.RawMessage {
		r := incident.Report{ID: id, CompromisedSince: t0.Add(-detect), OpenedAt: t0, Found: &incident.Findings{}, Rollbacks: rollbacks}
		b, _ := json.Marshal(r)
		return b
	}
	const a, b, c = "INC-20260701T120000Z-0000000a", "INC-20260701T120000Z-0000000b", "INC-20260701T120000Z-0000000c"
	recs := []*store.IncidentRecord{
		{ID: 1, Incident: a, Event: store.IncidentOpened, Time: t0},
		{ID: 2, Incident: a, Event: store.IncidentReported, Time: t0, Report: report(a, time.Hour,
			incident.Rollback{Environment: "prod", Outcome: incident.RolledBack, At: t0.Add(time.Minute)},
			incident.Rollback{Environment: "staging", Outcome: incident.RolledBack, At: t0.Add(3 * time.Minute)})},
		{ID: 3, Incident: a, Event: store.IncidentClosed, Time: t0.Add(time.Hour)},
		// b: detected after 3h, no rollback possible: not contained.
		{ID: 4, Incident: b, Event: store.IncidentOpened, Time: t0},
		{ID: 5, Incident: b, Event: store.IncidentReported, Time: t0, Report: report(b, 3*time.Hour,
			incident.Rollback{Environment: "prod", Outcome: incident.NoRollback})},
		// c: a report that does not parse, and no opened record; counted,
		// never averaged.
		{ID: 6, Incident: c, Event: store.IncidentQuarantined, Artifact: "sha256:" + strings.Repeat("0", 64), Time: t0},
		{ID: 7, Incident: c, Event: store.IncidentReported, Time: t0, Report: json.RawMessage(`{"found": 3}`)},
	}
	f := figuresOf(incidentViews(recs))
	if f.Incidents != 3 || f.Open != 2 {
		t.Errorf("incidents %d (%d open), want 3 (2 open)", f.Incidents, f.Open)
	}
	if f.Detected != 2 || f.MeanDetect != 2*time.Hour {
		t.Errorf("detect: %v over %d, want 2h over 2", f.MeanDetect, f.Detected)
	}
	if f.Contained != 1 || f.MeanContain != 3*time.Minute {
		t.Errorf("contain: %v over %d, want 3m (the last rollback) over 1", f.MeanContain, f.Contained)
	}
	if f.Uncontained != 1 {
		t.Errorf("not contained: %d, want 1", f.Uncontained)
	}
	var cv *incidentView
	for _, iv := range f.Views {
		if iv.ID == c {
			cv = iv
		}
	}
	if cv == nil || len(cv.Quarantined) != 1 || cv.Report != nil {
		t.Fatalf("incident c: %+v", cv)
	}
	problems := strings.Join(cv.Problems, "\n")
	for _, w := range []string{"report in record 7 does not parse", "no opened record", "no readable report"} {
		if !strings.Contains(problems, w) {
			t.Errorf("incident c problems lack %q:\n%s", w, problems)
		}
	}
	if f.Views[len(f.Views)-1].ID != a {
		t.Errorf("the closed incident is not last: %s", f.Views[len(f.Views)-1].ID)
	}
	if g := figuresOf(nil); g.meanDetectSeconds() != -1 || g.meanContainSeconds() != -1 {
		t.Error("no incidents: the gauges are not -1")
	}
}

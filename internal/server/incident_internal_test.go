package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// The quarantines of one incident open share everything but the artifact:
// their audit entry names the shared fields once and then every artifact,
// in order, each also a subject.
func TestQuarantineAuditCompact(t *testing.T) {
	inc := storetest.IncidentID(7)
	now := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	var ns []*store.IncidentRecord
	for n := range 1000 {
		ns = append(ns, &store.IncidentRecord{Incident: inc, Event: store.IncidentQuarantined,
			Artifact: "sha256:" + storetest.Digest(fmt.Sprint(n)), Actor: "alice", Time: now,
			Detail: "evidence signed by key " + storetest.Digest("K") + " not proven before 2026-11-25T21:00:00Z", RecordedBy: "admin:x"})
	}
	ns[999].Detail = "another detail"
	events, err := incidentAuditEvents(ns, auditMaxDetail)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].action != "incident.quarantined" || len(events[0].subjects) != 1000 {
		t.Fatalf("events = %d (%+v)", len(events), events)
	}
	groups := events[0].detail.([]*auditQuarantine)
	if len(groups) != 2 || len(groups[0].Artifacts) != 999 || len(groups[1].Artifacts) != 1 || groups[1].Detail != "another detail" {
		t.Fatalf("groups = %d", len(groups))
	}
	for i, s := range events[0].subjects {
		a := append(groups[0].Artifacts, groups[1].Artifacts...)[i]
		if s.Name != inc || a != ns[i].Artifact || "sha256:"+s.Digest["sha256"] != a {
			t.Fatalf("subject %d = %+v, artifact %s; want %s", i, s, a, ns[i].Artifact)
		}
	}
	compact, _ := json.Marshal(groups)
	full, _ := json.Marshal(ns)
	if len(compact)*3 > len(full) {
		t.Errorf("compact detail is %d bytes, the records %d: want less than a third", len(compact), len(full))
	}

	// A small budget cuts the run into several entries, none over it.
	events, err = incidentAuditEvents(ns, 20000)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, e := range events {
		b, _ := json.Marshal(e.detail)
		if len(b) > 20000 {
			t.Errorf("entry detail of %d bytes over the budget", len(b))
		}
		total += len(e.subjects)
	}
	if len(events) < 2 || total != 1000 {
		t.Errorf("%d events with %d subjects; want several with 1000", len(events), total)
	}
}

package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// IncidentID returns a valid incident ID numbered n.
func IncidentID(n int) string { return fmt.Sprintf("INC-20260301T120000Z-%08x", n) }

// Quarantine returns a valid record quarantining artifact number n in
// incident inc.
func Quarantine(inc string, n int) *store.IncidentRecord {
	return &store.IncidentRecord{
		Incident: inc,
		Event:    store.IncidentQuarantined,
		Artifact: "sha256:" + Digest(fmt.Sprint(n)),
		Actor:    "alice",
		Time:     time.Date(2026, 3, 1, 12, 0, n%60, 123456789, time.FixedZone("X", 3600)),
		Detail:   fmt.Sprintf("evidence %d not proven before T", n),
	}
}

func incidentRecords(t *testing.T, s Store, q store.IncidentQuery) []*store.IncidentRecord {
	t.Helper()
	rs, err := s.Incidents(context.Background(), q)
	if err != nil {
		t.Fatalf("Incidents(%+v): %v", q, err)
	}
	return rs
}

func testIncidentsRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	inc := IncidentID(1)
	opened := &store.IncidentRecord{Incident: inc, Event: store.IncidentOpened, Actor: "alice",
		Time: time.Date(2026, 3, 1, 12, 0, 0, 999, time.UTC), Detail: "key K compromised since T", RecordedBy: "admin:ops",
		ID: 42, RecordedAt: time.Unix(5, 0)}
	reported := &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Actor: "alice",
		Time: time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC), Report: json.RawMessage(`{"id":"` + inc + `","found":3}`), RecordedBy: "admin:ops"}
	batch := []*store.IncidentRecord{opened, Quarantine(inc, 1), Quarantine(inc, 2), reported}
	batch[1].RecordedBy, batch[2].RecordedBy = "admin:ops", "admin:ops"
	keep := make([]store.IncidentRecord, len(batch))
	for i, r := range batch {
		keep[i] = *r
	}
	before := time.Now().Add(-time.Second)
	ids, err := s.AppendIncidents(ctx, batch)
	if err != nil {
		t.Fatalf("AppendIncidents: %v", err)
	}
	if len(ids) != len(batch) {
		t.Fatalf("AppendIncidents returned %d IDs for %d records", len(ids), len(batch))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Errorf("IDs not increasing in batch order: %v", ids)
		}
	}
	for i, r := range batch {
		if !reflect.DeepEqual(*r, keep[i]) {
			t.Errorf("AppendIncidents modified record %d", i)
		}
	}
	got := incidentRecords(t, s, store.IncidentQuery{Incident: inc})
	if len(got) != len(batch) {
		t.Fatalf("Incidents = %d records, want %d", len(got), len(batch))
	}
	for i, g := range got {
		if g.ID != ids[i] {
			t.Errorf("record %d: ID %d, want %d", i, g.ID, ids[i])
		}
		if g.RecordedAt.Before(before.Truncate(time.Microsecond)) || g.RecordedAt.After(time.Now().Add(time.Second)) || g.RecordedAt.Location() != time.UTC {
			t.Errorf("record %d: RecordedAt = %v, not the time of the append in UTC", i, g.RecordedAt)
		}
		want := keep[i]
		want.ID, want.RecordedAt = g.ID, g.RecordedAt
		want.Time = want.Time.UTC().Truncate(time.Microsecond)
		if !reflect.DeepEqual(*g, want) {
			t.Errorf("record %d round trip:\n got %+v\nwant %+v", i, *g, want)
		}
	}
	// A second batch comes after the first.
	more, err := s.AppendIncidents(ctx, []*store.IncidentRecord{{Incident: inc, Event: store.IncidentClosed, Time: time.Now()}})
	if err != nil || len(more) != 1 || more[0] <= ids[len(ids)-1] {
		t.Errorf("second AppendIncidents = %v, %v; want one ID above %d", more, err, ids[len(ids)-1])
	}
	if n, err := s.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count = %d, %v: incident records must not count as evidence", n, err)
	}
	if d, err := s.Deployments(ctx, store.DeploymentQuery{}); err != nil || len(d) != 0 {
		t.Errorf("Deployments = %d, %v: incident records must not be deployments", len(d), err)
	}
}

func testIncidentsQuery(t *testing.T, s Store) {
	ctx := context.Background()
	a, b := IncidentID(1), IncidentID(2)
	var batchA, batchB []*store.IncidentRecord
	for n := range 25 {
		batchA = append(batchA, Quarantine(a, n))
	}
	for n := 20; n < 30; n++ { // 20..24 quarantined by both
		batchB = append(batchB, Quarantine(b, n))
	}
	batchB = append(batchB, &store.IncidentRecord{Incident: b, Event: store.IncidentOpened, Time: time.Now()})
	idsA, err := s.AppendIncidents(ctx, batchA)
	if err != nil {
		t.Fatal(err)
	}
	idsB, err := s.AppendIncidents(ctx, batchB)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rs []*store.IncidentRecord) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(incidentRecords(t, s, store.IncidentQuery{Incident: b})); !reflect.DeepEqual(got, idsB) {
		t.Errorf("incident %s = %v, want %v", b, got, idsB)
	}
	art := "sha256:" + Digest("22")
	if got := ids(incidentRecords(t, s, store.IncidentQuery{Artifact: art, Event: store.IncidentQuarantined})); !reflect.DeepEqual(got, []int64{idsA[22], idsB[2]}) {
		t.Errorf("artifact %s quarantined = %v, want %v", art, got, []int64{idsA[22], idsB[2]})
	}
	if got := incidentRecords(t, s, store.IncidentQuery{Artifact: art, Event: store.IncidentQuarantined, Limit: 1}); len(got) != 1 || got[0].Incident != a {
		t.Errorf("first quarantine of %s = %+v, want incident %s's", art, got, a)
	}
	if got := incidentRecords(t, s, store.IncidentQuery{Artifact: art, Event: store.IncidentOpened}); len(got) != 0 {
		t.Errorf("artifact with event opened = %d records, want none", len(got))
	}
	if got := ids(incidentRecords(t, s, store.IncidentQuery{Event: store.IncidentOpened})); !reflect.DeepEqual(got, idsB[10:]) {
		t.Errorf("opened records = %v, want %v", got, idsB[10:])
	}
	if got := incidentRecords(t, s, store.IncidentQuery{Artifact: "sha256:" + Digest("none")}); len(got) != 0 {
		t.Errorf("unknown artifact = %d records, want none", len(got))
	}
	// Paging through incident a, 7 at a time.
	var paged []int64
	after := int64(0)
	for {
		page := incidentRecords(t, s, store.IncidentQuery{Incident: a, AfterID: after, Limit: 7})
		if len(page) > 7 {
			t.Fatalf("page of %d records, limit 7", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, ids(page)...)
		after = page[len(page)-1].ID
	}
	if !reflect.DeepEqual(paged, idsA) {
		t.Errorf("paged = %v, want %v", paged, idsA)
	}
	if got := incidentRecords(t, s, store.IncidentQuery{}); len(got) != 36 {
		t.Errorf("Incidents(all) = %d records, want 36 (default limit %d)", len(got), store.DefaultLimit)
	}
	if got := incidentRecords(t, s, store.IncidentQuery{Limit: store.MaxLimit + 1}); len(got) != 36 {
		t.Errorf("Incidents(limit over max) = %d records, want 36", len(got))
	}
	for _, q := range []store.IncidentQuery{
		{Limit: -1}, {AfterID: -1}, {Incident: "INC-1"}, {Artifact: "sha256:ABC"}, {Event: "exploded"},
	} {
		if _, err := s.Incidents(ctx, q); !errors.Is(err, store.ErrInvalidQuery) {
			t.Errorf("Incidents(%+v) = %v, want ErrInvalidQuery", q, err)
		}
	}
}

func testIncidentsLargeBatch(t *testing.T, s Store) {
	ctx := context.Background()
	inc := IncidentID(3)
	batch := make([]*store.IncidentRecord, store.MaxIncidentBatch)
	for n := range batch {
		batch[n] = Quarantine(inc, n)
	}
	ids, err := s.AppendIncidents(ctx, batch)
	if err != nil || len(ids) != len(batch) {
		t.Fatalf("AppendIncidents(%d) = %d IDs, %v", len(batch), len(ids), err)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("IDs not increasing at %d: %d after %d", i, ids[i], ids[i-1])
		}
	}
	// Each ID names its own record.
	for _, n := range []int{0, 499, 500, 501, 7777, store.MaxIncidentBatch - 1} {
		art := batch[n].Artifact
		got := incidentRecords(t, s, store.IncidentQuery{Artifact: art})
		if len(got) != 1 || got[0].ID != ids[n] {
			t.Errorf("record %d (%s): %+v, want ID %d", n, art, got, ids[n])
		}
	}
	over := append(batch, Quarantine(inc, store.MaxIncidentBatch))
	if _, err := s.AppendIncidents(ctx, over); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AppendIncidents(%d records) = %v, want ErrInvalid", len(over), err)
	}
}

func testIncidentsInvalid(t *testing.T, s Store) {
	ctx := context.Background()
	inc := IncidentID(4)
	tests := []struct {
		name string
		edit func(r *store.IncidentRecord)
	}{
		{"incident", func(r *store.IncidentRecord) { r.Incident = "INC-1" }},
		{"event", func(r *store.IncidentRecord) { r.Event = "exploded" }},
		{"artifact", func(r *store.IncidentRecord) { r.Artifact = "sha256:ABC" }},
		{"artifact on opened", func(r *store.IncidentRecord) { r.Event = store.IncidentOpened }},
		{"report on quarantined", func(r *store.IncidentRecord) { r.Report = json.RawMessage(`{}`) }},
		{"reported without report", func(r *store.IncidentRecord) { r.Event, r.Artifact = store.IncidentReported, "" }},
		{"report not JSON", func(r *store.IncidentRecord) {
			r.Event, r.Artifact, r.Report = store.IncidentReported, "", json.RawMessage(`{"x"`)
		}},
		{"time", func(r *store.IncidentRecord) { r.Time = time.Time{} }},
		{"detail", func(r *store.IncidentRecord) { r.Detail = strings.Repeat("x", store.MaxFieldLen+1) }},
		{"actor NUL", func(r *store.IncidentRecord) { r.Actor = "a\x00b" }},
		{"recorded by UTF-8", func(r *store.IncidentRecord) { r.RecordedBy = "\xff" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := Quarantine(inc, 99)
			tt.edit(bad)
			// The bad record in the middle of a batch rejects the batch.
			batch := []*store.IncidentRecord{Quarantine(inc, 1), bad, Quarantine(inc, 2)}
			if _, err := s.AppendIncidents(ctx, batch); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AppendIncidents = %v, want ErrInvalid", err)
			}
			if _, err := s.AppendIncidents(ctx, []*store.IncidentRecord{bad}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AppendIncidents(one) = %v, want ErrInvalid", err)
			}
		})
	}
	for _, batch := range [][]*store.IncidentRecord{nil, {}, {nil}, {Quarantine(inc, 1), nil}} {
		if _, err := s.AppendIncidents(ctx, batch); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AppendIncidents(%v) = %v, want ErrInvalid", batch, err)
		}
	}
	if got := incidentRecords(t, s, store.IncidentQuery{}); len(got) != 0 {
		t.Errorf("Incidents after invalid appends = %d records; want none", len(got))
	}
}

func testIncidentsCanceled(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AppendIncidents(ctx, []*store.IncidentRecord{Quarantine(IncidentID(5), 1)}); err == nil {
		t.Errorf("AppendIncidents with a canceled context succeeded")
	}
	if got := incidentRecords(t, s, store.IncidentQuery{}); len(got) != 0 {
		t.Errorf("Incidents = %d records after a canceled append; want none", len(got))
	}
}

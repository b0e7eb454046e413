// Package ledgertest is the conformance suite every incident.Ledger backend
// (incident.FileLedger, incident.ServerLedger on each index backend) must
// pass. A backend's test calls [Run] with a function that opens a new,
// empty ledger.
package ledgertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// Run runs the suite; open returns a new, empty ledger each time.
func Run(t *testing.T, open func(t *testing.T) incident.Ledger) {
	for _, tt := range []struct {
		name string
		f    func(t *testing.T, l incident.Ledger)
	}{
		{"RoundTrip", testRoundTrip},
		{"Batch", testBatch},
		{"Filters", testFilters},
		{"Paging", testPaging},
		{"InvalidRecords", testInvalidRecords},
		{"InvalidQuery", testInvalidQuery},
		{"Canceled", testCanceled},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, open(t)) })
	}
}

func list(t *testing.T, l incident.Ledger, q store.IncidentQuery) []*store.IncidentRecord {
	t.Helper()
	rs, err := l.List(context.Background(), q)
	if err != nil {
		t.Fatalf("List(%+v): %v", q, err)
	}
	return rs
}

// stored returns r as a ledger stores it (time in UTC, microseconds).
func stored(r *store.IncidentRecord) *store.IncidentRecord {
	n := *r
	n.Time = n.Time.UTC().Truncate(time.Microsecond)
	return &n
}

// same reports whether got holds want's fields (ID, RecordedAt and
// RecordedBy are the backend's).
func same(got, want *store.IncidentRecord) bool {
	g, w := *got, *want
	if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC || !bytes.Equal(g.Report, w.Report) {
		return false
	}
	g.ID, g.RecordedAt, g.RecordedBy, g.Time, g.Report = 0, time.Time{}, "", time.Time{}, nil
	w.ID, w.RecordedAt, w.RecordedBy, w.Time, w.Report = 0, time.Time{}, "", time.Time{}, nil
	return reflect.DeepEqual(g, w)
}

// incidentBatch returns the records of one incident: opened, n artifacts
// quarantined, a report.
func incidentBatch(inc string, n int) []*store.IncidentRecord {
	t := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rs := []*store.IncidentRecord{{Incident: inc, Event: store.IncidentOpened, Actor: "alice", Time: t, Detail: "key leaked"}}
	for i := range n {
		rs = append(rs, storetest.Quarantine(inc, i))
	}
	return append(rs, &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Actor: "alice", Time: t,
		Report: json.RawMessage(`{"incident":"` + inc + `","quarantined":` + strconv.Itoa(n) + `}`)})
}

func testRoundTrip(t *testing.T, l incident.Ledger) {
	in := storetest.Quarantine(storetest.IncidentID(1), 1)
	in.ID = 99
	copyIn := *in
	before := time.Now().Add(-time.Minute)
	got, err := l.Append(context.Background(), in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if !reflect.DeepEqual(*in, copyIn) {
		t.Error("Append modified its argument")
	}
	if got.ID <= 0 || got.ID == 99 {
		t.Errorf("Append returned ID %d, want one the ledger assigned", got.ID)
	}
	if !same(got, stored(in)) {
		t.Errorf("Append returned %+v, want %+v as stored", got, stored(in))
	}
	rs := list(t, l, store.IncidentQuery{})
	if len(rs) != 1 || !same(rs[0], stored(in)) || rs[0].ID != got.ID {
		t.Fatalf("List = %+v, want the appended record with ID %d", rs, got.ID)
	}
	if rs[0].RecordedAt.Before(before) || rs[0].RecordedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("RecordedAt = %v, want about now", rs[0].RecordedAt)
	}
}

// testBatch: AppendAll stores a batch in order with increasing IDs; an
// empty batch appends nothing.
func testBatch(t *testing.T, l incident.Ledger) {
	ctx := context.Background()
	if got, err := l.AppendAll(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("AppendAll of no records = %v, %v; want nothing, no error", got, err)
	}
	batch := incidentBatch(storetest.IncidentID(2), 3)
	got, err := l.AppendAll(ctx, batch)
	if err != nil {
		t.Fatalf("AppendAll: %v", err)
	}
	rs := list(t, l, store.IncidentQuery{})
	if len(got) != len(batch) || len(rs) != len(batch) {
		t.Fatalf("AppendAll returned %d records and List %d, want %d", len(got), len(rs), len(batch))
	}
	for i := range batch {
		if !same(got[i], stored(batch[i])) || !same(rs[i], stored(batch[i])) || got[i].ID != rs[i].ID {
			t.Errorf("record %d: returned %+v, listed %+v, want %+v", i, got[i], rs[i], stored(batch[i]))
		}
		if i > 0 && rs[i].ID <= rs[i-1].ID {
			t.Errorf("IDs do not increase: %d after %d", rs[i].ID, rs[i-1].ID)
		}
	}
}

// testFilters: List selects by incident, artifact and event.
func testFilters(t *testing.T, l incident.Ledger) {
	ctx := context.Background()
	a, b := storetest.IncidentID(3), storetest.IncidentID(4)
	for _, batch := range [][]*store.IncidentRecord{incidentBatch(a, 2), incidentBatch(b, 3)} {
		if _, err := l.AppendAll(ctx, batch); err != nil {
			t.Fatalf("AppendAll: %v", err)
		}
	}
	art := storetest.Quarantine(b, 2).Artifact // quarantined by b only
	for _, tc := range []struct {
		q    store.IncidentQuery
		want int
	}{
		{store.IncidentQuery{}, 9},
		{store.IncidentQuery{Incident: a}, 4},
		{store.IncidentQuery{Incident: b}, 5},
		{store.IncidentQuery{Event: store.IncidentQuarantined}, 5},
		{store.IncidentQuery{Incident: b, Event: store.IncidentReported}, 1},
		{store.IncidentQuery{Artifact: art}, 1},
		{store.IncidentQuery{Artifact: art, Incident: a}, 0},
		{store.IncidentQuery{Incident: storetest.IncidentID(5)}, 0},
	} {
		rs := list(t, l, tc.q)
		if len(rs) != tc.want {
			t.Errorf("List(%+v) = %d records, want %d", tc.q, len(rs), tc.want)
		}
		for _, r := range rs {
			if (tc.q.Incident != "" && r.Incident != tc.q.Incident) || (tc.q.Event != "" && r.Event != tc.q.Event) ||
				(tc.q.Artifact != "" && r.Artifact != tc.q.Artifact) {
				t.Errorf("List(%+v) returned %+v", tc.q, r)
			}
		}
	}
}

// testPaging: Limit and AfterID page through the records in order.
func testPaging(t *testing.T, l incident.Ledger) {
	ctx := context.Background()
	if _, err := l.AppendAll(ctx, incidentBatch(storetest.IncidentID(6), 5)); err != nil {
		t.Fatalf("AppendAll: %v", err)
	}
	all := list(t, l, store.IncidentQuery{})
	var paged []*store.IncidentRecord
	q := store.IncidentQuery{Limit: 3}
	for {
		page := list(t, l, q)
		if len(page) > q.Limit {
			t.Fatalf("page of %d records, limit %d", len(page), q.Limit)
		}
		paged = append(paged, page...)
		if len(page) < q.Limit {
			break
		}
		q.AfterID = page[len(page)-1].ID
	}
	if len(paged) != len(all) {
		t.Fatalf("paging returned %d records, List %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].ID != all[i].ID {
			t.Errorf("paged record %d has ID %d, want %d", i, paged[i].ID, all[i].ID)
		}
	}
}

// testInvalidRecords: a malformed record is refused with store.ErrInvalid;
// a batch with one is refused whole; nothing is appended.
func testInvalidRecords(t *testing.T, l incident.Ledger) {
	ctx := context.Background()
	bad := map[string]func(r *store.IncidentRecord){
		"incident": func(r *store.IncidentRecord) { r.Incident = "INC-1" },
		"event":    func(r *store.IncidentRecord) { r.Event = "forgotten" },
		"artifact": func(r *store.IncidentRecord) { r.Artifact = "sha256:XYZ" },
		"time":     func(r *store.IncidentRecord) { r.Time = time.Time{} },
		"actor":    func(r *store.IncidentRecord) { r.Actor = "a\x00b" },
	}
	for name, spoil := range bad {
		r := storetest.Quarantine(storetest.IncidentID(7), 1)
		spoil(r)
		if _, err := l.Append(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Append with a bad %s: %v, want store.ErrInvalid", name, err)
		}
		batch := incidentBatch(storetest.IncidentID(7), 2)
		batch[2] = r
		if _, err := l.AppendAll(ctx, batch); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AppendAll with a bad %s: %v, want store.ErrInvalid", name, err)
		}
	}
	if rs := list(t, l, store.IncidentQuery{}); len(rs) != 0 {
		t.Errorf("refused records were appended: %+v", rs)
	}
}

// testInvalidQuery: a negative limit or after ID is refused with
// store.ErrInvalidQuery, as the index refuses it.
func testInvalidQuery(t *testing.T, l incident.Ledger) {
	for _, q := range []store.IncidentQuery{{Limit: -1}, {AfterID: -1}} {
		if _, err := l.List(context.Background(), q); !errors.Is(err, store.ErrInvalidQuery) {
			t.Errorf("List(%+v): %v, want store.ErrInvalidQuery", q, err)
		}
	}
}

// testCanceled: an append with a canceled context fails and appends
// nothing.
func testCanceled(t *testing.T, l incident.Ledger) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, storetest.Quarantine(storetest.IncidentID(8), 1)); err == nil {
		t.Error("Append with a canceled context succeeded")
	}
	if _, err := l.AppendAll(ctx, incidentBatch(storetest.IncidentID(8), 1)); err == nil {
		t.Error("AppendAll with a canceled context succeeded")
	}
	if rs := list(t, l, store.IncidentQuery{}); len(rs) != 0 {
		t.Errorf("a canceled append was stored: %+v", rs)
	}
}

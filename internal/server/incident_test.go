package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

func TestIncidents(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	adm := newClient(t, ts, api.RoleAdmin)
	aud := newClient(t, ts, api.RoleAuditor)
	inc := storetest.IncidentID(1)
	opened := &store.IncidentRecord{Incident: inc, Event: store.IncidentOpened, Actor: "alice", Time: time.Now(),
		Detail: "key K compromised", RecordedBy: "forged"}
	id, err := adm.AppendIncident(ctx, opened)
	if err != nil {
		t.Fatalf("AppendIncident: %v", err)
	}
	// 5,000 quarantines are more than one request body holds: the client
	// sends several batches, the server writes several audit entries each.
	var batch []*store.IncidentRecord
	for n := range 5000 {
		batch = append(batch, storetest.Quarantine(inc, n))
	}
	ids, err := adm.AppendIncidents(ctx, batch)
	if err != nil || len(ids) != len(batch) {
		t.Fatalf("AppendIncidents = %d IDs, %v; want %d", len(ids), err, len(batch))
	}
	if ids[0] <= id {
		t.Errorf("batch IDs start at %d, after the single record's %d", ids[0], id)
	}
	got, err := aud.Incidents(ctx, store.IncidentQuery{Incident: inc})
	if err != nil || len(got) != 1+len(batch) {
		t.Fatalf("Incidents = %d, %v; want %d", len(got), err, 1+len(batch))
	}
	if got[0].ID != id || got[0].RecordedBy != "admin:test admin" || got[0].Actor != "alice" {
		t.Errorf("opened record = %+v; want id %d recorded by the admin token", got[0], id)
	}
	for i, r := range got[1:] {
		if r.ID != ids[i] || r.Artifact != batch[i].Artifact || r.RecordedBy != "admin:test admin" {
			t.Fatalf("record %d = %+v; want id %d, artifact %s", i, r, ids[i], batch[i].Artifact)
		}
	}
	art := batch[4321].Artifact
	if q, err := aud.Incidents(ctx, store.IncidentQuery{Artifact: art, Event: store.IncidentQuarantined, Limit: 1}); err != nil || len(q) != 1 || q[0].Incident != inc {
		t.Errorf("quarantine of %s = %+v, %v", art, q, err)
	}
	if q, err := aud.Incidents(ctx, store.IncidentQuery{Event: store.IncidentOpened}); err != nil || len(q) != 1 {
		t.Errorf("opened records = %d, %v; want 1", len(q), err)
	}

	// The audit trail: one entry for the opening, several for the
	// quarantines, each quarantined artifact a subject of one of them.
	audits, err := aud.Search(ctx, api.Query{PredicateType: api.PredicateAudit, Limit: api.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	subjects := map[string]int{}
	for _, e := range audits {
		st, err := attest.ParseStatement(dssePayload(t, e.Bundle))
		if err != nil {
			t.Fatal(err)
		}
		var p api.AuditPredicate
		if err := json.Unmarshal(st.Predicate, &p); err != nil || p.Token != "admin:test admin" || p.Actor != "alice" {
			t.Errorf("audit predicate = %+v, %v", p, err)
		}
		actions[p.Action]++
		if p.Action == "incident.quarantined" {
			// Compact: the shared fields once, then the artifacts, which
			// are the entry's subjects in order.
			var groups []struct {
				Incident   string    `json:"incident"`
				Event      string    `json:"event"`
				Actor      string    `json:"actor"`
				Time       time.Time `json:"time"`
				Detail     string    `json:"detail"`
				RecordedBy string    `json:"recordedBy"`
				Artifacts  []string  `json:"artifacts"`
			}
			if err := json.Unmarshal(p.Detail, &groups); err != nil {
				t.Fatalf("quarantine audit detail: %v: %s", err, p.Detail)
			}
			var arts []string
			for _, g := range groups {
				if g.Incident != inc || g.Event != store.IncidentQuarantined || g.Actor != "alice" || g.Time.IsZero() ||
					g.Detail == "" || g.RecordedBy != "admin:test admin" || len(g.Artifacts) == 0 {
					t.Errorf("quarantine audit detail group = %+v", g)
				}
				arts = append(arts, g.Artifacts...)
			}
			if len(arts) != len(st.Subject) {
				t.Errorf("quarantine audit detail: %d artifacts for %d subjects", len(arts), len(st.Subject))
			}
			for i, s := range st.Subject {
				if i < len(arts) && arts[i] != "sha256:"+s.Digest["sha256"] {
					t.Errorf("quarantine audit detail: artifact %d is %s, subject %s", i, arts[i], s.Digest["sha256"])
				}
			}
			for _, s := range st.Subject {
				subjects["sha256:"+s.Digest["sha256"]]++
			}
		}
	}
	// Two requests of the client, one audit entry each.
	if actions["incident.opened"] != 1 || actions["incident.quarantined"] != 2 {
		t.Errorf("audit actions = %v; want 1 opened and 2 quarantined entries", actions)
	}
	for _, r := range batch {
		if subjects[r.Artifact] != 1 {
			t.Fatalf("artifact %s is the subject of %d quarantine audit entries, want 1", r.Artifact, subjects[r.Artifact])
		}
	}
	if found, err := aud.Search(ctx, api.Query{Digest: art, PredicateType: api.PredicateAudit}); err != nil || len(found) != 1 {
		t.Errorf("audit entries found by the artifact's digest = %d, %v; want 1", len(found), err)
	}

	// A report's audit entry carries its digest, not the report.
	rep := &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Actor: "alice", Time: time.Now(),
		Report: json.RawMessage(`{"id":"` + inc + `","secret":"` + strings.Repeat("r", 1000) + `"}`)}
	if _, err := adm.AppendIncident(ctx, rep); err != nil {
		t.Fatalf("AppendIncident(report): %v", err)
	}
	reported, err := aud.Incidents(ctx, store.IncidentQuery{Incident: inc, Event: store.IncidentReported})
	if err != nil || len(reported) != 1 || string(reported[0].Report) != string(rep.Report) {
		t.Errorf("reported = %+v, %v", reported, err)
	}

	// Refusals leave nothing behind.
	before, _ := aud.Incidents(ctx, store.IncidentQuery{})
	var apiErr *client.APIError
	if _, err := aud.AppendIncident(ctx, opened); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("auditor AppendIncident = %v, want 403", err)
	}
	if _, err := newClient(t, ts, api.RoleDeployer).AppendIncidents(ctx, batch[:2]); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("deployer AppendIncidents = %v, want 403", err)
	}
	bad := []*store.IncidentRecord{storetest.Quarantine(inc, 1), {Incident: inc, Event: "exploded", Time: time.Now()}}
	if _, err := adm.AppendIncidents(ctx, bad); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(apiErr.Message, "record 1") {
		t.Errorf("malformed batch = %v, want 400 naming record 1", err)
	}
	tok := ts.tokens[api.RoleAdmin]
	for _, body := range []string{
		``, `[]`, `{"records": []}`, `{"records": [{}]}`, `{"records": [], "extra": 1}`, `{"incident": "` + inc + `", "event": "opened"}`,
		`{"incident": "` + inc + `", "event": "opened", "time": "2026-01-01T00:00:00Z", "bogus": 1}`,
	} {
		if a := do(t, ts, http.MethodPost, "/api/v1/incidents", tok, []byte(body)); a.status != http.StatusBadRequest {
			t.Errorf("POST %q = %d %s, want 400", body, a.status, a.body)
		}
	}
	if a := do(t, ts, http.MethodPost, "/api/v1/incidents", "", []byte(`{}`)); a.status != http.StatusUnauthorized {
		t.Errorf("POST without token = %d, want 401", a.status)
	}
	for _, q := range []string{"limit=-1", "after=x", "artifact=sha256:ABC", "event=exploded", "incident=INC-1"} {
		if a := do(t, ts, http.MethodGet, "/api/v1/incidents?"+q, ts.tokens[api.RoleAuditor], nil); a.status != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d, want 400", q, a.status)
		}
	}
	if a := do(t, ts, http.MethodGet, "/api/v1/incidents", "", nil); a.status != http.StatusUnauthorized {
		t.Errorf("GET without token = %d, want 401", a.status)
	}
	after, _ := aud.Incidents(ctx, store.IncidentQuery{})
	if len(after) != len(before) {
		t.Errorf("refused requests stored %d records", len(after)-len(before))
	}
}

// TestIncidentBatchCap: more than 10,000 records in one request are
// refused even when the body cap would take them.
func TestIncidentBatchCap(t *testing.T) {
	ts := start(t, server.Config{MaxBody: 16 << 20})
	inc := storetest.IncidentID(2)
	var recs []string
	for n := range store.MaxIncidentBatch + 1 {
		b, _ := json.Marshal(storetest.Quarantine(inc, n))
		recs = append(recs, string(b))
	}
	body := fmt.Sprintf(`{"records": [%s]}`, strings.Join(recs, ","))
	a := do(t, ts, http.MethodPost, "/api/v1/incidents", ts.tokens[api.RoleAdmin], []byte(body))
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "limit of 10000") {
		t.Errorf("POST of %d records = %d %s, want 400", len(recs), a.status, a.body)
	}
	if got, err := ts.Index().Incidents(context.Background(), store.IncidentQuery{}); err != nil || len(got) != 0 {
		t.Errorf("Incidents = %d, %v; want none", len(got), err)
	}
}

// TestIncidentAuditFails: when the audit entry cannot be written (here
// the signing journal is not a directory), the request is refused and
// nothing is stored.
func TestIncidentAuditFails(t *testing.T) {
	ts := start(t, server.Config{})
	adm := newClient(t, ts, api.RoleAdmin)
	journal := filepath.Join(ts.dir, "journal")
	if err := os.RemoveAll(journal); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	inc := storetest.IncidentID(3)
	if _, err := adm.AppendIncidents(context.Background(), []*store.IncidentRecord{storetest.Quarantine(inc, 1), storetest.Quarantine(inc, 2)}); err == nil {
		t.Fatalf("AppendIncidents succeeded without its audit entry")
	}
	if got, err := ts.Index().Incidents(context.Background(), store.IncidentQuery{}); err != nil || len(got) != 0 {
		t.Errorf("Incidents = %d, %v; want none", len(got), err)
	}
}

// TestIncidentLargeAudit: with a large body cap, 10,000 quarantines with
// long details are more than one audit entry carries; they are audited in
// several entries, every artifact a subject of exactly one.
func TestIncidentLargeAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("signs and indexes several MiB")
	}
	ts := start(t, server.Config{MaxBody: 16 << 20})
	ctx := context.Background()
	inc := storetest.IncidentID(4)
	var batch []*store.IncidentRecord
	for n := range store.MaxIncidentBatch {
		r := storetest.Quarantine(inc, n)
		r.Detail = strings.Repeat("d", 500)
		batch = append(batch, r)
	}
	b, _ := json.Marshal(struct {
		Records []*store.IncidentRecord `json:"records"`
	}{batch})
	a := do(t, ts, http.MethodPost, "/api/v1/incidents", ts.tokens[api.RoleAdmin], b)
	if a.status != http.StatusCreated {
		t.Fatalf("POST of %d records (%d bytes) = %d %s", len(batch), len(b), a.status, a.body)
	}
	audits, err := ts.Index().Search(ctx, store.Query{PredicateType: api.PredicateAudit})
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int{}
	for _, e := range audits {
		for _, s := range e.Subjects {
			subjects["sha256:"+s.Digests["sha256"]]++
		}
	}
	if len(audits) < 2 {
		t.Errorf("%d audit entries for %d bytes of records, want several", len(audits), len(b))
	}
	for _, r := range batch {
		if subjects[r.Artifact] != 1 {
			t.Fatalf("artifact %s is the subject of %d audit entries, want 1", r.Artifact, subjects[r.Artifact])
		}
	}
	if got, err := ts.Index().Incidents(ctx, store.IncidentQuery{Incident: inc, Limit: store.MaxLimit}); err != nil || len(got) != store.MaxLimit {
		t.Errorf("Incidents = %d, %v", len(got), err)
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/store"
)

// auditIncidentRecord is an incident record as its audit entry carries it:
// the record as received, except that a report is replaced by its SHA-256
// (the report itself is in the index; a report may be larger than a log
// entry may be).
type auditIncidentRecord struct {
	store.IncidentRecord
	Report       json.RawMessage `json:"report,omitempty"`
	ReportSHA256 string          `json:"reportSha256,omitempty"`
}

// auditQuarantine is the audit detail of quarantine records that share
// everything but the artifact (the records of one incident open): the
// shared fields once, then the quarantined artifacts in request order. An
// "incident.quarantined" entry's detail is a list of these; other incident
// entries list auditIncidentRecords.
type auditQuarantine struct {
	Incident   string    `json:"incident"`
	Event      string    `json:"event"`
	Actor      string    `json:"actor,omitempty"`
	Time       time.Time `json:"time"`
	Detail     string    `json:"detail,omitempty"`
	RecordedBy string    `json:"recordedBy,omitempty"`
	Artifacts  []string  `json:"artifacts"`
}

// sameQuarantine reports whether n shares q's fields.
func (q *auditQuarantine) sameQuarantine(n *store.IncidentRecord) bool {
	return q.Incident == n.Incident && q.Event == n.Event && q.Actor == n.Actor && q.Time.Equal(n.Time) &&
		q.Time.Location() == n.Time.Location() && q.Detail == n.Detail && q.RecordedBy == n.RecordedBy
}

// auditParallel bounds how many audit entries of one request are written at
// once; entries written together share a checkpoint.
const auditParallel = 8

// serveAppendIncidents appends incident records: one store.IncidentRecord
// (answered {"id": N}) or a batch {"records": [...]} of at most
// store.MaxIncidentBatch (answered {"ids": [...]}, in order), all stored or
// none. RecordedBy is set from the token; id and recordedAt are the
// store's.
//
// Audit: before anything is appended, the records are written as audit
// entries (action "incident."+event), grouped by event in request order.
// The subjects of a quarantine entry are the quarantined artifacts (named by
// the incident ID), so searching the index by an artifact's digest finds the
// entry that quarantined it; other events have the default subject (the
// SHA-256 of the detail). The log entry of an audit statement is a
// hashedrekord of its signature (constant size), so the log's entry limit
// does not bound it; the statement limits do (attest.MaxStatementBytes,
// store.MaxBundleSize, store.MaxDigests subjects). One entry carries at
// most auditMaxDetail bytes of records, well inside them: with the default
// 1 MiB body cap a request is always one entry; a server with a larger cap
// writes a large batch as several entries, concurrently. Any entry that
// fails refuses the request and nothing is appended now; entries already
// written stay in the log, and the next start appends their records (see
// Crash safety in the package documentation).
func (s *Server) serveAppendIncidents(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	recs, single, err := parseIncidentRequest(body)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	tok := tokenFrom(r)
	by := string(tok.Role)
	if tok.Name != "" {
		by += ":" + tok.Name
	}
	for _, rec := range recs {
		if rec != nil {
			rec.RecordedBy = by
		}
	}
	ns, err := store.CheckIncidentBatch(recs)
	if err == nil {
		err = checkIncidentTimes(ns, time.Now())
	}
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	events, err := incidentAuditEvents(ns, auditMaxDetail)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	// The audit entries carry reports by their SHA-256: a restart that
	// appends the records of logged entries reads the reports from there.
	// A request that fails keeps them for that restart (which removes
	// them).
	unstash, err := s.stashReports(r.Context(), ns)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	if err := s.auditAll(r.Context(), r, events); err != nil {
		s.failAudit(w, err)
		return
	}
	crashpoint.Reach(crashpoint.IncidentAudited)
	ids, err := s.index.AppendIncidents(r.Context(), ns)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	unstash()
	crashpoint.Reach(crashpoint.RecordAppended)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	if single {
		json.NewEncoder(w).Encode(api.IDAnswer{ID: ids[0]})
		return
	}
	json.NewEncoder(w).Encode(api.IDsAnswer{IDs: ids})
}

// parseIncidentRequest reads one record or a batch; single reports which.
func parseIncidentRequest(body []byte) (recs []*store.IncidentRecord, single bool, err error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, false, errors.New(`request is not an incident record or {"records": [...]} (JSON object)`)
	}
	_, batch := keys["records"]
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if batch {
		var b api.IncidentBatch
		if err := dec.Decode(&b); err != nil || dec.More() {
			return nil, false, errors.New(`request is not {"records": [incident records]}`)
		}
		if len(b.Records) > store.MaxIncidentBatch {
			return nil, false, fmt.Errorf("%d incident records, more than the limit of %d in one request", len(b.Records), store.MaxIncidentBatch)
		}
		return b.Records, false, nil
	}
	var rec store.IncidentRecord
	if err := dec.Decode(&rec); err != nil || dec.More() {
		return nil, false, errors.New("request is not one incident record (JSON object)")
	}
	return []*store.IncidentRecord{&rec}, true, nil
}

// auditMaxDetail is the most statement bytes of incident records (detail
// and subjects) one audit entry carries: a quarter of
// attest.MaxStatementBytes, so that the bundle (base64, about 4/3) stays
// far below store.MaxBundleSize and readers of the audit trail never meet
// a huge entry.
const auditMaxDetail = attest.MaxStatementBytes / 4

// incidentAuditEvents groups normalised records into audit events: runs of
// one event, each cut where the next record would take it over budget
// bytes. Quarantine records are written compactly (auditQuarantine): a
// run of records differing only in their artifact costs one header and
// then the artifact and its subject per record.
func incidentAuditEvents(ns []*store.IncidentRecord, budget int) ([]auditEvent, error) {
	var (
		out      []auditEvent
		recs     []auditIncidentRecord
		groups   []*auditQuarantine
		subjects []attest.Subject
		size     int
		event    string
		actor    string
	)
	flush := func() {
		switch {
		case len(recs) > 0:
			out = append(out, auditEvent{action: "incident." + event, actor: actor, subjects: subjects, detail: recs})
		case len(groups) > 0:
			out = append(out, auditEvent{action: "incident." + event, actor: actor, subjects: subjects, detail: groups})
		}
		recs, groups, subjects, size = nil, nil, nil, 0
	}
	for _, n := range ns {
		if n.Event == store.IncidentQuarantined {
			sub, err := auditSubject(n.Incident, n.Artifact)
			if err != nil {
				return nil, err
			}
			cost := len(n.Artifact) + 3 + len(n.Incident) + 96
			if n.Event != event || n.Actor != actor || size+cost > budget {
				flush()
			}
			event, actor = n.Event, n.Actor
			if len(groups) == 0 || !groups[len(groups)-1].sameQuarantine(n) {
				g := &auditQuarantine{Incident: n.Incident, Event: n.Event, Actor: n.Actor, Time: n.Time, Detail: n.Detail, RecordedBy: n.RecordedBy}
				h, err := json.Marshal(g)
				if err != nil {
					return nil, fmt.Errorf("couldn't encode audit detail: %w", err)
				}
				if size > 0 && size+len(h)+1+cost > budget {
					flush()
				}
				groups = append(groups, g)
				size += len(h) + 1
			}
			g := groups[len(groups)-1]
			g.Artifacts = append(g.Artifacts, n.Artifact)
			subjects = append(subjects, sub)
			size += cost
			continue
		}
		a := auditIncidentRecord{IncidentRecord: *n}
		a.IncidentRecord.Report = nil
		if len(n.Report) > 0 {
			sum := sha256.Sum256(n.Report)
			a.ReportSHA256 = hex.EncodeToString(sum[:])
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("couldn't encode audit detail: %w", err)
		}
		cost := len(b) + 1
		if n.Event != event || n.Actor != actor || size+cost > budget {
			flush()
		}
		event, actor = n.Event, n.Actor
		recs = append(recs, a)
		size += cost
	}
	flush()
	return out, nil
}

// auditAll writes the audit entries concurrently (at most auditParallel at
// once) and returns the first error.
func (s *Server) auditAll(ctx context.Context, r *http.Request, events []auditEvent) error {
	if len(events) == 1 {
		_, err := s.audit(ctx, r, events[0])
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, auditParallel)
	)
	for _, e := range events {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := s.audit(ctx, r, e); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// serveIncidents lists incident records: incident, artifact, event, after
// and limit as in store.IncidentQuery.
func (s *Server) serveIncidents(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := store.IncidentQuery{Incident: v.Get("incident"), Artifact: v.Get("artifact"), Event: v.Get("event")}
	serveRecordPage(s, w, r, "incident records", &q.AfterID, &q.Limit,
		func(ctx context.Context) ([]*store.IncidentRecord, error) { return s.index.Incidents(ctx, q) },
		func(list []*store.IncidentRecord) any { return api.IncidentPage{Records: list} })
}

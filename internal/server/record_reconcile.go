package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
)

// recordMarkFile (DIR/records.reconciled, recordMark JSON) records how far
// reconcileRecords read the audit entries and the records, so that a start
// reads only what was written since the previous one. Without it (or when
// it is unreadable) every audit entry and record is read once.
const recordMarkFile = "records.reconciled"

type recordMark struct {
	// AuditID is the ID of the last audit entry read.
	AuditID int64 `json:"auditId"`
	// DeploymentID and IncidentID are the last record IDs when the mark
	// was written: every record of an audit entry after AuditID is after
	// them, since a write appends its audit entry first.
	DeploymentID int64 `json:"deploymentId"`
	IncidentID   int64 `json:"incidentId"`
}

// reportsDir (DIR/journal/reports) holds the incident reports of requests
// in flight, one file REPORT-SHA256-NONCE each. An incident's audit entry
// carries a report's SHA-256, not the report, so the report is written
// here before the entry and removed once the records are appended: a
// restart that appends the records of a logged entry reads it from here.
const reportsDir = "reports"

// reconcileRecords appends the deployment and incident records whose audit
// entry is in the log but which a crash (or a failed append) kept out of
// the index. Only audit entries that verify (auditReader: signed by the
// audit key, proven in the log) are read. A write appends its audit entry
// first, then its records, so what the log records is what happened, and
// the index is brought in line with it. A record is matched to its entry by content (every field but
// ID and recordedAt; reports by SHA-256), counting repeats, so a restart
// appends each missing record once and never a second copy. The records of
// one incident entry are appended together; an incident request written as
// several entries (a server with a large body cap) gets the records of the
// entries that reached the log. Call it after the journal is reconciled.
func (s *Server) reconcileRecords(ctx context.Context) error {
	mark := s.readRecordMark(ctx)
	var (
		deps []*store.Deployment
		incs [][]*loggedIncident
	)
	ar, err := s.newAuditReader(ctx)
	if err != nil {
		return err
	}
	last, err := ar.each(ctx, store.Query{AfterID: mark.AuditID}, func(la *loggedAudit) error {
		id, pred := la.ID, &la.Predicate
		switch {
		case strings.HasPrefix(pred.Action, "deployment."):
			d, err := loggedDeployment(pred)
			if err != nil {
				s.logger.Error("skipping a deployment audit entry that does not hold a record", "id", id, "err", err)
				return nil
			}
			deps = append(deps, d)
		case strings.HasPrefix(pred.Action, "incident."):
			recs, err := loggedIncidentRecords(pred)
			if err != nil {
				s.logger.Error("skipping an incident audit entry that does not hold records", "id", id, "err", err)
				return nil
			}
			incs = append(incs, recs)
		}
		return nil
	})
	if err != nil {
		return err
	}
	next := recordMark{AuditID: last}
	if next.DeploymentID, err = s.appendMissingDeployments(ctx, mark.DeploymentID, deps); err != nil {
		return err
	}
	if next.IncidentID, err = s.appendMissingIncidents(ctx, mark.IncidentID, incs); err != nil {
		return err
	}
	if next != mark {
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := s.state.Put(ctx, recordMarkFile, append(b, '\n')); err != nil {
			return fmt.Errorf("couldn't record record reconciliation: %w", err)
		}
	}
	// Every logged report is appended now; what is left belongs to
	// requests that never reached the log and were never acknowledged.
	// (Replicas append records under the lock "records", which the
	// caller holds, so no request is in flight.)
	stale, _ := s.reportFiles(ctx, "")
	for _, f := range stale {
		s.state.Delete(ctx, f)
	}
	return nil
}

// readRecordMark returns the recorded mark; none, or an unreadable one,
// only costs reading everything.
func (s *Server) readRecordMark(ctx context.Context) recordMark {
	var m recordMark
	b, err := s.state.Get(ctx, recordMarkFile)
	if errors.Is(err, os.ErrNotExist) {
		return m
	}
	if err != nil || json.Unmarshal(b, &m) != nil || m.AuditID < 0 || m.DeploymentID < 0 || m.IncidentID < 0 {
		s.logger.Warn("ignoring unreadable record reconciliation mark; reading every audit entry", "path", recordMarkFile, "err", err)
		return recordMark{}
	}
	return m
}

// appendMissingDeployments appends the records of want that the index
// lacks after afterID, and returns the last deployment ID.
func (s *Server) appendMissingDeployments(ctx context.Context, afterID int64, want []*store.Deployment) (int64, error) {
	have := map[string]int{}
	q := store.DeploymentQuery{AfterID: afterID, Limit: store.MaxLimit}
	for {
		page, err := s.index.Deployments(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("couldn't read deployment records: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			have[deploymentKey(d)]++
		}
		q.AfterID = page[len(page)-1].ID
	}
	for _, d := range want {
		k := deploymentKey(d)
		if have[k] > 0 {
			have[k]--
			continue
		}
		id, err := s.index.AppendDeployment(ctx, d)
		if err != nil {
			return 0, fmt.Errorf("couldn't append the logged deployment of %s: %w", d.Artifact, err)
		}
		s.logger.Warn("deployment record missing after a crash; appended the logged record", "id", id, "environment", d.Environment,
			"event", d.Event, "artifact", d.Artifact)
		q.AfterID = max(q.AfterID, id)
	}
	return q.AfterID, nil
}

// appendMissingIncidents appends the records of each entry of want that the
// index lacks after afterID, and returns the last incident record ID.
func (s *Server) appendMissingIncidents(ctx context.Context, afterID int64, want [][]*loggedIncident) (int64, error) {
	have := map[string]int{}
	q := store.IncidentQuery{AfterID: afterID, Limit: store.MaxLimit}
	for {
		page, err := s.index.Incidents(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("couldn't read incident records: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			have[incidentKey(r, "")]++
		}
		q.AfterID = page[len(page)-1].ID
	}
	for _, recs := range want {
		var missing []*store.IncidentRecord
		for _, r := range recs {
			k := incidentKey(&r.IncidentRecord, r.reportSHA)
			if have[k] > 0 {
				have[k]--
				continue
			}
			if r.reportSHA != "" {
				report, err := s.stashedReport(ctx, r.reportSHA)
				if err != nil {
					s.logger.Error("incident record missing after a crash, and its report is gone; not appended", "incident", r.Incident,
						"report_sha256", r.reportSHA, "err", err)
					continue
				}
				r.Report = report
			}
			missing = append(missing, &r.IncidentRecord)
		}
		if len(missing) == 0 {
			continue
		}
		ids, err := s.index.AppendIncidents(ctx, missing)
		if err != nil {
			return 0, fmt.Errorf("couldn't append the logged records of incident %s: %w", missing[0].Incident, err)
		}
		s.logger.Warn("incident records missing after a crash; appended the logged records", "incident", missing[0].Incident,
			"event", missing[0].Event, "records", len(ids))
		q.AfterID = max(q.AfterID, ids[len(ids)-1])
	}
	return q.AfterID, nil
}

// loggedIncident is an incident record as its audit entry records it: the
// report by its SHA-256.
type loggedIncident struct {
	store.IncidentRecord
	reportSHA string
}

// loggedDeployment reads the record a deployment.* audit entry holds.
func loggedDeployment(pred *api.AuditPredicate) (*store.Deployment, error) {
	var d store.Deployment
	if err := json.Unmarshal(pred.Detail, &d); err != nil {
		return nil, err
	}
	n, err := store.CheckDeployment(&d)
	if err != nil {
		return nil, err
	}
	if pred.Action != "deployment."+n.Event {
		return nil, fmt.Errorf("action %s holds a %s record", pred.Action, n.Event)
	}
	return n, nil
}

// loggedIncidentRecords reads the records an incident.* audit entry holds
// (see incidentAuditEvents).
func loggedIncidentRecords(pred *api.AuditPredicate) ([]*loggedIncident, error) {
	event := strings.TrimPrefix(pred.Action, "incident.")
	var out []*loggedIncident
	if event == store.IncidentQuarantined {
		var groups []auditQuarantine
		if err := json.Unmarshal(pred.Detail, &groups); err != nil {
			return nil, err
		}
		for _, g := range groups {
			for _, a := range g.Artifacts {
				out = append(out, &loggedIncident{IncidentRecord: store.IncidentRecord{Incident: g.Incident, Event: g.Event, Artifact: a,
					Actor: g.Actor, Time: g.Time, Detail: g.Detail, RecordedBy: g.RecordedBy}})
			}
		}
	} else {
		var recs []auditIncidentRecord
		if err := json.Unmarshal(pred.Detail, &recs); err != nil {
			return nil, err
		}
		for _, r := range recs {
			out = append(out, &loggedIncident{IncidentRecord: r.IncidentRecord, reportSHA: r.ReportSHA256})
		}
	}
	for _, r := range out {
		if r.Event != event {
			return nil, fmt.Errorf("action %s holds a %s record", pred.Action, r.Event)
		}
		r.Time = r.Time.UTC().Truncate(time.Microsecond)
	}
	return out, nil
}

// deploymentKey is what matches a deployment record to its audit entry.
func deploymentKey(d *store.Deployment) string {
	n := *d
	n.ID, n.RecordedAt, n.Time = 0, time.Time{}, n.Time.UTC().Truncate(time.Microsecond)
	b, _ := json.Marshal(n)
	return string(b)
}

// incidentKey is what matches an incident record to its audit entry: the
// record without ID and recordedAt, its report by SHA-256 (reportSHA when
// the record holds no report).
func incidentKey(r *store.IncidentRecord, reportSHA string) string {
	n := *r
	if len(n.Report) > 0 {
		sum := sha256.Sum256(n.Report)
		reportSHA = hex.EncodeToString(sum[:])
	}
	n.ID, n.RecordedAt, n.Report, n.Time = 0, time.Time{}, nil, n.Time.UTC().Truncate(time.Microsecond)
	b, _ := json.Marshal(n)
	return string(b) + "\x00" + reportSHA
}

// stashReports writes the reports of recs to DIR/journal/reports before
// their audit entries are written, and returns a function that removes
// them (call it once the records are appended, or the request failed).
func (s *Server) stashReports(ctx context.Context, recs []*store.IncidentRecord) (remove func(), err error) {
	var paths []string
	remove = func() {
		for _, p := range paths {
			s.state.Delete(context.WithoutCancel(ctx), p)
		}
	}
	for _, r := range recs {
		if len(r.Report) == 0 {
			continue
		}
		sum := sha256.Sum256(r.Report)
		p := s.journal + reportsDir + "/" + hex.EncodeToString(sum[:]) + "-" + rand.Text()
		if err := s.state.Put(ctx, p, r.Report); err != nil {
			remove()
			return nil, fmt.Errorf("couldn't journal incident report: %w", err)
		}
		paths = append(paths, p)
	}
	return remove, nil
}

// stashedReport reads a stashed report of SHA-256 sha.
func (s *Server) stashedReport(ctx context.Context, sha string) ([]byte, error) {
	if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("report SHA-256 %q is malformed", sha)
	}
	files, _ := s.reportFiles(ctx, sha+"-")
	for _, f := range files {
		b, err := s.state.Get(ctx, f)
		if err != nil {
			continue
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == sha {
			return b, nil
		}
	}
	return nil, errors.New("no journalled report of that SHA-256")
}

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/lazyre"
)

// Incident record events.
const (
	// IncidentOpened: an incident was opened; Detail says what was
	// compromised and since when.
	IncidentOpened = "opened"
	// IncidentQuarantined: Artifact is quarantined by the incident. The
	// deploy gate refuses it from the moment the record exists. Closing the
	// incident does not lift it.
	IncidentQuarantined = "quarantined"
	// IncidentReported: Report holds the incident report (JSON).
	IncidentReported = "reported"
	// IncidentClosed: the incident was closed (its quarantine stays).
	IncidentClosed = "closed"
)

// IncidentEvents lists every incident record event.
func IncidentEvents() []string {
	return []string{IncidentOpened, IncidentQuarantined, IncidentReported, IncidentClosed}
}

// MaxReportSize is the largest incident report, in bytes.
const MaxReportSize = 4 << 20

// MaxIncidentBatch is the largest number of records one AppendIncidents
// call takes (api.MaxIncidentBatch).
const MaxIncidentBatch = api.MaxIncidentBatch

var incidentID = lazyre.New(`^INC-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// ValidIncidentID reports whether id looks like an incident ID:
// INC-YYYYMMDDTHHMMSSZ-8 hex digits.
func ValidIncidentID(id string) bool { return incidentID.MatchString(id) }

// IncidentRecord is one record of an incident (schema version 4); see
// api.IncidentRecord. Its JSON form is the wire format of the incidents
// API and the line format of a local incident ledger.
type IncidentRecord = api.IncidentRecord

// IncidentQuery selects incident records, in ID order (api.IncidentQuery).
type IncidentQuery = api.IncidentQuery

// CheckIncidentRecord validates r as an append does and returns it
// normalised (time in UTC with microsecond precision, ID and RecordedAt
// cleared). Errors wrap ErrInvalid.
func CheckIncidentRecord(r *IncidentRecord) (*IncidentRecord, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil incident record", ErrInvalid)
	}
	n := *r
	n.ID, n.RecordedAt = 0, time.Time{}
	if !ValidIncidentID(n.Incident) {
		return nil, fmt.Errorf("%w: incident %q is not an incident ID (INC-YYYYMMDDTHHMMSSZ-HEX8)", ErrInvalid, n.Incident)
	}
	known := false
	for _, e := range IncidentEvents() {
		known = known || e == n.Event
	}
	if !known {
		return nil, fmt.Errorf("%w: incident event %q is not one of %s", ErrInvalid, n.Event, strings.Join(IncidentEvents(), ", "))
	}
	switch {
	case n.Event == IncidentQuarantined && !sha256Digest.MatchString(n.Artifact):
		return nil, fmt.Errorf("%w: quarantined artifact %q is not sha256:HEX (lowercase)", ErrInvalid, n.Artifact)
	case n.Event != IncidentQuarantined && n.Artifact != "":
		return nil, fmt.Errorf("%w: a %s record names no artifact", ErrInvalid, n.Event)
	case n.Event == IncidentReported && (len(n.Report) == 0 || !json.Valid(n.Report)):
		return nil, fmt.Errorf("%w: a reported record needs a JSON report", ErrInvalid)
	case n.Event != IncidentReported && len(n.Report) != 0:
		return nil, fmt.Errorf("%w: only a reported record carries a report", ErrInvalid)
	case len(n.Report) > MaxReportSize:
		return nil, fmt.Errorf("%w: report is %d bytes, more than the limit of %d", ErrInvalid, len(n.Report), MaxReportSize)
	}
	for _, f := range []struct{ name, v string }{{"actor", n.Actor}, {"detail", n.Detail}, {"recorded by", n.RecordedBy}} {
		if err := checkText(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if n.Time.IsZero() || n.Time.Before(minTime) || n.Time.After(maxTime) {
		return nil, fmt.Errorf("%w: time %s is missing or out of range", ErrInvalid, n.Time.Format(time.RFC3339))
	}
	n.Time = n.Time.UTC().Truncate(time.Microsecond)
	return &n, nil
}

// checkIncidentQuery validates q and applies the default limit.
func checkIncidentQuery(q IncidentQuery) (IncidentQuery, error) {
	switch {
	case q.Limit < 0:
		return q, fmt.Errorf("%w: negative limit %d", ErrInvalidQuery, q.Limit)
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	if q.AfterID < 0 {
		return q, fmt.Errorf("%w: negative after id %d", ErrInvalidQuery, q.AfterID)
	}
	if q.Incident != "" && !ValidIncidentID(q.Incident) {
		return q, fmt.Errorf("%w: incident %q is not an incident ID", ErrInvalidQuery, q.Incident)
	}
	if q.Artifact != "" && !sha256Digest.MatchString(q.Artifact) {
		return q, fmt.Errorf("%w: artifact %q is not sha256:HEX (lowercase)", ErrInvalidQuery, q.Artifact)
	}
	if q.Event != "" {
		known := false
		for _, e := range IncidentEvents() {
			known = known || e == q.Event
		}
		if !known {
			return q, fmt.Errorf("%w: incident event %q is not one of %s", ErrInvalidQuery, q.Event, strings.Join(IncidentEvents(), ", "))
		}
	}
	return q, nil
}

// CheckIncidentBatch validates a batch as AppendIncidents does and returns
// it normalised (see CheckIncidentRecord). Errors wrap ErrInvalid and name
// the record's position.
func CheckIncidentBatch(rs []*IncidentRecord) ([]*IncidentRecord, error) {
	switch {
	case len(rs) == 0:
		return nil, fmt.Errorf("%w: no incident records", ErrInvalid)
	case len(rs) > MaxIncidentBatch:
		return nil, fmt.Errorf("%w: %d incident records, more than the limit of %d in one batch", ErrInvalid, len(rs), MaxIncidentBatch)
	}
	out := make([]*IncidentRecord, len(rs))
	for i, r := range rs {
		n, err := CheckIncidentRecord(r)
		if err != nil {
			if len(rs) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out[i] = n
	}
	return out, nil
}

const incidentColumns = `id, incident, event, artifact, actor, time_us, detail, report, recorded_by, recorded_us`

// incidentChunk is how many incident rows one INSERT statement carries (9
// parameters each, below SQLite's and PostgreSQL's parameter limits).
const incidentChunk = 500

func (s *sqlDB) appendIncidents(ctx context.Context, rs []*IncidentRecord) ([]int64, error) {
	ns, err := CheckIncidentBatch(rs)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin transaction: %w", err)
	}
	defer tx.Rollback()
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return nil, fmt.Errorf("couldn't lock the index: %w", err)
		}
	}
	now := toMicros(time.Now())
	p := s.d.placeholder
	ids := make([]int64, 0, len(ns))
	for start := 0; start < len(ns); start += incidentChunk {
		chunk := ns[start:min(start+incidentChunk, len(ns))]
		var b strings.Builder
		b.WriteString(`INSERT INTO incident (incident, event, artifact, actor, time_us, detail, report, recorded_by, recorded_us) VALUES `)
		args := make([]any, 0, 9*len(chunk))
		for i, n := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			k := len(args)
			fmt.Fprintf(&b, "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", p(k+1), p(k+2), p(k+3), p(k+4), p(k+5), p(k+6), p(k+7), p(k+8), p(k+9))
			report := []byte(n.Report)
			if report == nil {
				report = []byte{}
			}
			args = append(args, n.Incident, n.Event, n.Artifact, n.Actor, toMicros(n.Time), n.Detail, report, n.RecordedBy, now)
		}
		b.WriteString(` RETURNING id`)
		rows, err := tx.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("couldn't insert incident records: %w", err)
		}
		var got []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("couldn't insert incident records: %w", err)
			}
			got = append(got, id)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, fmt.Errorf("couldn't insert incident records: %w", err)
		}
		rows.Close()
		if len(got) != len(chunk) {
			return nil, fmt.Errorf("couldn't insert incident records: %d IDs returned for %d rows", len(got), len(chunk))
		}
		// Writers are serialised and one statement numbers its rows in
		// order; RETURNING promises no order, so sort.
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		ids = append(ids, got...)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("couldn't commit incident records: %w", err)
	}
	return ids, nil
}

func (s *sqlDB) incidents(ctx context.Context, q IncidentQuery) ([]*IncidentRecord, error) {
	q, err := checkIncidentQuery(q)
	if err != nil {
		return nil, err
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return s.d.placeholder(len(args))
	}
	where := "id > " + arg(q.AfterID)
	for _, c := range []struct{ col, v string }{{"incident", q.Incident}, {"artifact", q.Artifact}, {"event", q.Event}} {
		if c.v != "" {
			where += " AND " + c.col + " = " + arg(c.v)
		}
	}
	rows, err := s.query(ctx, `SELECT `+incidentColumns+` FROM incident WHERE `+where+` ORDER BY id LIMIT `+arg(q.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read incident records: %w", err)
	}
	defer rows.Close()
	var out []*IncidentRecord
	for rows.Next() {
		r := &IncidentRecord{}
		var t, rec int64
		var report []byte
		if err := rows.Scan(&r.ID, &r.Incident, &r.Event, &r.Artifact, &r.Actor, &t, &r.Detail, &report, &r.RecordedBy, &rec); err != nil {
			return nil, fmt.Errorf("couldn't read incident records: %w", err)
		}
		if len(report) > 0 {
			r.Report = json.RawMessage(report)
		}
		r.Time, r.RecordedAt = fromMicros(t), fromMicros(rec)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read incident records: %w", err)
	}
	return out, nil
}

// incidentTable is the body of the incident table (schema version 4), the
// same in both backends but for the ID and byte columns.
func incidentTable(idColumn, bytesColumn string) string {
	return `CREATE TABLE incident (
		id ` + idColumn + `,
		incident TEXT NOT NULL,
		event TEXT NOT NULL,
		artifact TEXT NOT NULL,
		actor TEXT NOT NULL,
		time_us BIGINT NOT NULL,
		detail TEXT NOT NULL,
		report ` + bytesColumn + ` NOT NULL,
		recorded_by TEXT NOT NULL,
		recorded_us BIGINT NOT NULL)`
}

// incidentIndexes serve the lookups of IncidentQuery: one incident's
// records, an artifact's quarantine (the deploy gate's question) and one
// kind of record.
var incidentIndexes = []string{
	`CREATE INDEX incident_incident ON incident (incident, id)`,
	`CREATE INDEX incident_artifact ON incident (artifact, event, id)`,
	`CREATE INDEX incident_event ON incident (event, id)`,
}

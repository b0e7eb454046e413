package store

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
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

var incidentID = regexp.MustCompile(`^INC-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// ValidIncidentID reports whether id looks like an incident ID:
// INC-YYYYMMDDTHHMMSSZ-8 hex digits.
func ValidIncidentID(id string) bool { return incidentID.MatchString(id) }

// IncidentRecord is one record of an incident (custody's own record kind,
// schema version 3, append-only like evidence). Its JSON form is the wire
// format of the incidents API and the line format of a local incident
// ledger.
type IncidentRecord struct {
	// ID is assigned by the store, increasing in the order records become
	// visible (ignored on append).
	ID int64 `json:"id,omitempty"`
	// Incident is the incident's ID (see ValidIncidentID).
	Incident string `json:"incident"`
	// Event is one of IncidentEvents().
	Event string `json:"event"`
	// Artifact is "sha256:HEX" (lowercase); required for quarantined,
	// empty otherwise.
	Artifact string `json:"artifact,omitempty"`
	// Actor is who did it, as the client says.
	Actor string `json:"actor,omitempty"`
	// Time is when it happened, as the client says (required).
	Time time.Time `json:"time"`
	// Detail says more in one line (why an artifact is quarantined).
	Detail string `json:"detail,omitempty"`
	// Report is the incident report (JSON), for reported records only.
	Report json.RawMessage `json:"report,omitempty"`
	// RecordedBy and RecordedAt are set by the store (as for Deployment).
	RecordedBy string    `json:"recordedBy,omitempty"`
	RecordedAt time.Time `json:"recordedAt,omitzero"`
}

// IncidentQuery selects incident records, in ID order.
type IncidentQuery struct {
	// Incident, when set, selects one incident's records.
	Incident string
	// Artifact, when set, selects the records about one artifact.
	Artifact string
	// Event, when set, selects one kind of record.
	Event string
	// AfterID returns only records with a larger ID (paging).
	AfterID int64
	// Limit is the page size: DefaultLimit when zero, at most MaxLimit.
	Limit int
}

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
	return q, nil
}

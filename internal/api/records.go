package api

import (
	"encoding/json"
	"time"
)

// MaxIncidentBatch is the largest number of records one POST
// /api/v1/incidents (and one store append) takes.
const MaxIncidentBatch = 10000

// Deployment is one record of an environment's history (custody's own
// record kind, append-only like evidence). Its JSON form is the wire format
// of the deployments API and the line format of a local history file.
type Deployment struct {
	// ID is assigned by the store, increasing in the order records
	// become visible (ignored by AppendDeployment).
	ID int64 `json:"id,omitempty"`
	// Environment is the environment's name (store.ValidEnvironment).
	Environment string `json:"environment"`
	// Event is one of store.Events().
	Event string `json:"event"`
	// Artifact is the artifact's digest, "sha256:HEX" in lowercase.
	Artifact string `json:"artifact"`
	// Name is how the artifact was named (file path or image reference).
	Name string `json:"name,omitempty"`
	// Actor is who did it (user, CI job), as the client says.
	Actor string `json:"actor,omitempty"`
	// Time is when it happened, as the client says (required; stored in UTC
	// with microsecond precision).
	Time time.Time `json:"time"`
	// PolicyDigest names the policy version that allowed the artifact.
	PolicyDigest string `json:"policyDigest,omitempty"`
	// Decision is "allowed" or "denied" when a policy decided; the
	// SHA-256 of the signed decision (VSA bundle) is in DecisionBundle.
	Decision       string `json:"decision,omitempty"`
	DecisionBundle string `json:"decisionBundle,omitempty"`
	// RollbackFrom is the digest of the artifact a rollback replaced.
	RollbackFrom string `json:"rollbackFrom,omitempty"`
	// Detail says more in one line (the failing command, a reason).
	Detail string `json:"detail,omitempty"`
	// RecordedBy is who the store was told wrote it (the server sets the
	// name or role of the token; ignored from clients).
	RecordedBy string `json:"recordedBy,omitempty"`
	// RecordedAt is when the store recorded it (set by the store).
	RecordedAt time.Time `json:"recordedAt,omitzero"`
}

// IncidentRecord is one record of an incident (custody's own record kind,
// schema version 4, append-only like evidence). Its JSON form is the wire
// format of the incidents API and the line format of a local incident
// ledger.
type IncidentRecord struct {
	// ID is assigned by the store, increasing in the order records become
	// visible (ignored on append).
	ID int64 `json:"id,omitempty"`
	// Incident is the incident's ID (store.ValidIncidentID).
	Incident string `json:"incident"`
	// Event is one of store.IncidentEvents().
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

// DeploymentPage is the answer of GET /api/v1/deployments.
type DeploymentPage struct {
	Deployments []*Deployment `json:"deployments"`
}

// IncidentBatch is the batch form of POST /api/v1/incidents.
type IncidentBatch struct {
	Records []*IncidentRecord `json:"records"`
}

// IncidentPage is the answer of GET /api/v1/incidents.
type IncidentPage struct {
	Records []*IncidentRecord `json:"records"`
}

// IDAnswer is the answer of POST /api/v1/deployments and of a single
// record POST /api/v1/incidents.
type IDAnswer struct {
	ID int64 `json:"id"`
}

// IDsAnswer is the answer of a batch POST /api/v1/incidents: the records'
// IDs, in order.
type IDsAnswer struct {
	IDs []int64 `json:"ids"`
}

package server

import (
	"context"

	"github.com/custody-dev/custody/internal/store"
)

// EvidenceIndex is what the server needs of the evidence index: record
// bundles it signs or receives (Put is idempotent by bundle digest, which
// the start-up reconciliation relies on) and find them again (Get for the
// dashboard's artifact pages, FirstSeen for red flags).
type EvidenceIndex interface {
	Put(ctx context.Context, e *store.Evidence) (id int64, existed bool, err error)
	Get(ctx context.Context, id int64) (*store.Evidence, error)
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	FirstSeen(ctx context.Context, q store.FirstSeenQuery) (int64, error)
}

// DeploymentIndex is what the server needs of environments' deployment
// history (POST and GET /api/v1/deployments).
type DeploymentIndex interface {
	AppendDeployment(ctx context.Context, d *store.Deployment) (int64, error)
	Deployments(ctx context.Context, q store.DeploymentQuery) ([]*store.Deployment, error)
}

// IncidentIndex is what the server needs of the incident records (POST and
// GET /api/v1/incidents).
type IncidentIndex interface {
	AppendIncidents(ctx context.Context, rs []*store.IncidentRecord) ([]int64, error)
	Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error)
}

// Index is the registry index a Server keeps its records in (Config.Index):
// store.SQLite, store.Postgres or, in tests, store.Memory. Its methods
// behave as documented on store.SQLite.
type Index interface {
	EvidenceIndex
	DeploymentIndex
	IncidentIndex
}

// IndexReader is the part of the index the dashboard reads (UIDeps.Index).
type IndexReader interface {
	Get(ctx context.Context, id int64) (*store.Evidence, error)
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	Deployments(ctx context.Context, q store.DeploymentQuery) ([]*store.Deployment, error)
}

var (
	_ Index = (*store.SQLite)(nil)
	_ Index = (*store.Postgres)(nil)
)

package server

import (
	"context"
	"time"
)

// Matching a record to its audit entry, for the crash tests.
var (
	DeploymentKey = deploymentKey
	IncidentKey   = incidentKey
)

// SweepSessions runs one sweep of the replicas' shared sessions at now.
func (s *Server) SweepSessions(ctx context.Context, now time.Time) { s.sweepSessions(ctx, now) }

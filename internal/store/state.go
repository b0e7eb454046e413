package store

import "time"

// Health of what runs in an environment (EnvState.Health).
const (
	HealthUnknown   = "unknown"
	HealthHealthy   = EventHealthy
	HealthUnhealthy = EventUnhealthy
)

// EnvState is what runs in one environment, derived from its deployment
// history by CurrentState. Package deploy (deploy.State, custody status)
// and the dashboard share it.
type EnvState struct {
	Environment string `json:"environment"`
	// Running is the record (deployed or rolled-back) that put the current
	// artifact in place; nil when nothing was ever deployed.
	Running *Deployment `json:"running"`
	// Since is when it was put in place.
	Since time.Time `json:"since,omitzero"`
	// Health is the result of the last health check of Running.
	Health string `json:"health"`
	// RolledBack is true when Running came from a rollback.
	RolledBack bool `json:"rolledBack"`
	// LastFailed is the last failed deploy after Running was put in place.
	LastFailed *Deployment `json:"lastFailed,omitempty"`
}

// CurrentState derives env's state from deployment records in append
// order (records of other environments are skipped). A failed deploy does
// not change what runs; a deployed or rolled-back record does, and a health
// record applies to the artifact running when it was written.
func CurrentState(env string, records []*Deployment) EnvState {
	st := EnvState{Environment: env, Health: HealthUnknown}
	for _, r := range records {
		if r.Environment != env {
			continue
		}
		switch r.Event {
		case EventDeployed, EventRolledBack:
			st.Running, st.Since, st.Health = r, r.Time, HealthUnknown
			st.RolledBack = r.Event == EventRolledBack
			st.LastFailed = nil
		case EventHealthy, EventUnhealthy:
			if st.Running != nil && r.Artifact == st.Running.Artifact {
				st.Health = r.Event
			}
		case EventFailed:
			st.LastFailed = r
		}
	}
	return st
}

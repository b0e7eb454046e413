package deploy

import (
	"sort"
	"time"
)

// Health of what runs in an environment.
const (
	HealthUnknown   = "unknown"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// State is what runs in one environment, derived from its history.
type State struct {
	Environment string `json:"environment"`
	// Running is the record (deployed or rolled-back) that put the current
	// artifact in place; nil when nothing was ever deployed.
	Running *Record `json:"running"`
	// Since is when it was put in place.
	Since time.Time `json:"since,omitzero"`
	// Health is the result of the last health check of Running.
	Health string `json:"health"`
	// RolledBack is true when Running came from a rollback.
	RolledBack bool `json:"rolledBack"`
	// LastFailed is the last failed deploy after Running was put in place.
	LastFailed *Record `json:"lastFailed,omitempty"`
}

// Current derives an environment's state from its records (in append
// order). A failed deploy does not change what runs; a deployed or
// rolled-back record does, and a health record applies to the artifact
// running when it was written.
func Current(env string, records []*Record) State {
	st := State{Environment: env, Health: HealthUnknown}
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

// Candidate is an artifact a rollback may return to.
type Candidate struct {
	// Record put the artifact in place the last time it was healthy.
	Record *Record
	// HealthyAt is when it was last found healthy.
	HealthyAt time.Time
	pos       int // position of the healthy record in the history
}

// GoodCandidates returns the artifacts that were deployed to env and then
// found healthy while running, most recently healthy first, each once,
// leaving out exclude (the artifact being replaced).
func GoodCandidates(env string, records []*Record, exclude string) []Candidate {
	var running *Record
	last := map[string]Candidate{}
	for i, r := range records {
		if r.Environment != env {
			continue
		}
		switch r.Event {
		case EventDeployed, EventRolledBack:
			running = r
		case EventHealthy:
			if running != nil && running.Artifact == r.Artifact {
				last[r.Artifact] = Candidate{Record: running, HealthyAt: r.Time, pos: i}
			}
		}
	}
	var out []Candidate
	for a, c := range last {
		if a != exclude {
			out = append(out, c)
		}
	}
	// Most recently healthy (in history order) first.
	sort.Slice(out, func(i, j int) bool { return out[i].pos > out[j].pos })
	return out
}

package deploy

import (
	"sort"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// Health of what runs in an environment.
const (
	HealthUnknown   = store.HealthUnknown
	HealthHealthy   = store.HealthHealthy
	HealthUnhealthy = store.HealthUnhealthy
)

// State is what runs in one environment, derived from its history.
type State = store.EnvState

// Current derives an environment's state from its records (in append
// order): store.CurrentState, which the dashboard shares.
func Current(env string, records []*Record) State { return store.CurrentState(env, records) }

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

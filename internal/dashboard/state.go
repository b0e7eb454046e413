package dashboard

import (
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// State is what runs in one environment. It mirrors deploy.State, which the
// dashboard cannot import (package deploy reaches package server, which
// mounts the dashboard, through package client); TestCurrentMatchesDeploy
// checks that currentState agrees with deploy.Current record for record.
type State struct {
	Running    *store.Deployment
	Since      time.Time
	Health     string
	RolledBack bool
	LastFailed *store.Deployment
}

// currentState derives an environment's state from its records (append
// order) exactly as deploy.Current does.
func currentState(env string, records []*store.Deployment) State {
	st := State{Health: "unknown"}
	for _, r := range records {
		if r.Environment != env {
			continue
		}
		switch r.Event {
		case store.EventDeployed, store.EventRolledBack:
			st.Running, st.Since, st.Health = r, r.Time, "unknown"
			st.RolledBack = r.Event == store.EventRolledBack
			st.LastFailed = nil
		case store.EventHealthy, store.EventUnhealthy:
			if st.Running != nil && r.Artifact == st.Running.Artifact {
				st.Health = r.Event
			}
		case store.EventFailed:
			st.LastFailed = r
		}
	}
	return st
}

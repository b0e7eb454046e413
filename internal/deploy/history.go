// Package deploy is custody's deploy gate: environments, their append-only
// deployment history, deploy, promote and rollback.
//
// An artifact enters an environment only when the environment's policy
// (package policy) allows it, decided on verified evidence right before the
// deploy command runs; the artifact's digest is checked again immediately
// before the command runs, so a file swapped after verification is refused.
// Every step is a new record in the environment's history (store.Deployment:
// deployed, healthy, unhealthy, failed, rolled-back); nothing is changed or
// removed. When the deploy command or the health check fails, the
// environment goes back to the last artifact that was healthy there and
// still passes the policy now.
//
// Decisions are SLSA Verification Summary Attestations
// (https://slsa.dev/spec/v1.0/verification_summary); signing and storing
// them is the Decider's job, so that no decision is acted on unless it was
// recorded.
package deploy

import (
	"context"
	"errors"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/store"
)

// Record is one entry of an environment's history. Its JSON form is a line
// of a local history file and the wire format of the server's deployments
// API.
type Record = store.Deployment

// Events of a Record.
const (
	EventDeployed   = store.EventDeployed
	EventHealthy    = store.EventHealthy
	EventUnhealthy  = store.EventUnhealthy
	EventFailed     = store.EventFailed
	EventRolledBack = store.EventRolledBack
)

// History is where environments' histories are kept: a custody server
// (ServerHistory) or a local directory (FileHistory).
type History interface {
	// Append validates r (store.CheckDeployment), appends it durably and
	// returns the record as stored (with its ID).
	Append(ctx context.Context, r *Record) (*Record, error)
	// List returns env's records ("" for every environment) in the order
	// they were appended. A history that cannot be read completely is an
	// error (ErrCorrupt for a damaged file), never a shorter list.
	List(ctx context.Context, env string) ([]*Record, error)
}

// ErrCorrupt means a local history file is damaged (a truncated or
// malformed line). Nothing is appended to it until it is repaired by hand.
var ErrCorrupt = errors.New("deployment history is damaged")

// ServerHistory keeps history on a custody server: appending needs a
// deployer (or admin) token, reading any token.
type ServerHistory struct {
	Client *client.Client
}

// Append implements History.
func (h ServerHistory) Append(ctx context.Context, r *Record) (*Record, error) {
	n, err := store.CheckDeployment(r)
	if err != nil {
		return nil, err
	}
	id, err := h.Client.AppendDeployment(ctx, n)
	if err != nil {
		return nil, err
	}
	n.ID = id
	return n, nil
}

// List implements History.
func (h ServerHistory) List(ctx context.Context, env string) ([]*Record, error) {
	return h.Client.Deployments(ctx, env)
}

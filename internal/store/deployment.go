package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/lazyre"
)

// Deployment events: what happened to an artifact in an environment.
const (
	// EventDeployed: the deploy command ran and succeeded.
	EventDeployed = "deployed"
	// EventHealthy: the health check of what runs passed.
	EventHealthy = "healthy"
	// EventUnhealthy: the health check of what runs failed.
	EventUnhealthy = "unhealthy"
	// EventFailed: the deploy command failed (or could not run).
	EventFailed = "failed"
	// EventRolledBack: a rollback deployed an earlier artifact, and the
	// deploy command succeeded.
	EventRolledBack = "rolled-back"
)

// Events lists every deployment event.
func Events() []string {
	return []string{EventDeployed, EventHealthy, EventUnhealthy, EventFailed, EventRolledBack}
}

// envName is what an environment name may look like.
var envName = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidEnvironment reports whether name is an environment name: 1 to 64
// letters, digits, '.', '_' or '-', not starting with a punctuation mark.
func ValidEnvironment(name string) bool { return envName.MatchString(name) }

var sha256Digest = lazyre.New(`^sha256:[0-9a-f]{64}$`)

// Deployment is one record of an environment's history; see
// api.Deployment. Its JSON form is the wire format of the deployments API
// and the line format of a local history file.
type Deployment = api.Deployment

// DeploymentQuery selects deployment records, in ID order.
type DeploymentQuery struct {
	// Environment, when set, selects one environment's records.
	Environment string
	// AfterID returns only records with a larger ID (paging).
	AfterID int64
	// Limit is the page size: DefaultLimit when zero, at most MaxLimit.
	Limit int
}

// CheckDeployment validates d as AppendDeployment does and returns it
// normalised (times in UTC with microsecond precision, ID and RecordedAt
// cleared). Errors wrap ErrInvalid.
func CheckDeployment(d *Deployment) (*Deployment, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil deployment", ErrInvalid)
	}
	n := *d
	n.ID, n.RecordedAt = 0, time.Time{}
	if !ValidEnvironment(n.Environment) {
		return nil, fmt.Errorf("%w: environment %q is not a name (letters, digits, '.', '_', '-', at most 64)", ErrInvalid, n.Environment)
	}
	known := false
	for _, e := range Events() {
		known = known || e == n.Event
	}
	if !known {
		return nil, fmt.Errorf("%w: event %q is not one of %s", ErrInvalid, n.Event, strings.Join(Events(), ", "))
	}
	if !sha256Digest.MatchString(n.Artifact) {
		return nil, fmt.Errorf("%w: artifact %q is not sha256:HEX (lowercase)", ErrInvalid, n.Artifact)
	}
	if n.RollbackFrom != "" && !sha256Digest.MatchString(n.RollbackFrom) {
		return nil, fmt.Errorf("%w: rollbackFrom %q is not sha256:HEX (lowercase)", ErrInvalid, n.RollbackFrom)
	}
	if n.PolicyDigest != "" && !sha256Digest.MatchString(n.PolicyDigest) {
		return nil, fmt.Errorf("%w: policy digest %q is not sha256:HEX (lowercase)", ErrInvalid, n.PolicyDigest)
	}
	if n.Decision != "" && n.Decision != "allowed" && n.Decision != "denied" {
		return nil, fmt.Errorf("%w: decision %q is not allowed or denied", ErrInvalid, n.Decision)
	}
	if n.DecisionBundle != "" && (len(n.DecisionBundle) != 64 || !isHex(n.DecisionBundle) || strings.ToLower(n.DecisionBundle) != n.DecisionBundle) {
		return nil, fmt.Errorf("%w: decision bundle %q is not a lowercase hex sha256", ErrInvalid, n.DecisionBundle)
	}
	for _, f := range []struct{ name, v string }{{"name", n.Name}, {"actor", n.Actor}, {"detail", n.Detail}, {"recorded by", n.RecordedBy}} {
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

const deploymentColumns = `id, environment, event, artifact, name, actor, time_us, policy_digest, decision,
	decision_bundle, rollback_from, detail, recorded_by, recorded_us`

func (s *sqlDB) appendDeployment(ctx context.Context, d *Deployment) (int64, error) {
	n, err := CheckDeployment(d)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("couldn't begin transaction: %w", err)
	}
	defer tx.Rollback()
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return 0, fmt.Errorf("couldn't lock the index: %w", err)
		}
	}
	p := s.d.placeholder
	var ph []string
	for i := 1; i <= 13; i++ {
		ph = append(ph, p(i))
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO deployment (environment, event, artifact, name, actor, time_us,
		policy_digest, decision, decision_bundle, rollback_from, detail, recorded_by, recorded_us) VALUES (`+
		strings.Join(ph, ", ")+`) RETURNING id`,
		n.Environment, n.Event, n.Artifact, n.Name, n.Actor, toMicros(n.Time), n.PolicyDigest, n.Decision,
		n.DecisionBundle, n.RollbackFrom, n.Detail, n.RecordedBy, toMicros(time.Now())).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("couldn't insert deployment: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("couldn't commit deployment: %w", err)
	}
	return id, nil
}

// checkDeploymentQuery validates q and applies the default limit.
func checkDeploymentQuery(q DeploymentQuery) (DeploymentQuery, error) {
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
	if q.Environment != "" && !ValidEnvironment(q.Environment) {
		return q, fmt.Errorf("%w: environment %q is not a name", ErrInvalidQuery, q.Environment)
	}
	return q, nil
}

func (s *sqlDB) deployments(ctx context.Context, q DeploymentQuery) ([]*Deployment, error) {
	q, err := checkDeploymentQuery(q)
	if err != nil {
		return nil, err
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return s.d.placeholder(len(args))
	}
	where := "id > " + arg(q.AfterID)
	if q.Environment != "" {
		where += " AND environment = " + arg(q.Environment)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+deploymentColumns+` FROM deployment WHERE `+where+
		` ORDER BY id LIMIT `+arg(q.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read deployments: %w", err)
	}
	defer rows.Close()
	var out []*Deployment
	for rows.Next() {
		d := &Deployment{}
		var t, rec int64
		if err := rows.Scan(&d.ID, &d.Environment, &d.Event, &d.Artifact, &d.Name, &d.Actor, &t, &d.PolicyDigest,
			&d.Decision, &d.DecisionBundle, &d.RollbackFrom, &d.Detail, &d.RecordedBy, &rec); err != nil {
			return nil, fmt.Errorf("couldn't read deployments: %w", err)
		}
		d.Time, d.RecordedAt = fromMicros(t), fromMicros(rec)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read deployments: %w", err)
	}
	return out, nil
}

// deploymentTable is the body of the deployment table, the same in both
// backends but for the ID column.
func deploymentTable(idColumn string) string {
	return `CREATE TABLE deployment (
		id ` + idColumn + `,
		environment TEXT NOT NULL,
		event TEXT NOT NULL,
		artifact TEXT NOT NULL,
		name TEXT NOT NULL,
		actor TEXT NOT NULL,
		time_us BIGINT NOT NULL,
		policy_digest TEXT NOT NULL,
		decision TEXT NOT NULL,
		decision_bundle TEXT NOT NULL,
		rollback_from TEXT NOT NULL,
		detail TEXT NOT NULL,
		recorded_by TEXT NOT NULL,
		recorded_us BIGINT NOT NULL)`
}

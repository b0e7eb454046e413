package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// errClosed is returned by a closed Memory.
var errClosed = errors.New("index is closed")

// Write operations of the index, as a Memory fault hook names them.
const (
	OpPut              = "put"
	OpAppendDeployment = "append-deployment"
	OpAppendIncidents  = "append-incidents"
)

// Fault is a fault hook of a Memory index: it is called with the write
// operation (OpPut, ...) before the write (after false) and again once the
// write is stored (after true). An error returned before the write fails
// it with nothing stored; one returned after it fails the call although the
// write is stored, as a crash between commit and answer would. The hook may
// also block, or panic, to stand for a crash at that point.
type Fault func(op string, after bool) error

// Memory is an index held in memory, for tests: it behaves as SQLite does
// (the same conformance suite, package storetest) and can inject faults at
// each write (SetFault), so that what its user does when the index fails or
// the process dies around an index write can be tested in one process.
// Its methods are safe for concurrent use. The zero value is an empty
// index.
type Memory struct {
	mu          sync.Mutex
	evidence    []*Evidence // ID i+1 at i
	byBundle    map[string]int64
	deployments []*Deployment
	incidents   []*IncidentRecord
	fault       Fault
	closed      bool
}

// SetFault installs f, called around every later write; nil removes it.
func (m *Memory) SetFault(f Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// write runs store under the lock, between the fault hook's calls.
func (m *Memory) write(ctx context.Context, op string, store func() (stored bool)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	f := m.fault
	m.mu.Unlock()
	if f != nil {
		if err := f(op, false); err != nil {
			return err
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed
	}
	stored := store()
	m.mu.Unlock()
	if f != nil && stored {
		return f(op, true)
	}
	return nil
}

// read runs read under the lock.
func (m *Memory) read(ctx context.Context, read func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	read()
	return nil
}

// Put is [SQLite.Put] in memory.
func (m *Memory) Put(ctx context.Context, e *Evidence) (id int64, existed bool, err error) {
	r, err := normalize(e)
	if err != nil {
		return 0, false, err
	}
	err = m.write(ctx, OpPut, func() bool {
		if id, existed = m.byBundle[r.e.BundleSHA256]; existed {
			return false
		}
		if m.byBundle == nil {
			m.byBundle = map[string]int64{}
		}
		n := copyEvidence(&r.e)
		n.ID = int64(len(m.evidence)) + 1
		n.IndexedAt = time.Now().UTC().Truncate(time.Microsecond)
		m.evidence = append(m.evidence, n)
		m.byBundle[n.BundleSHA256] = n.ID
		id = n.ID
		return true
	})
	if err != nil {
		return 0, false, err
	}
	return id, existed, nil
}

// Get is [SQLite.Get] in memory.
func (m *Memory) Get(ctx context.Context, id int64) (*Evidence, error) {
	var e *Evidence
	err := m.read(ctx, func() {
		if id >= 1 && id <= int64(len(m.evidence)) {
			e = copyEvidence(m.evidence[id-1])
		}
	})
	if err == nil && e == nil {
		err = fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	return e, err
}

// Search is [SQLite.Search] in memory.
func (m *Memory) Search(ctx context.Context, q Query) ([]*Evidence, error) {
	n, err := normalizeQuery(q)
	if err != nil {
		return nil, err
	}
	var out []*Evidence
	err = m.read(ctx, func() {
		var total int64
		rows := m.evidence[min(n.AfterID, int64(len(m.evidence))):]
		if n.Newest {
			rows = slices.Clone(rows)
			slices.Reverse(rows)
		}
		for _, e := range rows {
			if len(out) == n.Limit || (q.MaxBytes > 0 && total >= q.MaxBytes) {
				break
			}
			if n.matches(e) && (n.BeforeID == 0 || e.ID < n.BeforeID) {
				out = append(out, copyEvidence(e))
				total += int64(len(e.Bundle))
			}
		}
	})
	return out, err
}

// matches reports whether e meets every condition of q.
func (q *query) matches(e *Evidence) bool {
	for _, c := range []struct{ want, have string }{
		{q.PredicateType, e.PredicateType}, {q.SignerKeyID, e.SignerKeyID}, {q.SignerIdentity, e.SignerIdentity},
		{q.BuilderID, e.BuilderID}, {q.SourceURI, e.SourceURI}, {q.SourceCommit, e.SourceCommit}, {q.BuildID, e.BuildID},
	} {
		if c.want != "" && c.want != c.have {
			return false
		}
	}
	if slices.Contains(q.ExcludePredicateTypes, e.PredicateType) {
		return false
	}
	t := e.IntegratedTime
	if t.IsZero() {
		t = e.IndexedAt
	}
	if (!q.Since.IsZero() && t.UnixMicro() < ceilMicros(q.Since)) || (!q.Until.IsZero() && t.UnixMicro() >= ceilMicros(q.Until)) {
		return false
	}
	if q.alg == "" && q.SubjectName == "" {
		return true
	}
	return slices.ContainsFunc(e.Subjects, func(s Subject) bool {
		return (q.SubjectName == "" || s.Name == q.SubjectName) && (q.alg == "" || s.Digests[q.alg] == q.value)
	})
}

// Count is [SQLite.Count] in memory.
func (m *Memory) Count(ctx context.Context) (int64, error) {
	var n int64
	err := m.read(ctx, func() { n = int64(len(m.evidence)) })
	return n, err
}

// AppendDeployment is [SQLite.AppendDeployment] in memory.
func (m *Memory) AppendDeployment(ctx context.Context, d *Deployment) (int64, error) {
	n, err := CheckDeployment(d)
	if err != nil {
		return 0, err
	}
	err = m.write(ctx, OpAppendDeployment, func() bool {
		n.ID = int64(len(m.deployments)) + 1
		n.RecordedAt = time.Now().UTC().Truncate(time.Microsecond)
		m.deployments = append(m.deployments, n)
		return true
	})
	if err != nil {
		return 0, err
	}
	return n.ID, nil
}

// Deployments is [SQLite.Deployments] in memory.
func (m *Memory) Deployments(ctx context.Context, q DeploymentQuery) ([]*Deployment, error) {
	q, err := checkDeploymentQuery(q)
	if err != nil {
		return nil, err
	}
	var out []*Deployment
	err = m.read(ctx, func() {
		for _, d := range m.deployments[min(q.AfterID, int64(len(m.deployments))):] {
			if len(out) == q.Limit {
				break
			}
			if q.Environment == "" || d.Environment == q.Environment {
				c := *d
				out = append(out, &c)
			}
		}
	})
	return out, err
}

// AppendIncidents is [SQLite.AppendIncidents] in memory.
func (m *Memory) AppendIncidents(ctx context.Context, rs []*IncidentRecord) ([]int64, error) {
	ns, err := CheckIncidentBatch(rs)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(ns))
	err = m.write(ctx, OpAppendIncidents, func() bool {
		now := time.Now().UTC().Truncate(time.Microsecond)
		for i, n := range ns {
			n.ID, n.RecordedAt = int64(len(m.incidents))+1, now
			n.Report = slices.Clone(n.Report)
			m.incidents = append(m.incidents, n)
			ids[i] = n.ID
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Incidents is [SQLite.Incidents] in memory.
func (m *Memory) Incidents(ctx context.Context, q IncidentQuery) ([]*IncidentRecord, error) {
	q, err := checkIncidentQuery(q)
	if err != nil {
		return nil, err
	}
	var out []*IncidentRecord
	err = m.read(ctx, func() {
		for _, r := range m.incidents[min(q.AfterID, int64(len(m.incidents))):] {
			if len(out) == q.Limit {
				break
			}
			if (q.Incident == "" || r.Incident == q.Incident) && (q.Artifact == "" || r.Artifact == q.Artifact) &&
				(q.Event == "" || r.Event == q.Event) {
				c := *r
				c.Report = slices.Clone(r.Report)
				out = append(out, &c)
			}
		}
	})
	return out, err
}

// Close makes every later call fail. The records stay, so that a test can
// Reopen the index as a restarted process would find it.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Reopen returns a new Memory holding m's records (as the database a
// restarted process opens again), without m's fault hook.
func (m *Memory) Reopen() *Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Memory{evidence: slices.Clone(m.evidence), byBundle: maps.Clone(m.byBundle),
		deployments: slices.Clone(m.deployments), incidents: slices.Clone(m.incidents)}
}

// copyEvidence copies e deeply, so that neither copy's user can change the
// other.
func copyEvidence(e *Evidence) *Evidence {
	c := *e
	c.Bundle = slices.Clone(e.Bundle)
	c.Subjects = make([]Subject, len(e.Subjects))
	for i, s := range e.Subjects {
		c.Subjects[i] = Subject{Name: s.Name, Digests: maps.Clone(s.Digests)}
	}
	return &c
}

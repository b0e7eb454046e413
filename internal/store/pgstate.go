package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// PGState is a state.Store in PostgreSQL, for replicas of custody serve
// that share one database: documents are rows of custody_state (in the
// connection's current schema, like the index), locks are PostgreSQL
// advisory locks (session locks, released when the holder's connection
// ends, so a replica that dies releases what it held).
type PGState struct {
	db *sql.DB

	mu   sync.Mutex
	held map[string]*sql.Conn // session locks taken, by name
}

const pgStateKey = `hashtextextended('custody/state/' || current_schema() || '/' || $1, 0)`

// State returns the state store in the index's database, creating its
// table on first use (under the same lock as schema migrations).
func (s *Postgres) State(ctx context.Context) (*PGState, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{postgresDialect.lock,
		`CREATE SEQUENCE IF NOT EXISTS custody_state_version`,
		`CREATE TABLE IF NOT EXISTS custody_state (
			name TEXT PRIMARY KEY,
			data BYTEA NOT NULL,
			version BIGINT NOT NULL DEFAULT nextval('custody_state_version'))`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("couldn't create the state table: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("couldn't create the state table: %w", err)
	}
	return &PGState{db: s.db}, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func pgGet(ctx context.Context, q queryer, name string) ([]byte, error) {
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT data FROM custody_state WHERE name = $1`, name).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

const pgUpsert = `INSERT INTO custody_state (name, data) VALUES ($1, $2)
	ON CONFLICT (name) DO UPDATE SET data = excluded.data, version = nextval('custody_state_version')`

func (p *PGState) Get(ctx context.Context, name string) ([]byte, error) {
	return pgGet(ctx, p.db, name)
}

func (p *PGState) Put(ctx context.Context, name string, b []byte) error {
	_, err := p.db.ExecContext(ctx, pgUpsert, name, nonNil(b))
	return err
}

func (p *PGState) Create(ctx context.Context, name string, b []byte) (bool, error) {
	res, err := p.db.ExecContext(ctx, `INSERT INTO custody_state (name, data) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, nonNil(b))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (p *PGState) Delete(ctx context.Context, name string) error {
	_, err := p.db.ExecContext(ctx, `DELETE FROM custody_state WHERE name = $1`, name)
	return err
}

func (p *PGState) List(ctx context.Context, prefix string) ([]string, error) {
	return p.names(ctx, `SELECT name FROM custody_state WHERE left(name, length($1)) = $1 ORDER BY name`, prefix)
}

func (p *PGState) ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("ListAfter: limit %d is not positive", limit)
	}
	// The primary key's index is walked in order from after, so a page
	// costs about limit rows of the prefix.
	return p.names(ctx, `SELECT name FROM custody_state
		WHERE left(name, length($1)) = $1 AND ($2 = '' OR name > $2) ORDER BY name LIMIT $3`, prefix, after, limit)
}

// names runs a query of names.
func (p *PGState) names(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := p.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (p *PGState) Version(ctx context.Context, name string) (string, error) {
	var v string
	err := p.db.QueryRowContext(ctx, `SELECT version::text FROM custody_state WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// Edit runs edit in a transaction holding a transaction-scoped advisory
// lock on name, so that edits of one document never interleave.
func (p *PGState) Edit(ctx context.Context, name string, edit func([]byte) ([]byte, error)) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+pgStateKey+`)`, "edit/"+name); err != nil {
		return fmt.Errorf("couldn't lock %s: %w", name, err)
	}
	old, err := pgGet(ctx, tx, name)
	if errors.Is(err, fs.ErrNotExist) {
		old, err = nil, nil
	}
	if err != nil {
		return err
	}
	b, err := edit(old)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, pgUpsert, name, nonNil(b)); err != nil {
		return err
	}
	return tx.Commit()
}

// Lock takes a session advisory lock on a connection of its own, held
// until release (or until the connection ends: a replica killed releases
// its locks when PostgreSQL notices the connection closed).
func (p *PGState) Lock(ctx context.Context, name string) (func(), error) {
	release, ok, err := p.lock(ctx, name, true)
	if err == nil && !ok {
		err = errors.New("lock not taken")
	}
	return release, err
}

// TryLock is Lock without waiting.
func (p *PGState) TryLock(ctx context.Context, name string) (func(), bool, error) {
	return p.lock(ctx, name, false)
}

func (p *PGState) lock(ctx context.Context, name string, wait bool) (func(), bool, error) {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	ok := true
	if wait {
		_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+pgStateKey+`)`, name)
	} else {
		err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+pgStateKey+`)`, name).Scan(&ok)
	}
	if err != nil || !ok {
		conn.Close()
		return nil, false, err
	}
	p.mu.Lock()
	if p.held == nil {
		p.held = map[string]*sql.Conn{}
	}
	p.held[name] = conn
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.held[name] == conn {
			delete(p.held, name)
		}
		p.mu.Unlock()
		// A failed unlock leaves a broken connection, which the pool
		// discards: PostgreSQL then drops the lock with the session.
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(`+pgStateKey+`)`, name)
		conn.Close()
	}, true, nil
}

// Held reports whether the lock name this store took is still held: an
// error when the session that holds it ended (a network cut, a database
// restart), which released it, or when it was not taken.
func (p *PGState) Held(ctx context.Context, name string) error {
	p.mu.Lock()
	conn := p.held[name]
	p.mu.Unlock()
	if conn == nil {
		return errors.New("lock not held")
	}
	var held bool
	err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)`).Scan(&held)
	if err == nil && !held {
		err = errors.New("lock not held")
	}
	return err
}

// Shared is true: every replica on the database sees the same state.
func (p *PGState) Shared() bool { return true }

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

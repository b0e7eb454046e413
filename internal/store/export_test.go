package store

import (
	"context"
	"fmt"
	"time"
)

// Hooks for the external tests in package store_test.

func backend(s Store) *sqlDB {
	switch v := s.(type) {
	case *SQLite:
		return &v.sqlDB
	case *Postgres:
		return &v.sqlDB
	}
	panic(fmt.Sprintf("unknown store %T", s))
}

// SetBeforeCommit makes every later Put call f after writing and before
// committing.
func SetBeforeCommit(s Store, f func() error) { backend(s).beforeCommit = f }

// RawExec runs stmt on the store's database.
func RawExec(ctx context.Context, s Store, stmt string, args ...any) error {
	_, err := backend(s).db.ExecContext(ctx, stmt, args...)
	return err
}

// SchemaVersion returns the store's schema version.
func SchemaVersion(ctx context.Context, s Store) (int, error) { return backend(s).schemaVersion(ctx) }

// LatestSchemaVersion is the newest schema version this code knows.
func LatestSchemaVersion(s Store) int { return len(backend(s).d.migrations) }

// PutBatch stores es in one transaction (for loading benchmarks quickly).
func PutBatch(ctx context.Context, s Store, es []*Evidence) error {
	b := backend(s)
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, e := range es {
		r, err := normalize(e)
		if err != nil {
			return err
		}
		if _, _, err := b.insert(ctx, tx, r, time.Now()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

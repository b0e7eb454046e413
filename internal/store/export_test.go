package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Hooks for the external tests in package store_test.

func backend(s any) *sqlDB {
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
func SetBeforeCommit(s any, f func() error) { backend(s).beforeCommit = f }

// RawExec runs stmt on the store's database.
func RawExec(ctx context.Context, s any, stmt string, args ...any) error {
	_, err := backend(s).db.ExecContext(ctx, stmt, args...)
	return err
}

// SchemaVersion returns the store's schema version.
func SchemaVersion(ctx context.Context, s any) (int, error) { return backend(s).schemaVersion(ctx) }

// LatestSchemaVersion is the newest schema version this code knows.
func LatestSchemaVersion(s any) int { return len(backend(s).d.migrations) }

// PutBatch stores es in one transaction (for loading benchmarks quickly).
func PutBatch(ctx context.Context, s any, es []*Evidence) error {
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

// MigrateSQLiteTo creates the SQLite index at path with the schema of
// version (an earlier one than OpenSQLite makes) and puts es into it.
func MigrateSQLiteTo(ctx context.Context, path string, version int, es []*Evidence) error {
	db, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	return migrateTo(ctx, db, sqliteDialect, version, es)
}

// MigratePostgresTo is MigrateSQLiteTo for the PostgreSQL index at dsn.
func MigratePostgresTo(ctx context.Context, dsn string, version int, es []*Evidence) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateTo(ctx, db, postgresDialect, version, es)
}

func migrateTo(ctx context.Context, db *sql.DB, d *dialect, version int, es []*Evidence) error {
	old := *d
	old.migrations = d.migrations[:version]
	if err := migrate(ctx, db, &old); err != nil {
		return err
	}
	s := &sqlDB{db: db, d: &old}
	for _, e := range es {
		if _, _, err := s.put(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// IndexColumns returns the columns of the named index, in order.
func IndexColumns(ctx context.Context, s any, index string) ([]string, error) {
	b := backend(s)
	stmt := `SELECT name FROM pragma_index_info(?) ORDER BY seqno`
	if b.d == postgresDialect {
		stmt = `SELECT a.attname FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid AND c.relnamespace = current_schema()::regnamespace
			CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE c.relname = $1 ORDER BY k.n`
	}
	rows, err := b.db.QueryContext(ctx, stmt, index)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// RawQueryRow runs stmt on the store's database and scans its one row.
func RawQueryRow(ctx context.Context, s any, stmt string, dest ...any) error {
	return backend(s).db.QueryRowContext(ctx, stmt).Scan(dest...)
}

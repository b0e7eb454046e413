package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/store"
)

// postgresDSN returns the DSN of the test PostgreSQL (scripts/postgres) or
// skips the test.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("CUSTODY_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CUSTODY_TEST_POSTGRES is unset; run scripts/postgres and export its output to test PostgreSQL")
	}
	return dsn
}

// OpenPostgres opens a store in a new schema of the test database, dropped
// when the test ends, so that runs never collide.
func OpenPostgres(t testing.TB) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), PostgresSchema(t))
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	return s
}

// PostgresSchema creates a new schema in the test database, dropped when
// the test ends, and returns a DSN that uses it.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	dsn := postgresDSN(t)
	ctx := context.Background()
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "custody_test_" + hex.EncodeToString(rnd[:])
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("couldn't connect to %s: %v", dsn, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("couldn't create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("couldn't connect to drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("couldn't drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, dsn, schema)
}

func withSearchPath(t testing.TB, dsn, schema string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("bad CUSTODY_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

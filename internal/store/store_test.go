package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

func openSQLite(t testing.TB) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

// openPostgres opens a store in a new schema of the test database, or
// skips the test.
func openPostgres(t testing.TB) *store.Postgres { return storetest.OpenPostgres(t) }

// postgresSchema is storetest.PostgresSchema.
func postgresSchema(t testing.TB) string { return storetest.PostgresSchema(t) }

// backends lists the stores under test; Postgres only when configured.
func backends() []struct {
	name string
	open func(t testing.TB) storetest.Store
} {
	return []struct {
		name string
		open func(t testing.TB) storetest.Store
	}{
		{"sqlite", func(t testing.TB) storetest.Store { return openSQLite(t) }},
		{"postgres", func(t testing.TB) storetest.Store { return openPostgres(t) }},
	}
}

func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Store { return b.open(t) })
		})
	}
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Store { return new(store.Memory) })
	})
}

func TestAppendOnly(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			defer s.Close()
			id, _, err := s.Put(ctx, storetest.Evidence(1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendDeployment(ctx, storetest.Deployment("prod", 1, store.EventDeployed)); err != nil {
				t.Fatal(err)
			}
			inc := storetest.IncidentID(1)
			if _, err := s.AppendIncidents(ctx, []*store.IncidentRecord{storetest.Quarantine(inc, 1)}); err != nil {
				t.Fatal(err)
			}
			before, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			stmts := []string{
				"UPDATE evidence SET builder_id = 'evil'",
				"UPDATE evidence SET bundle_sha256 = 'x' WHERE id = " + fmt.Sprint(id),
				"DELETE FROM evidence",
				"DELETE FROM evidence WHERE id = " + fmt.Sprint(id),
				"UPDATE evidence_subject SET value = 'x'",
				"DELETE FROM evidence_subject",
				"UPDATE schema_version SET version = 0",
				"DELETE FROM schema_version",
				"UPDATE deployment SET event = 'healthy'",
				"DELETE FROM deployment",
				"UPDATE incident SET event = 'closed'",
				"UPDATE incident SET artifact = '' WHERE incident = '" + inc + "'",
				"DELETE FROM incident",
				"DELETE FROM incident WHERE event = 'quarantined'",
			}
			if b.name == "postgres" {
				stmts = append(stmts, "TRUNCATE evidence_subject", "TRUNCATE evidence CASCADE", "TRUNCATE schema_version", "TRUNCATE deployment",
					"TRUNCATE incident")
			}
			for _, stmt := range stmts {
				err := store.RawExec(ctx, s, stmt)
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: error %v, want the append-only trigger to reject it", stmt, err)
				}
			}
			after, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if after.BuilderID != before.BuilderID || len(after.Subjects) != len(before.Subjects) {
				t.Errorf("record changed: %+v, was %+v", after, before)
			}
			if q, err := s.Incidents(ctx, store.IncidentQuery{Incident: inc, Event: store.IncidentQuarantined}); err != nil || len(q) != 1 {
				t.Errorf("quarantine after the rejected statements = %d records, %v; want it kept", len(q), err)
			}
			if v, err := store.SchemaVersion(ctx, s); err != nil || v != store.LatestSchemaVersion(s) {
				t.Errorf("SchemaVersion = %d, %v; want %d", v, err, store.LatestSchemaVersion(s))
			}
		})
	}
}

// TestPutAtomic fails a Put after its rows are written and checks that none
// of them remain.
func TestPutAtomic(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			defer s.Close()
			e := storetest.Evidence(1)
			e.Subjects = append(e.Subjects, store.Subject{Name: "second", Digests: map[string]string{"sha256": storetest.Digest("second")}})
			injected := errors.New("injected failure")
			store.SetBeforeCommit(s, func() error { return injected })
			if _, _, err := s.Put(ctx, e); !errors.Is(err, injected) {
				t.Fatalf("Put = %v, want the injected failure", err)
			}
			store.SetBeforeCommit(s, nil)
			if n, err := s.Count(ctx); err != nil || n != 0 {
				t.Errorf("Count = %d, %v after a failed Put; want 0", n, err)
			}
			for _, q := range []store.Query{
				{Digest: "sha256:" + storetest.Digest("second")},
				{SubjectName: "second"},
				{BuildID: e.BuildID},
			} {
				if res, err := s.Search(ctx, q); err != nil || len(res) != 0 {
					t.Errorf("Search(%+v) = %d records, %v after a failed Put; want none", q, len(res), err)
				}
			}
			id, existed, err := s.Put(ctx, e)
			if err != nil || existed {
				t.Fatalf("Put after the failure = %d, %v, %v; want a new record", id, existed, err)
			}
			got, err := s.Get(ctx, id)
			if err != nil || len(got.Subjects) != 2 {
				t.Errorf("Get = %+v, %v; want 2 subjects", got, err)
			}
		})
	}
}

func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 3 {
		id, _, err := s.Put(ctx, storetest.Evidence(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	want, err := s.Search(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = store.OpenSQLite(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.Search(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopening:\n%+v\nwant\n%+v", got, want)
	}
	if id, existed, err := s.Put(ctx, storetest.Evidence(1)); err != nil || !existed || id != ids[1] {
		t.Errorf("Put of a stored bundle after reopening = %d, %v, %v; want %d, true", id, existed, err, ids[1])
	}
	if id, _, err := s.Put(ctx, storetest.Evidence(9)); err != nil || id <= ids[2] {
		t.Errorf("Put after reopening = %d, %v; want an id above %d", id, err, ids[2])
	}
	if v, err := store.SchemaVersion(ctx, s); err != nil || v != store.LatestSchemaVersion(s) {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, store.LatestSchemaVersion(s))
	}
}

func TestSchemaTooNew(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RawExec(ctx, s, "INSERT INTO schema_version (version, name, applied_us) VALUES (999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := store.OpenSQLite(path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Errorf("OpenSQLite of a newer schema = %v, want an error saying it is newer", err)
	}
}

func TestOpenSQLiteErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
	}{
		{"empty", ""},
		{"query", filepath.Join(dir, "x.db?mode=ro")},
		{"memory", ":memory:"},
		{"uri", "file:" + filepath.Join(dir, "x.db")},
		{"missing directory", filepath.Join(dir, "missing", "x.db")},
		{"directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.OpenSQLite(tt.path)
			if err == nil {
				s.Close()
				t.Fatalf("OpenSQLite(%q) succeeded", tt.path)
			}
			t.Logf("%v", err)
		})
	}
}

func TestOpenPostgresErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, dsn string
	}{
		{"malformed", "postgres://%zz"},
		{"nobody listening", "postgres://postgres@127.0.0.1:1/custody_test?sslmode=disable&connect_timeout=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.OpenPostgres(ctx, tt.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("OpenPostgres(%q) succeeded", tt.dsn)
			}
			t.Logf("%v", err)
		})
	}
}

// TestUpgradeSinceIndexes opens an index made with schema version 2 (before
// the per-field indexes gained sort_us) holding records, and checks that
// opening it migrates the indexes and keeps every record findable.
func TestUpgradeSinceIndexes(t *testing.T) {
	ctx := context.Background()
	var es []*store.Evidence
	for n := range 30 {
		e := storetest.Evidence(n)
		e.SignerKeyID = storetest.Key(fmt.Sprint(n % 2))
		es = append(es, e)
	}
	for _, b := range []struct {
		name string
		open func(t *testing.T) storetest.Store
	}{
		{"sqlite", func(t *testing.T) storetest.Store {
			path := filepath.Join(t.TempDir(), "index.db")
			if err := store.MigrateSQLiteTo(ctx, path, 2, es); err != nil {
				t.Fatal(err)
			}
			s, err := store.OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"postgres", func(t *testing.T) storetest.Store {
			dsn := postgresSchema(t)
			if err := store.MigratePostgresTo(ctx, dsn, 2, es); err != nil {
				t.Fatal(err)
			}
			s, err := store.OpenPostgres(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			defer s.Close()
			if v, err := store.SchemaVersion(ctx, s); err != nil || v != store.LatestSchemaVersion(s) {
				t.Errorf("SchemaVersion = %d, %v; want %d", v, err, store.LatestSchemaVersion(s))
			}
			for index, want := range map[string][]string{
				"evidence_predicate_type":  {"predicate_type", "id", "sort_us"},
				"evidence_signer_key_id":   {"signer_key_id", "id", "sort_us"},
				"evidence_builder_id":      {"builder_id", "id", "sort_us"},
				"evidence_source_commit":   {"source_commit", "id", "sort_us"},
				"evidence_signer_identity": {"signer_identity", "id"},
				"evidence_build_id":        {"build_id", "id"},
			} {
				if got, err := store.IndexColumns(ctx, s, index); err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("index %s has columns %q, %v; want %q", index, got, err, want)
				}
			}
			byBuild := map[string]int{}
			for n, e := range es {
				byBuild[e.BuildID] = n
			}
			tests := []struct {
				q    store.Query
				want []int
			}{
				{store.Query{SignerKeyID: storetest.Key("0"), Since: es[20].IntegratedTime}, []int{20, 22, 24, 26, 28}},
				{store.Query{SignerKeyID: storetest.Key("1"), Until: es[6].IntegratedTime}, []int{1, 3, 5}},
				{store.Query{BuilderID: es[0].BuilderID, Since: es[27].IntegratedTime}, []int{27, 28, 29}},
				{store.Query{SourceCommit: es[0].SourceCommit, Since: es[10].IntegratedTime, Until: es[12].IntegratedTime}, []int{10, 11}},
				{store.Query{PredicateType: es[0].PredicateType, Since: es[28].IntegratedTime}, []int{28, 29}},
			}
			for _, tt := range tests {
				res, err := s.Search(ctx, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, e := range res {
					got = append(got, byBuild[e.BuildID])
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Search(%+v) found records %v, want %v", tt.q, got, tt.want)
				}
			}
			if err := store.RawExec(ctx, s, "DELETE FROM evidence"); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("DELETE after the upgrade: %v, want the append-only trigger to reject it", err)
			}
		})
	}
}

// TestUpgradeFirstSeen: an index created before first seen (schema
// version 4) is filled by the migration, and answers every first seen
// query as an index created with it, and as Search does; records put
// after the upgrade keep their first seen.
func TestUpgradeFirstSeen(t *testing.T) {
	ctx := context.Background()
	var old, later []*store.Evidence
	for n := range 90 {
		if n < 60 {
			old = append(old, storetest.SeenEvidence(n))
		} else {
			later = append(later, storetest.SeenEvidence(n))
		}
	}
	for _, b := range []struct {
		name  string
		old   func(t *testing.T) storetest.Store
		fresh func(t testing.TB) storetest.Store
	}{
		{"sqlite", func(t *testing.T) storetest.Store {
			path := filepath.Join(t.TempDir(), "index.db")
			if err := store.MigrateSQLiteTo(ctx, path, 4, old); err != nil {
				t.Fatal(err)
			}
			s, err := store.OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, func(t testing.TB) storetest.Store { return openSQLite(t) }},
		{"postgres", func(t *testing.T) storetest.Store {
			dsn := postgresSchema(t)
			if err := store.MigratePostgresTo(ctx, dsn, 4, old); err != nil {
				t.Fatal(err)
			}
			s, err := store.OpenPostgres(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, func(t testing.TB) storetest.Store { return openPostgres(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			fresh := b.fresh(t)
			defer fresh.Close()
			s := b.old(t)
			defer s.Close()
			if v, err := store.SchemaVersion(ctx, s); err != nil || v != store.LatestSchemaVersion(s) {
				t.Errorf("SchemaVersion = %d, %v; want %d", v, err, store.LatestSchemaVersion(s))
			}
			for _, e := range old {
				if _, _, err := fresh.Put(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			storetest.CheckFirstSeen(t, s)
			for _, q := range storetest.SeenQueries() {
				got, err1 := s.FirstSeen(ctx, q)
				want, err2 := fresh.FirstSeen(ctx, q)
				if err1 != nil || err2 != nil || got != want {
					t.Errorf("FirstSeen(%+v): upgraded %d, %v; created with it %d, %v", q, got, err1, want, err2)
				}
			}
			for _, e := range later {
				if _, _, err := s.Put(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			storetest.CheckFirstSeen(t, s)
			if err := store.RawExec(ctx, s, "DELETE FROM first_seen"); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("DELETE FROM first_seen: %v, want the append-only trigger to reject it", err)
			}
		})
	}
}

// TestFirstSeenReplicas: replicas sharing one PostgreSQL database, each
// with its own connections, put the same records at once; every first
// seen row is kept once, with the first record's ID.
func TestFirstSeenReplicas(t *testing.T) {
	dsn := postgresSchema(t)
	var stores []storetest.Store
	for range 3 {
		s, err := store.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	storetest.PutConcurrently(t, stores, 12, 120)
	for _, s := range stores {
		storetest.CheckFirstSeen(t, s)
	}
	var rows, keys int
	if err := store.RawQueryRow(context.Background(), stores[0], `SELECT count(*), count(DISTINCT key) FROM first_seen`, &rows, &keys); err != nil {
		t.Fatal(err)
	}
	if rows != keys || rows == 0 {
		t.Errorf("first_seen holds %d rows of %d keys", rows, keys)
	}
}

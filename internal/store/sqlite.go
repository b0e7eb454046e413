package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SQLite is the embedded index: one SQLite database file (plus its -wal and
// -shm files) in the data directory. It is safe for concurrent use by one
// process; writers are serialised by SQLite's write lock and wait up to the
// busy timeout for it.
type SQLite struct {
	sqlDB
}

// sqliteBusyTimeoutMS is how long a writer waits for another writer's lock.
const sqliteBusyTimeoutMS = 30000

var sqliteDialect = &dialect{
	placeholder: questionPlaceholder,
	// modernc.org/sqlite has no statement cache: without this every Search
	// parses and plans its two statements again.
	cacheStmts: true,
	noIndex:    func(col string) string { return "+" + col },
	migrations: []migration{
		{name: "evidence", stmts: []string{
			`CREATE TABLE evidence (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				bundle_sha256 TEXT NOT NULL UNIQUE,
				bundle BLOB NOT NULL,
				predicate_type TEXT NOT NULL,
				signer_key_id TEXT NOT NULL,
				signer_identity TEXT NOT NULL,
				signer_issuer TEXT NOT NULL,
				builder_id TEXT NOT NULL,
				source_uri TEXT NOT NULL,
				source_commit TEXT NOT NULL,
				build_id TEXT NOT NULL,
				log_index INTEGER NOT NULL,
				integrated_us INTEGER NOT NULL,
				indexed_us INTEGER NOT NULL,
				sort_us INTEGER NOT NULL)`,
			`CREATE TABLE evidence_subject (
				evidence_id INTEGER NOT NULL REFERENCES evidence (id),
				position INTEGER NOT NULL,
				name TEXT NOT NULL,
				alg TEXT NOT NULL,
				value TEXT NOT NULL,
				PRIMARY KEY (evidence_id, position, alg)) WITHOUT ROWID`,
			`CREATE INDEX evidence_subject_digest ON evidence_subject (alg, value, evidence_id)`,
			`CREATE INDEX evidence_subject_name ON evidence_subject (name, evidence_id)`,
			`CREATE INDEX evidence_predicate_type ON evidence (predicate_type, id)`,
			`CREATE INDEX evidence_signer_key_id ON evidence (signer_key_id, id)`,
			`CREATE INDEX evidence_signer_identity ON evidence (signer_identity, id)`,
			`CREATE INDEX evidence_builder_id ON evidence (builder_id, id)`,
			`CREATE INDEX evidence_source_uri ON evidence (source_uri, id)`,
			`CREATE INDEX evidence_source_commit ON evidence (source_commit, id)`,
			`CREATE INDEX evidence_build_id ON evidence (build_id, id)`,
			`CREATE INDEX evidence_sort_us ON evidence (sort_us, id)`,
			sqliteAppendOnly("evidence", "UPDATE"),
			sqliteAppendOnly("evidence", "DELETE"),
			sqliteAppendOnly("evidence_subject", "UPDATE"),
			sqliteAppendOnly("evidence_subject", "DELETE"),
			sqliteAppendOnly("schema_version", "UPDATE"),
			sqliteAppendOnly("schema_version", "DELETE"),
		}},
		{name: "deployment", stmts: []string{
			deploymentTable("INTEGER PRIMARY KEY AUTOINCREMENT"),
			`CREATE INDEX deployment_environment ON deployment (environment, id)`,
			sqliteAppendOnly("deployment", "UPDATE"),
			sqliteAppendOnly("deployment", "DELETE"),
		}},
		{name: "evidence since indexes", stmts: sinceIndexes(
			"signer_key_id", "builder_id", "source_commit", "predicate_type")},
		{name: "incident", stmts: append(append([]string{
			incidentTable("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
		}, incidentIndexes...),
			sqliteAppendOnly("incident", "UPDATE"),
			sqliteAppendOnly("incident", "DELETE"),
		)},
		{name: "first seen", stmts: []string{
			firstSeenTable("BLOB", "INTEGER") + ` WITHOUT ROWID`,
			sqliteAppendOnly("first_seen", "UPDATE"),
			sqliteAppendOnly("first_seen", "DELETE"),
		}, fill: fillFirstSeen},
	},
}

// sqliteAppendOnly returns a trigger that aborts every op (UPDATE or DELETE)
// on table.
func sqliteAppendOnly(table, op string) string {
	return fmt.Sprintf(`CREATE TRIGGER %[1]s_no_%[2]s BEFORE %[3]s ON %[1]s
		BEGIN SELECT RAISE(ABORT, 'custody index is append-only: %[3]s on %[1]s is not allowed'); END`,
		table, strings.ToLower(op), op)
}

// OpenSQLite opens (creating when missing) the SQLite index at path and
// migrates its schema to the newest version. The database runs in WAL mode
// with a busy timeout, so concurrent readers never block the writer.
func OpenSQLite(path string) (*SQLite, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite index path is empty")
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite index path %q must be a plain file path (no '?', '#', file: or :memory:)", path)
	}
	dsn := path + fmt.Sprintf("?_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_txlock=immediate", sqliteBusyTimeoutMS)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't open sqlite index %s: %w", path, err)
	}
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open sqlite index %s: %w", path, err)
	}
	if err := migrate(ctx, db, sqliteDialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite index %s: %w", path, err)
	}
	return &SQLite{sqlDB{db: db, d: sqliteDialect}}, nil
}

// Put stores e and returns its ID. When a bundle with the same SHA-256 was
// stored before, Put returns that record's ID with existed true and changes
// nothing. Put rejects malformed evidence with an error wrapping ErrInvalid,
// having stored nothing. Put does not modify e.
func (s *SQLite) Put(ctx context.Context, e *Evidence) (int64, bool, error) { return s.put(ctx, e) }

// Get returns the evidence with the given ID, or an error wrapping
// ErrNotFound.
func (s *SQLite) Get(ctx context.Context, id int64) (*Evidence, error) { return s.get(ctx, id) }

// Search returns the evidence matching q in ID order, at most q.Limit of
// it. A malformed query returns an error wrapping ErrInvalidQuery.
func (s *SQLite) Search(ctx context.Context, q Query) ([]*Evidence, error) { return s.search(ctx, q) }

// FirstSeen returns the ID of the first attributed provenance record
// (SLSA v1 or v0.2, with a signer key or identity and a builder) with a
// subject named q.SubjectName that had q's builder, key or identity, or 0
// when none had. It is one point lookup however many records the name
// has. A malformed query returns an error wrapping ErrInvalidQuery.
func (s *SQLite) FirstSeen(ctx context.Context, q FirstSeenQuery) (int64, error) {
	return s.firstSeen(ctx, q)
}

// Count returns the number of evidence records.
func (s *SQLite) Count(ctx context.Context) (int64, error) { return s.count(ctx) }

// AppendDeployment appends a deployment record (see CheckDeployment) and
// returns its ID. A malformed record is rejected with an error wrapping
// ErrInvalid, having stored nothing.
func (s *SQLite) AppendDeployment(ctx context.Context, d *Deployment) (int64, error) {
	return s.appendDeployment(ctx, d)
}

// Deployments returns the deployment records matching q in ID order. A
// malformed query returns an error wrapping ErrInvalidQuery.
func (s *SQLite) Deployments(ctx context.Context, q DeploymentQuery) ([]*Deployment, error) {
	return s.deployments(ctx, q)
}

// AppendIncidents appends incident records (see CheckIncidentRecord; 1 to
// MaxIncidentBatch of them) in one transaction and returns their IDs, in
// order: all are stored or none. The store sets RecordedAt; RecordedBy is
// kept as given (the server sets it from the token). A malformed record
// rejects the whole batch with an error wrapping ErrInvalid, having stored
// nothing. The records are not modified.
func (s *SQLite) AppendIncidents(ctx context.Context, rs []*IncidentRecord) ([]int64, error) {
	return s.appendIncidents(ctx, rs)
}

// Incidents returns the incident records matching q in ID order, at most
// q.Limit of them. A malformed query returns an error wrapping
// ErrInvalidQuery.
func (s *SQLite) Incidents(ctx context.Context, q IncidentQuery) ([]*IncidentRecord, error) {
	return s.incidents(ctx, q)
}

// Close releases the index. It first lets SQLite refresh the query
// planner's statistics (PRAGMA optimize), as SQLite recommends.
func (s *SQLite) Close() error {
	_, err := s.db.Exec(`PRAGMA optimize`)
	if cerr := s.close(); cerr != nil {
		return fmt.Errorf("couldn't close sqlite index: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("couldn't optimize sqlite index: %w", err)
	}
	return nil
}

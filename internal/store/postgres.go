package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Postgres is the scale-out index on PostgreSQL (13 or newer). Its tables
// live in the connection's current schema, so one database can hold several
// indexes (set search_path in the DSN). Writers are serialised by a
// transaction-scoped advisory lock so that IDs become visible in increasing
// order and a reader paging with Query.AfterID never skips a record.
type Postgres struct {
	sqlDB
}

var postgresDialect = &dialect{
	placeholder: dollarPlaceholder,
	lock:        `SELECT pg_advisory_xact_lock(hashtextextended('custody/store/' || current_schema(), 0))`,
	// No cacheStmts: pgx keeps a prepared-statement cache per connection.
	migrations: []migration{
		{name: "evidence", stmts: append([]string{
			`CREATE TABLE evidence (
				id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				bundle_sha256 TEXT NOT NULL UNIQUE,
				bundle BYTEA NOT NULL,
				predicate_type TEXT NOT NULL,
				signer_key_id TEXT NOT NULL,
				signer_identity TEXT NOT NULL,
				signer_issuer TEXT NOT NULL,
				builder_id TEXT NOT NULL,
				source_uri TEXT NOT NULL,
				source_commit TEXT NOT NULL,
				build_id TEXT NOT NULL,
				log_index BIGINT NOT NULL,
				integrated_us BIGINT NOT NULL,
				indexed_us BIGINT NOT NULL,
				sort_us BIGINT NOT NULL)`,
			`CREATE TABLE evidence_subject (
				evidence_id BIGINT NOT NULL REFERENCES evidence (id),
				position INTEGER NOT NULL,
				name TEXT NOT NULL,
				alg TEXT NOT NULL,
				value TEXT NOT NULL,
				PRIMARY KEY (evidence_id, position, alg))`,
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
			`CREATE FUNCTION custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				RAISE EXCEPTION 'custody index is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
					USING ERRCODE = 'insufficient_privilege';
			END $$`,
		}, postgresAppendOnly("evidence", "evidence_subject", "schema_version")...)},
		{name: "deployment", stmts: append([]string{
			deploymentTable("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
			`CREATE INDEX deployment_environment ON deployment (environment, id)`,
		}, postgresAppendOnly("deployment")...)},
		{name: "evidence since indexes", stmts: sinceIndexes(
			"signer_key_id", "builder_id", "source_commit", "predicate_type")},
		{name: "incident", stmts: append(append([]string{
			incidentTable("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"),
		}, incidentIndexes...), postgresAppendOnly("incident")...)},
		{name: "first seen", stmts: append([]string{
			firstSeenTable("BYTEA", "BIGINT"),
		}, postgresAppendOnly("first_seen")...), fill: fillFirstSeen},
	},
}

// postgresAppendOnly returns the statements creating the triggers that
// reject UPDATE, DELETE and TRUNCATE on each table.
func postgresAppendOnly(tables ...string) []string {
	var stmts []string
	for _, t := range tables {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TRIGGER %[1]s_append_only BEFORE UPDATE OR DELETE ON %[1]s
				FOR EACH ROW EXECUTE FUNCTION custody_append_only()`, t),
			fmt.Sprintf(`CREATE TRIGGER %[1]s_no_truncate BEFORE TRUNCATE ON %[1]s
				FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()`, t))
	}
	return stmts
}

// OpenPostgres connects to the PostgreSQL database named by dsn (a
// postgres:// URL or key=value string, as libpq reads it) and migrates its
// schema to the newest version.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse postgres dsn: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't connect to postgres %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	if err := migrate(ctx, db, postgresDialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres index: %w", err)
	}
	return &Postgres{sqlDB{db: db, d: postgresDialect}}, nil
}

// Put is [SQLite.Put] on PostgreSQL.
func (s *Postgres) Put(ctx context.Context, e *Evidence) (int64, bool, error) { return s.put(ctx, e) }

// Get is [SQLite.Get] on PostgreSQL.
func (s *Postgres) Get(ctx context.Context, id int64) (*Evidence, error) { return s.get(ctx, id) }

// Search is [SQLite.Search] on PostgreSQL.
func (s *Postgres) Search(ctx context.Context, q Query) ([]*Evidence, error) { return s.search(ctx, q) }

// FirstSeen is [SQLite.FirstSeen] on PostgreSQL.
func (s *Postgres) FirstSeen(ctx context.Context, q FirstSeenQuery) (int64, error) {
	return s.firstSeen(ctx, q)
}

// Count is [SQLite.Count] on PostgreSQL.
func (s *Postgres) Count(ctx context.Context) (int64, error) { return s.count(ctx) }

// AppendDeployment is [SQLite.AppendDeployment] on PostgreSQL.
func (s *Postgres) AppendDeployment(ctx context.Context, d *Deployment) (int64, error) {
	return s.appendDeployment(ctx, d)
}

// Deployments is [SQLite.Deployments] on PostgreSQL.
func (s *Postgres) Deployments(ctx context.Context, q DeploymentQuery) ([]*Deployment, error) {
	return s.deployments(ctx, q)
}

// AppendIncidents is [SQLite.AppendIncidents] on PostgreSQL.
func (s *Postgres) AppendIncidents(ctx context.Context, rs []*IncidentRecord) ([]int64, error) {
	return s.appendIncidents(ctx, rs)
}

// Incidents is [SQLite.Incidents] on PostgreSQL.
func (s *Postgres) Incidents(ctx context.Context, q IncidentQuery) ([]*IncidentRecord, error) {
	return s.incidents(ctx, q)
}

// Close is [SQLite.Close] on PostgreSQL.
func (s *Postgres) Close() error { return s.close() }

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect holds what differs between the SQL backends.
type dialect struct {
	// placeholder returns the i'th (1-based) bind parameter.
	placeholder func(i int) string
	// migrations are the schema versions 1, 2, ... in order.
	migrations []migration
	// lock, when set, is run first in every writing transaction and
	// serialises writers, so IDs become visible in increasing order.
	lock string
	// cacheStmts keeps reads' statements prepared (see stmtCache), for
	// drivers that prepare every query from scratch.
	cacheStmts bool
	// noIndex, when set, marks a column so the planner does not use its
	// index (SQLite's unary +). SQLite's statistics keep an average per
	// index, not a histogram, so it takes predicate_type (a handful of
	// values, each shared by a third of the index) for as selective as a
	// builder or key (often seen once): a new builder's search then
	// walked every provenance record.
	noIndex func(col string) string
}

// sqlDB implements the index over database/sql; SQLite and Postgres wrap
// it.
type sqlDB struct {
	db *sql.DB
	d  *dialect
	// stmts holds prepared read statements when d.cacheStmts is set.
	stmts stmtCache
	// beforeCommit, when set (by tests only), runs after Put has written
	// its rows and before it commits; an error aborts the Put.
	beforeCommit func() error
}

const evidenceColumns = `id, bundle_sha256, bundle, predicate_type, signer_key_id, signer_identity,
	signer_issuer, builder_id, source_uri, source_commit, build_id, log_index, integrated_us, indexed_us`

// subjectChunk is how many subject rows one INSERT statement carries.
const subjectChunk = 200

func (s *sqlDB) put(ctx context.Context, e *Evidence) (int64, bool, error) {
	r, err := normalize(e)
	if err != nil {
		return 0, false, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't begin transaction: %w", err)
	}
	defer tx.Rollback()
	id, existed, err := s.insert(ctx, tx, r, time.Now())
	if err != nil || existed {
		return id, existed, err
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(); err != nil {
			return 0, false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("couldn't commit evidence: %w", err)
	}
	return id, false, nil
}

// insert writes r inside tx unless a record with the same bundle exists.
func (s *sqlDB) insert(ctx context.Context, tx *sql.Tx, r *record, now time.Time) (int64, bool, error) {
	p := s.d.placeholder
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return 0, false, fmt.Errorf("couldn't lock the index: %w", err)
		}
	}
	e := &r.e
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM evidence WHERE bundle_sha256 = `+p(1), e.BundleSHA256).Scan(&id)
	switch {
	case err == nil:
		return id, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return 0, false, fmt.Errorf("couldn't look up bundle: %w", err)
	}

	indexed := toMicros(now)
	sortUS := toMicros(e.IntegratedTime)
	if sortUS == 0 {
		sortUS = indexed
	}
	var ph []string
	for i := 1; i <= 14; i++ {
		ph = append(ph, p(i))
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO evidence (bundle_sha256, bundle, predicate_type, signer_key_id,
		signer_identity, signer_issuer, builder_id, source_uri, source_commit, build_id, log_index,
		integrated_us, indexed_us, sort_us) VALUES (`+strings.Join(ph, ", ")+`) RETURNING id`,
		e.BundleSHA256, e.Bundle, e.PredicateType, e.SignerKeyID,
		e.SignerIdentity, e.SignerIssuer, e.BuilderID, e.SourceURI, e.SourceCommit, e.BuildID, e.LogIndex,
		toMicros(e.IntegratedTime), indexed, sortUS).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't insert evidence: %w", err)
	}

	for start := 0; start < len(r.digests); start += subjectChunk {
		rows := r.digests[start:min(start+subjectChunk, len(r.digests))]
		var b strings.Builder
		b.WriteString(`INSERT INTO evidence_subject (evidence_id, position, name, alg, value) VALUES `)
		args := make([]any, 0, 5*len(rows))
		for i, d := range rows {
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&b, "(%s, %s, %s, %s, %s)", p(n+1), p(n+2), p(n+3), p(n+4), p(n+5))
			args = append(args, id, d.position, d.name, d.alg, d.value)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return 0, false, fmt.Errorf("couldn't insert subjects: %w", err)
		}
	}
	if len(s.d.migrations) < firstSeenVersion {
		return id, false, nil // an index of an older schema (tests make them)
	}
	var seen []seenRow
	for _, k := range firstSeenKeys(e) {
		seen = append(seen, seenRow{k, id})
	}
	if err := s.insertFirstSeen(ctx, tx, seen); err != nil {
		return 0, false, err
	}
	return id, false, nil
}

// query runs a read statement, prepared once when the dialect caches
// statements.
func (s *sqlDB) query(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	if s.d.cacheStmts {
		return s.stmts.query(ctx, s.db, stmt, args...)
	}
	return s.db.QueryContext(ctx, stmt, args...)
}

// close closes the cached statements and then the database.
func (s *sqlDB) close() error {
	serr := s.stmts.close()
	if err := s.db.Close(); err != nil {
		return err
	}
	return serr
}

func (s *sqlDB) get(ctx context.Context, id int64) (*Evidence, error) {
	rows, err := s.query(ctx, `SELECT `+evidenceColumns+` FROM evidence WHERE id = `+s.d.placeholder(1), id)
	if err != nil {
		return nil, fmt.Errorf("couldn't read evidence %d: %w", id, err)
	}
	es, err := s.scanEvidence(ctx, rows, 0)
	if err != nil {
		return nil, fmt.Errorf("couldn't read evidence %d: %w", id, err)
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	return es[0], nil
}

func (s *sqlDB) search(ctx context.Context, q Query) ([]*Evidence, error) {
	n, err := normalizeQuery(q)
	if err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return s.d.placeholder(len(args))
	}
	where = append(where, "id > "+arg(n.AfterID))
	if n.BeforeID > 0 {
		where = append(where, "id < "+arg(n.BeforeID))
	}
	switch {
	case n.alg != "" && n.SubjectName != "":
		where = append(where, "id IN (SELECT evidence_id FROM evidence_subject WHERE alg = "+arg(n.alg)+
			" AND value = "+arg(n.value)+" AND name = "+arg(n.SubjectName)+")")
	case n.alg != "":
		where = append(where, "id IN (SELECT evidence_id FROM evidence_subject WHERE alg = "+arg(n.alg)+
			" AND value = "+arg(n.value)+")")
	case n.SubjectName != "":
		where = append(where, "id IN (SELECT evidence_id FROM evidence_subject WHERE name = "+arg(n.SubjectName)+")")
	}
	predicateType := "predicate_type"
	if s.d.noIndex != nil && n.PredicateType != "" && (n.SignerKeyID != "" || n.SignerIdentity != "" ||
		n.BuilderID != "" || n.SourceURI != "" || n.SourceCommit != "" || n.BuildID != "") {
		predicateType = s.d.noIndex(predicateType)
	}
	for _, c := range []struct{ col, v string }{
		{predicateType, n.PredicateType},
		{"signer_key_id", n.SignerKeyID},
		{"signer_identity", n.SignerIdentity},
		{"builder_id", n.BuilderID},
		{"source_uri", n.SourceURI},
		{"source_commit", n.SourceCommit},
		{"build_id", n.BuildID},
	} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if len(n.ExcludePredicateTypes) > 0 {
		ph := make([]string, len(n.ExcludePredicateTypes))
		for i, t := range n.ExcludePredicateTypes {
			ph[i] = arg(t)
		}
		where = append(where, "predicate_type NOT IN ("+strings.Join(ph, ", ")+")")
	}
	if !n.Since.IsZero() {
		where = append(where, "sort_us >= "+arg(ceilMicros(n.Since)))
	}
	if !n.Until.IsZero() {
		where = append(where, "sort_us < "+arg(ceilMicros(n.Until)))
	}
	order := ` ORDER BY id LIMIT `
	if n.Newest {
		order = ` ORDER BY id DESC LIMIT `
	}
	stmt := `SELECT ` + evidenceColumns + ` FROM evidence WHERE ` + strings.Join(where, " AND ") + order + arg(n.Limit)
	rows, err := s.query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't search evidence: %w", err)
	}
	es, err := s.scanEvidence(ctx, rows, q.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't search evidence: %w", err)
	}
	return es, nil
}

// ceilMicros rounds t up to whole Unix microseconds, so that comparisons on
// stored microseconds agree with comparisons on t.
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Sub(time.UnixMicro(us)) > 0 {
		us++
	}
	return us
}

func (s *sqlDB) count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM evidence`).Scan(&n); err != nil {
		return 0, fmt.Errorf("couldn't count evidence: %w", err)
	}
	return n, nil
}

// scanEvidence reads evidence rows (closing them) and then their subjects,
// stopping after the row whose bundle brings the total to maxBytes when
// maxBytes is positive.
func (s *sqlDB) scanEvidence(ctx context.Context, rows *sql.Rows, maxBytes int64) ([]*Evidence, error) {
	defer rows.Close()
	var (
		es    []*Evidence
		byID  = map[int64]*Evidence{}
		total int64
	)
	for (maxBytes <= 0 || total < maxBytes) && rows.Next() {
		e := &Evidence{}
		var integrated, indexed int64
		if err := rows.Scan(&e.ID, &e.BundleSHA256, &e.Bundle, &e.PredicateType, &e.SignerKeyID, &e.SignerIdentity,
			&e.SignerIssuer, &e.BuilderID, &e.SourceURI, &e.SourceCommit, &e.BuildID, &e.LogIndex, &integrated, &indexed); err != nil {
			return nil, err
		}
		e.IntegratedTime = fromMicros(integrated)
		e.IndexedAt = fromMicros(indexed)
		es = append(es, e)
		byID[e.ID] = e
		total += int64(len(e.Bundle))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(es) == 0 {
		return nil, nil
	}

	// The IN list is padded to a power of two by repeating the last ID, so
	// that subject reads come in a few statement shapes (11 up to MaxLimit)
	// rather than one per page size.
	n := 1
	for n < len(es) {
		n *= 2
	}
	var b strings.Builder
	args := make([]any, n)
	b.WriteString(`SELECT evidence_id, position, name, alg, value FROM evidence_subject WHERE evidence_id IN (`)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.d.placeholder(i + 1))
		args[i] = es[min(i, len(es)-1)].ID
	}
	b.WriteString(`) ORDER BY evidence_id, position`)
	srows, err := s.query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read subjects: %w", err)
	}
	defer srows.Close()
	for srows.Next() {
		var (
			id, pos          int64
			name, alg, value string
		)
		if err := srows.Scan(&id, &pos, &name, &alg, &value); err != nil {
			return nil, fmt.Errorf("couldn't read subjects: %w", err)
		}
		e := byID[id]
		if e == nil {
			return nil, fmt.Errorf("subject row for evidence %d that was not asked for", id)
		}
		for int64(len(e.Subjects)) <= pos {
			e.Subjects = append(e.Subjects, Subject{Digests: map[string]string{}})
		}
		e.Subjects[pos].Name = name
		e.Subjects[pos].Digests[alg] = value
	}
	if err := srows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read subjects: %w", err)
	}
	return es, nil
}

// migration is one schema version.
type migration struct {
	name  string
	stmts []string
	// fill, when set, runs after stmts in the same transaction (a
	// backfill computed in Go).
	fill func(ctx context.Context, tx *sql.Tx, d *dialect) error
}

// sinceIndexes returns the statements of the schema version that replaces
// the index (field, id) of each field by (field, id, sort_us). The order is
// unchanged, so a search by one of the fields still pages by ID from the
// index, and Since/Until are tested in the index: only matching rows are
// read from the table. The indexes are rebuilt inside the migration's
// transaction, which keeps the evidence table locked until it commits.
// Callers list the fields literally: a released version never changes.
func sinceIndexes(fields ...string) []string {
	var stmts []string
	for _, f := range fields {
		stmts = append(stmts,
			`DROP INDEX evidence_`+f,
			`CREATE INDEX evidence_`+f+` ON evidence (`+f+`, id, sort_us)`)
	}
	return stmts
}

// migrate brings the schema up to the newest version in d.migrations. Every
// version applied is recorded in schema_version (one row per version, never
// changed), inside the same transaction as its statements. Later record kinds
// are added by appending a migration.
func migrate(ctx context.Context, db *sql.DB, d *dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("couldn't begin migration: %w", err)
	}
	defer tx.Rollback()
	if d.lock != "" {
		if _, err := tx.ExecContext(ctx, d.lock); err != nil {
			return fmt.Errorf("couldn't lock the schema: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_us BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("couldn't create schema_version: %w", err)
	}
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&cur); err != nil {
		return fmt.Errorf("couldn't read schema version: %w", err)
	}
	if int(cur.Int64) > len(d.migrations) {
		return fmt.Errorf("database schema version %d is newer than this custody understands (%d): upgrade custody", cur.Int64, len(d.migrations))
	}
	for v := int(cur.Int64) + 1; v <= len(d.migrations); v++ {
		m := d.migrations[v-1]
		for _, stmt := range m.stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("couldn't migrate schema to version %d (%s): %w", v, m.name, err)
			}
		}
		if m.fill != nil {
			if err := m.fill(ctx, tx, d); err != nil {
				return fmt.Errorf("couldn't migrate schema to version %d (%s): %w", v, m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_us) VALUES (`+
			d.placeholder(1)+`, `+d.placeholder(2)+`, `+d.placeholder(3)+`)`, v, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("couldn't record schema version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't commit migration: %w", err)
	}
	return nil
}

// schemaVersion returns the newest applied schema version.
func (s *sqlDB) schemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("couldn't read schema version: %w", err)
	}
	return int(v.Int64), nil
}

func dollarPlaceholder(i int) string { return "$" + strconv.Itoa(i) }

func questionPlaceholder(int) string { return "?" }

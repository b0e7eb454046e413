package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/custody-dev/custody/attest"
)

// First seen (schema version 5) answers, for a subject name, "did this
// builder, builder key or signing identity ever build it, and which record
// was the first?" with one point lookup, where a search of the evidence
// would read every record of the name (bench/redflags: the name's 10,000
// builds, three times, for a build whose builder changed). It is what red
// flags ask of every build that is unlike its recent lineage
// (docs/design/redflags-first-seen.md).
//
// The table holds one row per (subject name, kind, value) ever seen in
// attributed provenance: the SHA-256 of the four (firstSeenKey) and the ID
// of the first record that showed it. Put adds the rows of a record in the
// transaction that stores it (INSERT ... ON CONFLICT DO NOTHING, after the
// writers' lock, so the row kept is the smallest ID on every backend and
// with any number of writers); the migration fills it from the records of
// an index created before it. Like the rest of the index it is
// append-only: a record is never removed, so what was seen stays seen
// (quarantine is an incident record, not a deletion).

// FirstSeenKind is what a FirstSeenQuery asks about.
type FirstSeenKind string

// Kinds of FirstSeenQuery.
const (
	// FirstSeenBuilder: Value is a builder ID (Evidence.BuilderID).
	FirstSeenBuilder FirstSeenKind = "builder"
	// FirstSeenKey: Value is a signer key ID (Evidence.SignerKeyID, any
	// case).
	FirstSeenKey FirstSeenKind = "key"
	// FirstSeenIdentity: Value is a signer identity (Evidence.SignerIdentity)
	// and Issuer its issuer; both must be the same.
	FirstSeenIdentity FirstSeenKind = "identity"
)

// FirstSeenQuery asks for the first provenance record of SubjectName that
// had the builder, key or identity of Kind: Value (and Issuer).
type FirstSeenQuery struct {
	SubjectName string
	Kind        FirstSeenKind
	Value       string
	// Issuer is the signer issuer, with FirstSeenIdentity only.
	Issuer string
}

// firstSeenTypes are the predicate types first seen records: SLSA
// provenance, the records of builds.
var firstSeenTypes = []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02}

// firstSeenVersion is the schema version that adds first seen.
const firstSeenVersion = 5

// firstSeenChunk is how many rows one INSERT statement carries.
const firstSeenChunk = 250

// firstSeenKey is the stored key of (name, kind, value, issuer): the
// SHA-256 of the four, each prefixed by its length. A fixed 32 bytes, so
// that a long subject name and builder ID together never exceed what a
// database index entry may hold.
func firstSeenKey(name string, kind FirstSeenKind, value, issuer string) []byte {
	h := sha256.New()
	for _, f := range []string{"custody first seen v1", name, string(kind), value, issuer} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// firstSeenKeys returns the keys record e shows, each once: for each of
// its subject names, its builder, key and identity. Only attributed (a
// signer key or identity: verified) provenance with a builder counts; any
// other record shows none. This is the one rule of what first seen
// records: Put, the migration and Memory all apply it.
func firstSeenKeys(e *Evidence) [][]byte {
	attributed := e.SignerKeyID != "" || e.SignerIdentity != ""
	if !attributed || e.BuilderID == "" || !slices.Contains(firstSeenTypes, e.PredicateType) {
		return nil
	}
	var out [][]byte
	seen := map[string]bool{}
	for _, s := range e.Subjects {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		out = append(out, firstSeenKey(s.Name, FirstSeenBuilder, e.BuilderID, ""))
		if e.SignerKeyID != "" {
			out = append(out, firstSeenKey(s.Name, FirstSeenKey, strings.ToLower(e.SignerKeyID), ""))
		}
		if e.SignerIdentity != "" {
			out = append(out, firstSeenKey(s.Name, FirstSeenIdentity, e.SignerIdentity, e.SignerIssuer))
		}
	}
	return out
}

// key checks q and returns its stored key.
func (q FirstSeenQuery) key() ([]byte, error) {
	switch q.Kind {
	case FirstSeenBuilder, FirstSeenKey:
		if q.Issuer != "" {
			return nil, fmt.Errorf("%w: an issuer is asked for with a signer identity only", ErrInvalidQuery)
		}
	case FirstSeenIdentity:
	default:
		return nil, fmt.Errorf("%w: first seen kind %q is not builder, key or identity", ErrInvalidQuery, q.Kind)
	}
	if q.SubjectName == "" || q.Value == "" {
		return nil, fmt.Errorf("%w: first seen needs a subject name and a %s", ErrInvalidQuery, q.Kind)
	}
	v := q.Value
	if q.Kind == FirstSeenKey {
		v = strings.ToLower(v)
	}
	return firstSeenKey(q.SubjectName, q.Kind, v, q.Issuer), nil
}

func (s *sqlDB) firstSeen(ctx context.Context, q FirstSeenQuery) (int64, error) {
	k, err := q.key()
	if err != nil {
		return 0, err
	}
	rows, err := s.query(ctx, `SELECT evidence_id FROM first_seen WHERE key = `+s.d.placeholder(1), k)
	if err != nil {
		return 0, fmt.Errorf("couldn't read first seen: %w", err)
	}
	defer rows.Close()
	var id int64
	if rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return 0, fmt.Errorf("couldn't read first seen: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("couldn't read first seen: %w", err)
	}
	return id, nil
}

// seenRow is one first seen row to write.
type seenRow struct {
	key []byte
	id  int64
}

// insertFirstSeen writes rows inside tx, in order, keeping the rows of
// keys stored before: called after the writers' lock with rows in
// increasing ID order, so the row kept for a key is its smallest ID.
func (s *sqlDB) insertFirstSeen(ctx context.Context, tx *sql.Tx, rows []seenRow) error {
	p := s.d.placeholder
	for start := 0; start < len(rows); start += firstSeenChunk {
		chunk := rows[start:min(start+firstSeenChunk, len(rows))]
		var b strings.Builder
		b.WriteString(`INSERT INTO first_seen (key, evidence_id) VALUES `)
		args := make([]any, 0, 2*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "(%s, %s)", p(len(args)+1), p(len(args)+2))
			args = append(args, r.key, r.id)
		}
		b.WriteString(` ON CONFLICT DO NOTHING`)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("couldn't insert first seen: %w", err)
		}
	}
	return nil
}

// firstSeenTable returns the statements of schema version 5: the table
// (key a BLOB or BYTEA, ids of idType) and its backfill (fillFirstSeen).
func firstSeenTable(bytesType, idType string) string {
	return `CREATE TABLE first_seen (
		key ` + bytesType + ` NOT NULL PRIMARY KEY,
		evidence_id ` + idType + ` NOT NULL REFERENCES evidence (id))`
}

// backfillWindow is how many evidence IDs one backfill read covers.
const backfillWindow = 20000

// fillFirstSeen fills first seen from the evidence of an index created
// before it (schema version 5), in windows of IDs, oldest first, inside
// the migration's transaction: an index of 1,000,000 bundles reads each
// record once.
func fillFirstSeen(ctx context.Context, tx *sql.Tx, d *dialect) error {
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(id) FROM evidence`).Scan(&last); err != nil {
		return fmt.Errorf("couldn't read the last evidence id: %w", err)
	}
	p := d.placeholder
	stmt := `SELECT e.id, e.predicate_type, e.signer_key_id, e.signer_identity, e.signer_issuer, e.builder_id, s.name
		FROM evidence e JOIN evidence_subject s ON s.evidence_id = e.id
		WHERE e.id > ` + p(1) + ` AND e.id <= ` + p(2) + ` AND e.predicate_type IN (` + p(3) + `, ` + p(4) + `)
		AND e.builder_id <> '' ORDER BY e.id, s.position`
	s := &sqlDB{d: d}
	for after := int64(0); after < last.Int64; after += backfillWindow {
		es, err := readSeenWindow(ctx, tx, stmt, after, after+backfillWindow)
		if err != nil {
			return err
		}
		var rows []seenRow
		for _, e := range es {
			for _, k := range firstSeenKeys(e) {
				rows = append(rows, seenRow{k, e.ID})
			}
		}
		if err := s.insertFirstSeen(ctx, tx, rows); err != nil {
			return err
		}
	}
	return nil
}

// readSeenWindow reads the provenance records with IDs in (after, upto]
// with what firstSeenKeys reads of them, in ID order.
func readSeenWindow(ctx context.Context, tx *sql.Tx, stmt string, after, upto int64) ([]*Evidence, error) {
	rows, err := tx.QueryContext(ctx, stmt, after, upto, firstSeenTypes[0], firstSeenTypes[1])
	if err != nil {
		return nil, fmt.Errorf("couldn't read evidence for first seen: %w", err)
	}
	defer rows.Close()
	var es []*Evidence
	for rows.Next() {
		var (
			e    Evidence
			name string
		)
		if err := rows.Scan(&e.ID, &e.PredicateType, &e.SignerKeyID, &e.SignerIdentity, &e.SignerIssuer, &e.BuilderID, &name); err != nil {
			return nil, fmt.Errorf("couldn't read evidence for first seen: %w", err)
		}
		if len(es) == 0 || es[len(es)-1].ID != e.ID {
			es = append(es, &e)
		}
		cur := es[len(es)-1]
		cur.Subjects = append(cur.Subjects, Subject{Name: name})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read evidence for first seen: %w", err)
	}
	return es, nil
}

// FirstSeen is [SQLite.FirstSeen] in memory: a scan of every record, the
// general path the table is held to.
func (m *Memory) FirstSeen(ctx context.Context, q FirstSeenQuery) (int64, error) {
	k, err := q.key()
	if err != nil {
		return 0, err
	}
	var id int64
	err = m.read(ctx, func() {
		for _, e := range m.evidence {
			for _, ek := range firstSeenKeys(e) {
				if string(ek) == string(k) {
					id = e.ID
					return
				}
			}
		}
	})
	return id, err
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/store"
)

// Bulk loading: the Store API has only Put, one transaction per bundle,
// serialised by the backend's write lock, which fills 1,000,000 bundles in
// 20–30 minutes here. To measure lookups at the full size anyway, -load bulk
// writes the remaining corpus straight into the store's tables (after
// store.Open* created and migrated them), many bundles per transaction,
// encoding every row as internal/store does (lowercase hex, Unix
// microseconds, sort_us = integrated time). check then reads a sample of
// records back through the Store API and compares them with the corpus, so a
// drift between this loader and the store's encoding fails the run.

const bulkBatch = 5000

func bulkFill(ctx context.Context, c config, d *db, n int, out io.Writer) (fillResult, error) {
	var r fillResult
	have, err := d.s.Count(ctx)
	if err != nil {
		return r, err
	}
	r.before = int(have)
	start := time.Now()
	switch c.backend {
	case "sqlite":
		err = bulkSQLite(ctx, d.bare.(*bareSQLite).path, int(have), n, out)
	case "postgres":
		err = bulkPostgres(ctx, d.bare.(*barePostgres).dsn, int(have), n, out)
	}
	if err != nil {
		return r, err
	}
	r.dur = time.Since(start)
	r.created = n - int(have)
	cnt, err := d.s.Count(ctx)
	if err != nil {
		return r, err
	}
	if int(cnt) != n {
		return r, fmt.Errorf("%s holds %d records after bulk loading to %d", d.name, cnt, n)
	}
	d.n = n
	return r, nil
}

type bulkRow struct {
	e       *store.Evidence
	sha     string
	integUS int64
}

func bulkRecord(i, n int) bulkRow {
	e := evidence(i, n)
	sum := sha256.Sum256(e.Bundle)
	return bulkRow{e: e, sha: hex.EncodeToString(sum[:]), integUS: e.IntegratedTime.UnixMicro()}
}

const bulkEvidenceCols = `bundle_sha256, bundle, predicate_type, signer_key_id, signer_identity, signer_issuer,
	builder_id, source_uri, source_commit, build_id, log_index, integrated_us, indexed_us, sort_us`

func bulkSQLite(ctx context.Context, path string, from, n int, out io.Writer) error {
	db, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_busy_timeout=30000&_foreign_keys=1&_synchronous=OFF")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	last := time.Now()
	for lo := from; lo < n; lo += bulkBatch {
		hi := min(n, lo+bulkBatch)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO evidence (`+bulkEvidenceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			tx.Rollback()
			return err
		}
		sub, err := tx.PrepareContext(ctx, `INSERT INTO evidence_subject (evidence_id, position, name, alg, value) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			tx.Rollback()
			return err
		}
		now := time.Now().UnixMicro()
		for i := lo; i < hi; i++ {
			b := bulkRecord(i, n)
			e := b.e
			res, err := ins.ExecContext(ctx, b.sha, e.Bundle, e.PredicateType, e.SignerKeyID, e.SignerIdentity, e.SignerIssuer,
				e.BuilderID, e.SourceURI, e.SourceCommit, e.BuildID, e.LogIndex, b.integUS, now, b.integUS)
			if err != nil {
				tx.Rollback()
				return fmt.Errorf("bulk insert %d: %w", i, err)
			}
			id, err := res.LastInsertId()
			if err != nil {
				tx.Rollback()
				return err
			}
			for pos, s := range e.Subjects {
				if _, err := sub.ExecContext(ctx, id, pos, s.Name, "sha256", s.Digests["sha256"]); err != nil {
					tx.Rollback()
					return fmt.Errorf("bulk insert subject of %d: %w", i, err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if time.Since(last) > 15*time.Second {
			fmt.Fprintf(out, "  bulk load: %d/%d\n", hi, n)
			last = time.Now()
		}
	}
	return nil
}

func bulkPostgres(ctx context.Context, dsn string, from, n int, out io.Writer) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	evCols := []string{"id", "bundle_sha256", "bundle", "predicate_type", "signer_key_id", "signer_identity", "signer_issuer",
		"builder_id", "source_uri", "source_commit", "build_id", "log_index", "integrated_us", "indexed_us", "sort_us"}
	subCols := []string{"evidence_id", "position", "name", "alg", "value"}
	last := time.Now()
	for lo := from; lo < n; lo += bulkBatch {
		hi := min(n, lo+bulkBatch)
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		// IDs come from the identity sequence, as the store's INSERTs
		// take them, so a later Put continues after them.
		rows, err := tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('evidence', 'id')) FROM generate_series(1, $1)`, hi-lo)
		if err != nil {
			tx.Rollback(ctx)
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			tx.Rollback(ctx)
			return err
		}
		slices.Sort(ids)
		now := time.Now().UnixMicro()
		var evRows, subRows [][]any
		for i := lo; i < hi; i++ {
			b := bulkRecord(i, n)
			e, id := b.e, ids[i-lo]
			evRows = append(evRows, []any{id, b.sha, e.Bundle, e.PredicateType, e.SignerKeyID, e.SignerIdentity, e.SignerIssuer,
				e.BuilderID, e.SourceURI, e.SourceCommit, e.BuildID, e.LogIndex, b.integUS, now, b.integUS})
			for p, s := range e.Subjects {
				subRows = append(subRows, []any{id, int32(p), s.Name, "sha256", s.Digests["sha256"]})
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"evidence"}, evCols, pgx.CopyFromRows(evRows)); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("bulk copy %d..%d: %w", lo, hi-1, err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"evidence_subject"}, subCols, pgx.CopyFromRows(subRows)); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("bulk copy subjects %d..%d: %w", lo, hi-1, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		if time.Since(last) > 15*time.Second {
			fmt.Fprintf(out, "  bulk load: %d/%d\n", hi, n)
			last = time.Now()
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE evidence; ANALYZE evidence_subject`); err != nil {
		return err
	}
	return nil
}

// check reads k random records of the index back through the Store API (by
// build ID) and compares them with the corpus.
func check(ctx context.Context, d *db, total, k int) error {
	r := rand.New(rand.NewPCG(7, uint64(d.n)))
	for range k {
		i := r.IntN(d.n)
		want := evidence(i, total)
		got, err := d.s.Search(ctx, store.Query{BuildID: want.BuildID})
		if err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("record %d: %d records with its build ID, want 1", i, len(got))
		}
		g := got[0]
		if !bytes.Equal(g.Bundle, want.Bundle) || g.PredicateType != want.PredicateType || g.SignerKeyID != want.SignerKeyID ||
			g.BuilderID != want.BuilderID || g.SourceURI != want.SourceURI || g.SourceCommit != want.SourceCommit ||
			g.LogIndex != want.LogIndex || !g.IntegratedTime.Equal(want.IntegratedTime) || len(g.Subjects) != len(want.Subjects) {
			return fmt.Errorf("record %d reads back as %+v, want %+v", i, g, want)
		}
		for j, s := range want.Subjects {
			if g.Subjects[j].Name != s.Name || len(g.Subjects[j].Digests) != 1 || g.Subjects[j].Digests["sha256"] != s.Digests["sha256"] {
				return fmt.Errorf("record %d subject %d reads back as %+v, want %+v", i, j, g.Subjects[j], s)
			}
		}
		// The record must be found by each of its digests too.
		for _, s := range want.Subjects {
			es, err := d.s.Search(ctx, store.Query{Digest: "sha256:" + s.Digests["sha256"]})
			if err != nil {
				return err
			}
			found := false
			for _, e := range es {
				found = found || e.ID == g.ID
			}
			if !found {
				return fmt.Errorf("record %d not found by its digest %s", i, s.Digests["sha256"])
			}
		}
	}
	return nil
}

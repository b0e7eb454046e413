package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
)

// SeenEvidence returns record n of a mix that varies everything first
// seen depends on: subject names (one or two, a name twice), predicate
// type (SLSA v1, v0.2, an SBOM), builder (or none), key, identity and
// issuer, and records with no signer (unverified).
func SeenEvidence(n int) *store.Evidence {
	e := Evidence(n)
	names := []string{"a", "b", "c"}
	e.Subjects = []store.Subject{{Name: names[n%3], Digests: map[string]string{"sha256": Digest(fmt.Sprint(n))}}}
	switch n % 5 {
	case 1:
		e.Subjects = append(e.Subjects, store.Subject{Name: names[(n+1)%3], Digests: map[string]string{"sha256": Digest(fmt.Sprint("x", n))}})
	case 3:
		e.Subjects = append(e.Subjects, store.Subject{Name: names[n%3], Digests: map[string]string{"sha512": Digest(fmt.Sprint("y", n))}})
	}
	e.PredicateType = []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02, attest.PredicateSLSAv1, attest.PredicateCycloneDX}[n%4]
	e.BuilderID = []string{"b0", "b1", "b0", "b2", ""}[n/2%5]
	e.SignerKeyID, e.SignerIdentity, e.SignerIssuer = "", "", ""
	switch n / 3 % 4 {
	case 0:
		e.SignerKeyID = Key(fmt.Sprint("k", n/7%2))
	case 1:
		e.SignerIdentity, e.SignerIssuer = "i0", fmt.Sprint("x", n/11%2)
	case 2:
		e.SignerKeyID, e.SignerIdentity, e.SignerIssuer = Key("k2"), "i1", "x0"
	}
	return e
}

// SeenQueries are the first seen queries that SeenEvidence's records
// answer (or not: a name, builder, key or issuer never seen is among them).
func SeenQueries() []store.FirstSeenQuery {
	var qs []store.FirstSeenQuery
	for _, name := range []string{"a", "b", "c", "zz"} {
		for _, b := range []string{"b0", "b1", "b2", "bx"} {
			qs = append(qs, store.FirstSeenQuery{SubjectName: name, Kind: store.FirstSeenBuilder, Value: b})
		}
		for _, k := range []string{Key("k0"), strings.ToUpper(Key("k1")), Key("k2"), Key("kx")} {
			qs = append(qs, store.FirstSeenQuery{SubjectName: name, Kind: store.FirstSeenKey, Value: k})
		}
		for _, id := range []string{"i0", "i1", "ix"} {
			for _, iss := range []string{"x0", "x1", ""} {
				qs = append(qs, store.FirstSeenQuery{SubjectName: name, Kind: store.FirstSeenIdentity, Value: id, Issuer: iss})
			}
		}
	}
	return qs
}

// FirstSeenBySearch answers q with Search alone, the general path first
// seen is held to: the smallest ID of the attributed SLSA provenance with
// a builder, a subject named q.SubjectName and q's builder, key or
// identity and issuer, or 0.
func FirstSeenBySearch(t testing.TB, s interface {
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
}, q store.FirstSeenQuery) int64 {
	t.Helper()
	sq := store.Query{SubjectName: q.SubjectName, Limit: store.MaxLimit}
	switch q.Kind {
	case store.FirstSeenBuilder:
		sq.BuilderID = q.Value
	case store.FirstSeenKey:
		sq.SignerKeyID = q.Value
	case store.FirstSeenIdentity:
		sq.SignerIdentity = q.Value
	}
	var first int64
	for _, pt := range []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02} {
		sq.PredicateType, sq.AfterID = pt, 0
		for {
			page, err := s.Search(context.Background(), sq)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			for _, e := range page {
				ok := (e.SignerKeyID != "" || e.SignerIdentity != "") && e.BuilderID != "" &&
					(q.Kind != store.FirstSeenIdentity || e.SignerIssuer == q.Issuer)
				if ok && (first == 0 || e.ID < first) {
					first = e.ID
				}
			}
			if len(page) < sq.Limit {
				break
			}
			sq.AfterID = page[len(page)-1].ID
		}
	}
	return first
}

// CheckFirstSeen checks every SeenQueries answer of s against
// FirstSeenBySearch.
func CheckFirstSeen(t testing.TB, s interface {
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	FirstSeen(ctx context.Context, q store.FirstSeenQuery) (int64, error)
}) {
	t.Helper()
	found := 0
	for _, q := range SeenQueries() {
		got, err := s.FirstSeen(context.Background(), q)
		if err != nil {
			t.Fatalf("FirstSeen(%+v): %v", q, err)
		}
		if want := FirstSeenBySearch(t, s, q); got != want {
			t.Errorf("FirstSeen(%+v) = %d, want %d (by search)", q, got, want)
		}
		if got > 0 {
			found++
		}
	}
	if found < 20 {
		t.Errorf("only %d queries found a record: the mix does not exercise first seen", found)
	}
}

func testFirstSeen(t *testing.T, s Store) {
	ctx := context.Background()
	for n := range 90 {
		put(t, s, SeenEvidence(n))
	}
	// a record put again changes nothing
	if _, existed, err := s.Put(ctx, SeenEvidence(3)); err != nil || !existed {
		t.Fatalf("Put again = %v, %v", existed, err)
	}
	CheckFirstSeen(t, s)
	for _, q := range []store.FirstSeenQuery{
		{Kind: store.FirstSeenBuilder, Value: "b0"},
		{SubjectName: "a", Kind: store.FirstSeenBuilder},
		{SubjectName: "a", Kind: "source", Value: "git+https://github.com/org/repo"},
		{SubjectName: "a", Kind: store.FirstSeenKey, Value: Key("k0"), Issuer: "x0"},
	} {
		if id, err := s.FirstSeen(ctx, q); !errors.Is(err, store.ErrInvalidQuery) {
			t.Errorf("FirstSeen(%+v) = %d, %v; want ErrInvalidQuery", q, id, err)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.FirstSeen(canceled, SeenQueries()[0]); err == nil {
		t.Error("FirstSeen with a canceled context succeeded")
	}
}

// testFirstSeenConcurrent: writers putting records of the same names,
// builders and keys at once keep, for each, the first record's ID, once.
func testFirstSeenConcurrent(t *testing.T, s Store) {
	PutConcurrently(t, []Store{s}, 8, 90)
	CheckFirstSeen(t, s)
}

// PutConcurrently puts SeenEvidence(0..n-1) from workers goroutines at
// once, each record by two of them, through the stores in turn (replicas
// of one database).
func PutConcurrently(t testing.TB, stores []Store, workers, n int) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range n {
				if i%(workers/2) != w/2 {
					continue
				}
				if _, _, err := s.Put(context.Background(), SeenEvidence(i)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
}

// SQLiteBeforeFirstSeen makes the closed SQLite index at path what a
// custody without first seen (schema version 4) left: no first_seen table,
// no version 5. Opening it again runs the migration that fills it.
func SQLiteBeforeFirstSeen(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var trigger string
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'schema_version_no_delete'`).Scan(&trigger); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`DROP TRIGGER schema_version_no_delete`,
		`DELETE FROM schema_version WHERE version >= 5`,
		trigger,
		`DROP TABLE first_seen`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

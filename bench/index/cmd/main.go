// Command cmd fills a custody evidence index (internal/store, SQLite or
// PostgreSQL) with a synthetic corpus of N distinct bundles through the
// public Store API, then measures lookups through the Store API against bare
// prepared SQL on the same database, and against the same lookups on a
// 1,000-bundle index. See bench/index/README.md.
//
//	go run ./bench/index/cmd -backend sqlite -db $TMPDIR/idx.db -n 1000000 -reuse
//	go run ./bench/index/cmd -backend postgres -dsn "$(scripts/postgres)" -n 1000000 -reuse
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/custody-dev/custody/internal/store"
)

type config struct {
	backend   string
	db        string // SQLite file
	dsn       string // PostgreSQL DSN
	n         int
	small     int
	reuse     bool
	workers   int
	queries   int
	keys      int
	md        string
	fillOnly  bool
	fillLimit time.Duration
	bulk      bool
	fillLog   string
}

func main() {
	var c config
	flag.StringVar(&c.backend, "backend", "sqlite", "sqlite or postgres")
	flag.StringVar(&c.db, "db", filepath.Join(os.TempDir(), "custody-bench-index.db"), "SQLite file (the small index goes to FILE-small.db)")
	flag.StringVar(&c.dsn, "dsn", os.Getenv("CUSTODY_BENCH_POSTGRES"), "PostgreSQL DSN (tables go to schema bench_N)")
	flag.IntVar(&c.n, "n", 1_000_000, "bundles in the big index")
	flag.IntVar(&c.small, "small", 1000, "bundles in the small comparison index (0: skip)")
	flag.BoolVar(&c.reuse, "reuse", false, "reuse (and complete) an existing index instead of refusing it")
	flag.IntVar(&c.workers, "workers", 8, "concurrent Put callers while filling")
	flag.IntVar(&c.queries, "queries", 10_000, "digest lookups per method")
	flag.IntVar(&c.keys, "keys", 30, "ordinary signer keys to page through (plus all busy keys)")
	flag.StringVar(&c.md, "md", "", "also write the results as Markdown to this file")
	flag.BoolVar(&c.fillOnly, "fill-only", false, "fill the index and stop")
	flag.DurationVar(&c.fillLimit, "fill-limit", 0, "stop Put-filling after this long (0: no limit); measure what is there unless -bulk")
	flag.StringVar(&c.fillLog, "fill-log", "", "append each Put phase (puts, seconds, workers) to this file and report the sum over all of them")
	flag.BoolVar(&c.bulk, "bulk", false, "after Put-filling, bulk load the rest of the corpus with bare SQL (see bulk.go)")
	flag.Parse()
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/index:", err)
		os.Exit(1)
	}
}

// index is what the benchmark uses of a store backend (store.SQLite,
// store.Postgres).
type index interface {
	Put(ctx context.Context, e *store.Evidence) (int64, bool, error)
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	Count(ctx context.Context) (int64, error)
	Close() error
}

// db is one index under test: the store and a bare connection to the same
// database for the baseline queries.
type db struct {
	s    index
	bare bareDB
	n    int // records it holds (a prefix of the corpus)
	name string
}

func open(ctx context.Context, c config, n int) (*db, error) {
	switch c.backend {
	case "sqlite":
		path := c.db
		if n != c.n {
			path = strings.TrimSuffix(path, ".db") + fmt.Sprintf("-%d.db", n)
		}
		s, err := store.OpenSQLite(path)
		if err != nil {
			return nil, err
		}
		b, err := openBareSQLite(path)
		if err != nil {
			s.Close()
			return nil, err
		}
		return &db{s: s, bare: b, name: path}, nil
	case "postgres":
		if c.dsn == "" {
			return nil, errors.New("-dsn (or CUSTODY_BENCH_POSTGRES) is required for postgres; scripts/postgres prints one")
		}
		schema := fmt.Sprintf("bench_%d", n)
		conn, err := pgx.Connect(ctx, c.dsn)
		if err != nil {
			return nil, err
		}
		_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema)
		conn.Close(ctx)
		if err != nil {
			return nil, err
		}
		dsn, err := withSearchPath(c.dsn, schema)
		if err != nil {
			return nil, err
		}
		s, err := store.OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, err
		}
		b, err := openBarePostgres(ctx, dsn)
		if err != nil {
			s.Close()
			return nil, err
		}
		return &db{s: s, bare: b, name: "schema " + schema}, nil
	}
	return nil, fmt.Errorf("unknown backend %q (sqlite or postgres)", c.backend)
}

func withSearchPath(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " search_path=" + schema, nil // key=value form
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (d *db) close() {
	d.bare.close()
	d.s.Close()
}

// fill makes the index hold records [0, n) of a corpus of n, through
// concurrent Put calls.
func fill(ctx context.Context, c config, d *db, n int, out io.Writer) (fillResult, error) {
	var r fillResult
	have, err := d.s.Count(ctx)
	if err != nil {
		return r, err
	}
	r.before = int(have)
	if have > 0 && !c.reuse {
		return r, fmt.Errorf("%s already holds %d records: pass -reuse, or delete it", d.name, have)
	}
	if int(have) >= n {
		d.n = n
		return r, nil
	}
	// A previous run that was killed may have left holes among its last
	// in-flight records; Put is idempotent, so redo them.
	from := max(0, int(have)-c.workers)
	var (
		next    atomic.Int64
		done    atomic.Int64
		created atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		ferr    error
	)
	next.Store(int64(from))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var deadline time.Time
	if c.fillLimit > 0 {
		deadline = start.Add(c.fillLimit)
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		last, lastT := int64(0), start
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				dn := done.Load()
				fmt.Fprintf(out, "  fill %s: %d/%d  %.0f Puts/s now, %.0f/s overall\n", d.name, from+int(dn), n,
					float64(dn-last)/now.Sub(lastT).Seconds(), float64(dn)/now.Sub(start).Seconds())
				last, lastT = dn, now
			}
		}
	}()
	// Workers take record numbers in order; at the fill limit they stop
	// taking new ones and finish the ones they hold, so the index holds
	// exactly the corpus prefix [0, end).
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				_, existed, err := d.s.Put(ctx, evidence(i, n))
				if err != nil {
					errOnce.Do(func() { ferr = fmt.Errorf("put %d: %w", i, err); cancel() })
					return
				}
				if !existed {
					created.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if ferr != nil {
		return r, ferr
	}
	r.dur = time.Since(start)
	r.puts = int(done.Load())
	r.created = int(created.Load())
	d.n = min(n, max(int(have), int(next.Load())))
	if d.n < n {
		r.truncated = true
	}
	cnt, err := d.s.Count(ctx)
	if err != nil {
		return r, err
	}
	if int(cnt) != d.n {
		return r, fmt.Errorf("%s holds %d records after filling records 0..%d: not a prefix of the corpus", d.name, cnt, d.n-1)
	}
	return r, nil
}

type fillResult struct {
	before, puts, created int
	dur                   time.Duration
	truncated             bool
}

func (f fillResult) rate() float64 { return float64(f.puts) / f.dur.Seconds() }

func run(ctx context.Context, c config) error {
	out := os.Stdout
	rep := &report{backend: c.backend, workers: c.workers}

	var small *db
	if c.small > 0 && !c.fillOnly {
		var err error
		if small, err = open(ctx, c, c.small); err != nil {
			return err
		}
		defer small.close()
		sc := c
		sc.reuse = true // the small index is cheap and always the same
		sc.fillLimit = 0
		fr, err := fill(ctx, sc, small, c.small, out)
		if err != nil {
			return err
		}
		small.n = c.small
		fmt.Fprintf(out, "small index: %d bundles (%s), filled in %v\n", small.n, small.name, fr.dur.Round(time.Millisecond))
	}

	big, err := open(ctx, c, c.n)
	if err != nil {
		return err
	}
	defer big.close()
	fmt.Fprintf(out, "filling %s to %d bundles with %d concurrent Put callers\n", big.name, c.n, c.workers)
	fr, err := fill(ctx, c, big, c.n, out)
	if err != nil {
		return err
	}
	rep.fill = fr
	if c.fillLog != "" {
		if rep.putPhases, err = logFill(c.fillLog, fr, c.workers); err != nil {
			return err
		}
	}
	if c.bulk && big.n < c.n {
		fmt.Fprintf(out, "bulk loading records %d..%d\n", big.n, c.n-1)
		if rep.bulk, err = bulkFill(ctx, c, big, c.n, out); err != nil {
			return err
		}
		fmt.Fprintf(out, "bulk load: %d records in %v\n", rep.bulk.created, rep.bulk.dur.Round(time.Second))
	}
	rep.n, rep.target = big.n, c.n
	rep.version = big.bare.version(ctx)
	if err := check(ctx, big, c.n, 300); err != nil {
		return fmt.Errorf("the index does not hold the corpus: %w", err)
	}
	if fr.puts > 0 {
		fmt.Fprintf(out, "fill: %d Puts (%d new) in %v: %.0f Puts/s; full %d would take %v\n",
			fr.puts, fr.created, fr.dur.Round(time.Second), fr.rate(), c.n,
			(time.Duration(float64(c.n)/fr.rate()) * time.Second).Round(time.Second))
	} else {
		fmt.Fprintf(out, "fill: reused %d existing bundles\n", fr.before)
	}
	if c.fillOnly {
		return nil
	}
	fmt.Fprintf(out, "measuring on %d bundles (corpus of %d)\n", big.n, c.n)
	rep.big = measure(ctx, c, big, c.n, out)
	if small != nil {
		sc := c
		sc.queries = min(c.queries, 2000)
		rep.small = measure(ctx, sc, small, c.small, out)
	}
	rep.print(out)
	if c.md != "" {
		f, err := os.Create(c.md)
		if err != nil {
			return err
		}
		rep.markdown(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// lat collects latencies.
type lat []time.Duration

func (l lat) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(len(s)-1, i))]
}

func (l lat) mean() time.Duration {
	var t time.Duration
	for _, d := range l {
		t += d
	}
	return t / time.Duration(max(1, len(l)))
}

// results of one index.
type results struct {
	n int
	// digest lookups
	dStore, dBare, dBareIdx lat
	dRecords                float64 // mean records per lookup
	// everything signed by K, per class of key
	keys []keyResult
	// K since T
	since []sinceResult
}

type keyResult struct {
	class       string
	keys        int
	recs        []int // records per key
	store, bare lat   // total time per key
	bareIDs     lat   // the key's IDs only, from the index
	pagesPerKey float64
}

type sinceResult struct {
	class, window string
	recs          []int
	store, bare   lat
}

// prefix returns a random existing digest of a corpus prefix of n records.
func randomDigest(r *rand.Rand, have, total int) string {
	p := provenanceOf(r.IntN(have))
	return "sha256:" + artifactDigest(p, r.IntN(subjectsOf(p)))
}

func measure(ctx context.Context, c config, d *db, total int, out io.Writer) *results {
	res := &results{n: d.n}
	r := rand.New(rand.NewPCG(uint64(d.n), 42))
	fmt.Fprintf(out, "[%d] digest lookups: %d per method, interleaved (store API, bare full, bare index-only)\n", d.n, c.queries)
	// Warm up caches and connections.
	for range min(500, c.queries) {
		dg := randomDigest(r, d.n, total)
		must(d.s.Search(ctx, store.Query{Digest: dg}))
		must(d.bare.byDigest(ctx, dg))
		must(d.bare.byDigestIndexOnly(ctx, dg))
	}
	var recs int
	for range c.queries {
		dg := randomDigest(r, d.n, total)
		t := time.Now()
		es := must(d.s.Search(ctx, store.Query{Digest: dg}))
		res.dStore = append(res.dStore, time.Since(t))
		if len(es) == 0 {
			panic(fmt.Sprintf("no evidence for %s", dg))
		}
		recs += len(es)

		dg = randomDigest(r, d.n, total)
		t = time.Now()
		if must(d.bare.byDigest(ctx, dg)) == 0 {
			panic(fmt.Sprintf("bare: no evidence for %s", dg))
		}
		res.dBare = append(res.dBare, time.Since(t))

		dg = randomDigest(r, d.n, total)
		t = time.Now()
		must(d.bare.byDigestIndexOnly(ctx, dg))
		res.dBareIdx = append(res.dBareIdx, time.Since(t))
	}
	res.dRecords = float64(recs) / float64(c.queries)

	// Everything signed by K: all busy keys and a sample of ordinary keys.
	classes := []struct {
		name string
		keys []int
	}{{"busy (10 CI keys)", nil}, {"ordinary", nil}}
	for k := range busyKeys {
		classes[0].keys = append(classes[0].keys, k)
	}
	for _, k := range r.Perm(nKeys - busyKeys)[:c.keys] {
		classes[1].keys = append(classes[1].keys, busyKeys+k)
	}
	end := timeOf(d.n - 1)
	for _, cl := range classes {
		kr := keyResult{class: cl.name, keys: len(cl.keys)}
		var pages int
		for _, k := range cl.keys {
			kid := keyID(k)
			t := time.Now()
			n, p := pageAll(ctx, d.s, store.Query{SignerKeyID: kid})
			kr.store = append(kr.store, time.Since(t))
			t = time.Now()
			bn := must(d.bare.byKey(ctx, kid, 0))
			kr.bare = append(kr.bare, time.Since(t))
			t = time.Now()
			in := must(d.bare.byKeyIDs(ctx, kid))
			kr.bareIDs = append(kr.bareIDs, time.Since(t))
			if in != n {
				panic(fmt.Sprintf("key %d: store returned %d records, bare IDs %d", k, n, in))
			}
			if bn != n {
				panic(fmt.Sprintf("key %d: store returned %d records, bare %d", k, n, bn))
			}
			kr.recs = append(kr.recs, n)
			pages += p
		}
		kr.pagesPerKey = float64(pages) / float64(len(cl.keys))
		res.keys = append(res.keys, kr)
		fmt.Fprintf(out, "[%d] everything signed by K, %s: %d keys done\n", d.n, cl.name, len(cl.keys))

		for _, w := range []struct {
			name string
			d    time.Duration
		}{{"1 day", 24 * time.Hour}, {"7 days", 7 * 24 * time.Hour}, {"30 days", 30 * 24 * time.Hour}} {
			sr := sinceResult{class: cl.name, window: w.name}
			since := end.Add(-w.d)
			for _, k := range cl.keys {
				kid := keyID(k)
				t := time.Now()
				n, _ := pageAll(ctx, d.s, store.Query{SignerKeyID: kid, Since: since})
				sr.store = append(sr.store, time.Since(t))
				t = time.Now()
				bn := must(d.bare.byKey(ctx, kid, since.UnixMicro()))
				sr.bare = append(sr.bare, time.Since(t))
				if bn != n {
					panic(fmt.Sprintf("key %d since %v: store returned %d records, bare %d", k, since, n, bn))
				}
				sr.recs = append(sr.recs, n)
			}
			res.since = append(res.since, sr)
		}
	}
	return res
}

// pageAll pages through every record matching q with the largest page and
// returns how many records and pages there were.
func pageAll(ctx context.Context, s index, q store.Query) (n, pages int) {
	q.Limit = store.MaxLimit
	for {
		es := must(s.Search(ctx, q))
		pages++
		n += len(es)
		if len(es) < store.MaxLimit {
			return n, pages
		}
		q.AfterID = es[len(es)-1].ID
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// bareDB runs the baseline queries with prepared statements, reading the
// same columns the Store returns.
type bareDB interface {
	// byDigest reads every record with a subject of that digest, with all
	// its subjects (one query); it returns the number of records.
	byDigest(ctx context.Context, digest string) (int, error)
	// byDigestIndexOnly reads only the matching IDs.
	byDigestIndexOnly(ctx context.Context, digest string) (int, error)
	// byKey reads every record signed by key (with sort time >= sinceUS),
	// with all its subjects, in one query.
	byKey(ctx context.Context, key string, sinceUS int64) (int, error)
	// byKeyIDs reads only the IDs of the key's records.
	byKeyIDs(ctx context.Context, key string) (int, error)
	// version names the database server or library.
	version(ctx context.Context) string
	close()
}

const (
	bareCols = `e.id, e.bundle_sha256, e.bundle, e.predicate_type, e.signer_key_id, e.signer_identity,
	e.signer_issuer, e.builder_id, e.source_uri, e.source_commit, e.build_id, e.log_index, e.integrated_us, e.indexed_us,
	s.position, s.name, s.alg, s.value`
	bareDigestQ = `SELECT ` + bareCols + ` FROM evidence e JOIN evidence_subject s ON s.evidence_id = e.id
	WHERE e.id IN (SELECT evidence_id FROM evidence_subject WHERE alg = $1 AND value = $2) ORDER BY e.id, s.position`
	bareDigestIdxQ = `SELECT evidence_id FROM evidence_subject WHERE alg = $1 AND value = $2`
	bareKeyIDsQ    = `SELECT id FROM evidence WHERE signer_key_id = $1`
	bareKeyQ       = `SELECT ` + bareCols + ` FROM evidence e JOIN evidence_subject s ON s.evidence_id = e.id
	WHERE e.signer_key_id = $1 AND e.sort_us >= $2 ORDER BY e.id, s.position`
)

// row is the scan target of the bare queries.
type row struct {
	id, logIndex, integrated, indexed, pos                  int64
	sha, ptype, key, ident, issuer, builder, uri, commit, b string
	bundle                                                  []byte
	name, alg, value                                        string
}

func (r *row) dest() []any {
	return []any{&r.id, &r.sha, &r.bundle, &r.ptype, &r.key, &r.ident, &r.issuer, &r.builder, &r.uri, &r.commit, &r.b,
		&r.logIndex, &r.integrated, &r.indexed, &r.pos, &r.name, &r.alg, &r.value}
}

type bareSQLite struct {
	path                   string
	db                     *sql.DB
	digest, digestIdx, key *sql.Stmt
	keyIDs                 *sql.Stmt
}

func openBareSQLite(path string) (*bareSQLite, error) {
	db, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_busy_timeout=30000")
	if err != nil {
		return nil, err
	}
	b := &bareSQLite{db: db, path: path}
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{{&b.digest, bareDigestQ}, {&b.digestIdx, bareDigestIdxQ}, {&b.key, bareKeyQ}, {&b.keyIDs, bareKeyIDsQ}} {
		if *p.s, err = db.Prepare(p.q); err != nil {
			db.Close()
			return nil, fmt.Errorf("prepare %q: %w", p.q, err)
		}
	}
	return b, nil
}

func countRows(rows *sql.Rows, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var r row
	n, last := 0, int64(-1)
	cols, _ := rows.Columns()
	dest := r.dest()[:len(cols)]
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return 0, err
		}
		if r.id != last {
			n, last = n+1, r.id
		}
	}
	return n, rows.Err()
}

func splitDigest(d string) (string, string) { a, v, _ := strings.Cut(d, ":"); return a, v }

func (b *bareSQLite) byDigest(ctx context.Context, d string) (int, error) {
	alg, v := splitDigest(d)
	return countRows(b.digest.QueryContext(ctx, alg, v))
}

func (b *bareSQLite) byDigestIndexOnly(ctx context.Context, d string) (int, error) {
	alg, v := splitDigest(d)
	return countRows(b.digestIdx.QueryContext(ctx, alg, v))
}

func (b *bareSQLite) byKeyIDs(ctx context.Context, key string) (int, error) {
	return countRows(b.keyIDs.QueryContext(ctx, key))
}

func (b *bareSQLite) byKey(ctx context.Context, key string, since int64) (int, error) {
	return countRows(b.key.QueryContext(ctx, key, since))
}

func (b *bareSQLite) close() { b.db.Close() }

func (b *bareSQLite) version(ctx context.Context) string {
	var v string
	if err := b.db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&v); err != nil {
		return "SQLite (version unknown: " + err.Error() + ")"
	}
	return "SQLite " + v + " (modernc.org/sqlite, pure Go)"
}

type barePostgres struct {
	conn *pgx.Conn
	dsn  string
}

func openBarePostgres(ctx context.Context, dsn string) (*barePostgres, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	for name, q := range map[string]string{"digest": bareDigestQ, "digestIdx": bareDigestIdxQ, "key": bareKeyQ, "keyIDs": bareKeyIDsQ} {
		if _, err := conn.Prepare(ctx, name, q); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return &barePostgres{conn: conn, dsn: dsn}, nil
}

func countPgRows(rows pgx.Rows, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var r row
	n, last := 0, int64(-1)
	dest := r.dest()[:len(rows.FieldDescriptions())]
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return 0, err
		}
		if r.id != last {
			n, last = n+1, r.id
		}
	}
	return n, rows.Err()
}

func (b *barePostgres) byDigest(ctx context.Context, d string) (int, error) {
	alg, v := splitDigest(d)
	return countPgRows(b.conn.Query(ctx, "digest", alg, v))
}

func (b *barePostgres) byDigestIndexOnly(ctx context.Context, d string) (int, error) {
	alg, v := splitDigest(d)
	return countPgRows(b.conn.Query(ctx, "digestIdx", alg, v))
}

func (b *barePostgres) byKeyIDs(ctx context.Context, key string) (int, error) {
	return countPgRows(b.conn.Query(ctx, "keyIDs", key))
}

func (b *barePostgres) byKey(ctx context.Context, key string, since int64) (int, error) {
	return countPgRows(b.conn.Query(ctx, "key", key, since))
}

func (b *barePostgres) close() { b.conn.Close(context.Background()) }

func (b *barePostgres) version(ctx context.Context) string {
	var v, sb string
	if err := b.conn.QueryRow(ctx, `SELECT version(), current_setting('shared_buffers')`).Scan(&v, &sb); err != nil {
		return "PostgreSQL (version unknown: " + err.Error() + ")"
	}
	if i := strings.Index(v, " on "); i > 0 {
		v = v[:i]
	}
	return v + ", shared_buffers " + sb + " (pgx v5 via database/sql)"
}

// putPhase is one Put-filling phase recorded in the -fill-log file: new
// records, time, concurrent callers.
type putPhase struct {
	puts    int
	dur     time.Duration
	workers int
}

// logFill appends f to the fill log (when it did any Puts) and returns every
// phase recorded there.
func logFill(path string, f fillResult, workers int) ([]putPhase, error) {
	if f.puts > 0 {
		lf, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(lf, "%d %.3f %d\n", f.created, f.dur.Seconds(), workers)
		if err := lf.Close(); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ps []putPhase
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var p putPhase
		var secs float64
		if _, err := fmt.Sscanf(line, "%d %f %d", &p.puts, &secs, &p.workers); err != nil {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		p.dur = time.Duration(secs * float64(time.Second))
		ps = append(ps, p)
	}
	return ps, nil
}

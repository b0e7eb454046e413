// Command incidentbench measures `custody incident open --server` over an
// index of N bundles of which A are affected (signed by the compromised key
// after T, each with an RFC 3161 timestamp from the server's TSA) and S are
// spared (signed by the same key before T); the other bundles are signed by
// other keys. See bench/incident/README.md.
package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"
	_ "modernc.org/sqlite"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
)

// state is what a filled data directory remembers.
type state struct {
	N        int       `json:"n"`
	Affected int       `json:"affected"`
	Spared   int       `json:"spared"`
	KeyID    string    `json:"keyId"`
	T        time.Time `json:"t"`
	// DB is the PostgreSQL DSN of the index ("" for SQLite).
	DB string `json:"db,omitempty"`
}

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "custody-bench-incident"), "data directory of the server (kept between runs)")
	n := flag.Int("n", 1000000, "bundles in the index")
	affected := flag.Int("affected", 10000, "bundles signed by the compromised key after T")
	spared := flag.Int("spared", 1000, "bundles signed by the compromised key before T")
	custody := flag.String("custody", "custody", "the custody binary")
	runs := flag.Int("runs", 3, "incident open runs")
	md := flag.String("md", "", "write the results table (markdown) here")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the baselines and components (not the command) here")
	flag.StringVar(&dbDSN, "db", "", "PostgreSQL DSN of an empty database for the index (default: SQLite in -dir)")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	st, err := readState(*dir)
	if err != nil || st.N != *n || st.Affected != *affected || st.Spared != *spared || st.DB != dbDSN {
		os.RemoveAll(*dir)
		os.MkdirAll(*dir, 0o700)
		if st, err = fill(ctx, *dir, *n, *affected, *spared); err != nil {
			log.Fatal(err)
		}
	} else {
		log.Printf("reusing %s: %d bundles, %d affected, %d spared", *dir, st.N, st.Affected, st.Spared)
	}
	profile = *cpuProfile
	if err := measure(ctx, *dir, st, *custody, *runs, *md); err != nil {
		log.Fatal(err)
	}
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return &state{}, err
	}
	var st state
	return &st, json.Unmarshal(b, &st)
}

// benchIndex is what the benchmark uses of the index besides the server.
type benchIndex interface {
	server.Index
	Count(ctx context.Context) (int64, error)
	Close() error
}

// openIndex opens the index: PostgreSQL at -db, else SQLite in dir.
func openIndex(ctx context.Context, dir string) (benchIndex, error) {
	if dbDSN != "" {
		return store.OpenPostgres(ctx, dbDSN)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return store.OpenSQLite(filepath.Join(dir, "index.db"))
}

// benchServer is a server under test, on a loopback port, and its index.
type benchServer struct {
	*server.Server
	index benchIndex
}

// serve opens the server on a loopback port.
func serve(ctx context.Context, dir string) (*benchServer, string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	url := "http://" + ln.Addr().String()
	idx, err := openIndex(ctx, dir)
	if err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	s, err := server.Open(ctx, server.Config{Dir: dir, PublicURL: url, Index: idx})
	if err != nil {
		ln.Close()
		idx.Close()
		return nil, "", nil, err
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	return &benchServer{s, idx}, url, func() { hs.Close(); s.Close(); idx.Close() }, nil
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// fill creates the server, signs the compromised key's bundles with
// timestamps from its TSA, puts them through the Store API and bulk loads
// the rest.
func fill(ctx context.Context, dir string, n, affected, spared int) (*state, error) {
	start := time.Now()
	s, url, stop, err := serve(ctx, dir)
	if err != nil {
		return nil, err
	}
	if c, err := s.index.Count(ctx); err != nil || c != 0 {
		stop()
		return nil, fmt.Errorf("the index must start empty (it holds %d bundles, %v): give -db an empty database", c, err)
	}
	tok, err := tokenfile.CreateToken(dir, api.RoleBuilder, "", "bench builder")
	if err != nil {
		stop()
		return nil, err
	}
	key, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		stop()
		return nil, err
	}
	kp, err := signer.NewKeypair(key)
	if err != nil {
		stop()
		return nil, err
	}
	keyID := signer.KeyID(key.Public())
	ta := sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: url + "/api/v1/timestamp", Transport: bearer{tok}})
	signAll := func(from, count int) ([]*store.Evidence, error) {
		out := make([]*store.Evidence, count)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		work := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					e, err := signedEvidence(ctx, kp, ta, keyID, from+i)
					mu.Lock()
					if err != nil && first == nil {
						first = err
					}
					out[i] = e
					mu.Unlock()
				}
			}()
		}
		for i := range count {
			work <- i
		}
		close(work)
		wg.Wait()
		return out, first
	}
	log.Printf("signing %d spared bundles", spared)
	before, err := signAll(0, spared)
	if err != nil {
		stop()
		return nil, err
	}
	time.Sleep(1100 * time.Millisecond)
	t := time.Now().UTC().Truncate(time.Second)
	log.Printf("T = %s; signing %d affected bundles", t.Format(time.RFC3339), affected)
	after, err := signAll(spared, affected)
	if err != nil {
		stop()
		return nil, err
	}
	log.Printf("signed in %s; indexing them through Store.Put", time.Since(start).Round(time.Millisecond))
	all := append(before, after...)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(all); i += 8 {
				if _, _, err := s.index.Put(ctx, all[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	stop()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	log.Printf("bulk loading %d other bundles", n-len(all))
	load := func() error { return bulkLoad(ctx, filepath.Join(dir, "index.db"), len(all), n) }
	if dbDSN != "" {
		load = func() error { return bulkLoadPostgres(ctx, dbDSN, len(all), n) }
	}
	if err := load(); err != nil {
		return nil, err
	}
	st := &state{N: n, Affected: affected, Spared: spared, KeyID: keyID, T: t, DB: dbDSN}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		return nil, err
	}
	log.Printf("filled in %s", time.Since(start).Round(time.Second))
	return st, nil
}

// signedEvidence signs provenance for artifact i with kp, timestamped.
func signedEvidence(ctx context.Context, kp *signer.Keypair, ta *sign.TimestampAuthority, keyID string, i int) (*store.Evidence, error) {
	sum := sha256.Sum256(fmt.Appendf(nil, "bench artifact %d", i))
	name := fmt.Sprintf("app-%d.tar.gz", i)
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://example.com/org/repo", Commit: hex.EncodeToString(sum[:20])}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/bench@v1"},
			Metadata: &attest.BuildMetadata{InvocationID: fmt.Sprintf("bench-%d", i)}},
	}
	stmt, err := attest.NewStatement([]attest.Subject{{Name: name, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateSLSAv1, prov)
	if err != nil {
		return nil, err
	}
	raw, err := stmt.Marshal()
	if err != nil {
		return nil, err
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: raw, PayloadType: attest.PayloadType}, kp,
		sign.BundleOptions{Context: ctx, TimestampAuthorities: []*sign.TimestampAuthority{ta}})
	if err != nil {
		return nil, fmt.Errorf("couldn't sign bundle %d: %w", i, err)
	}
	b, err := protojson.Marshal(pb)
	if err != nil {
		return nil, err
	}
	ts := pb.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()
	if len(ts) == 0 {
		return nil, errors.New("bundle has no timestamp")
	}
	return &store.Evidence{Bundle: b, Subjects: []store.Subject{{Name: name, Digests: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		PredicateType: attest.PredicateSLSAv1, SignerKeyID: keyID, BuilderID: "https://custody.dev/builders/bench@v1",
		SourceURI: "git+https://example.com/org/repo", BuildID: fmt.Sprintf("bench-%d", i), LogIndex: -1,
		IntegratedTime: time.Now().UTC()}, nil
}

// bulkLoad writes bundles from..n-1 (other keys: 1,000 of them, synthetic
// bundles) straight into the store's tables, encoded as internal/store
// does, many per transaction (as bench/index's loader).
func bulkLoad(ctx context.Context, path string, from, n int) error {
	db, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_busy_timeout=30000&_synchronous=OFF")
	if err != nil {
		return err
	}
	defer db.Close()
	const batch = 5000
	for lo := from; lo < n; lo += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO evidence (bundle_sha256, bundle, predicate_type, signer_key_id,
			signer_identity, signer_issuer, builder_id, source_uri, source_commit, build_id, log_index,
			integrated_us, indexed_us, sort_us) VALUES (?, ?, ?, ?, '', '', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
		if err != nil {
			tx.Rollback()
			return err
		}
		sub, err := tx.PrepareContext(ctx, `INSERT INTO evidence_subject (evidence_id, position, name, alg, value) VALUES (?, 0, ?, 'sha256', ?)`)
		if err != nil {
			tx.Rollback()
			return err
		}
		for i := lo; i < min(lo+batch, n); i++ {
			o := other(i)
			var id int64
			if err := ins.QueryRowContext(ctx, o.sum, o.bundle, attest.PredicateSLSAv1, o.keyID,
				"https://custody.dev/builders/other@v1", "git+https://example.com/other", o.commit, o.buildID, int64(i),
				o.at, time.Now().UnixMicro(), o.at).Scan(&id); err != nil {
				tx.Rollback()
				return fmt.Errorf("bundle %d: %w", i, err)
			}
			if _, err := sub.ExecContext(ctx, id, o.buildID, o.digest); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if (lo-from)/batch%40 == 0 {
			log.Printf("  %d/%d", lo, n)
		}
	}
	return nil
}

// otherBundle is bulk-loaded bundle i: its index columns and bytes.
type otherBundle struct {
	keyID, digest, commit, buildID string
	bundle                         []byte
	sum                            string
	at                             int64
}

func other(i int) otherBundle {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	keyID := hexSum("other key ", i%1000)
	digest := hexSum("other artifact ", i)
	commit := hexSum("commit ", i/6)[:40]
	stmt := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"other-%d","digest":{"sha256":%q}}],"predicateType":%q,"predicate":{"buildDefinition":{"externalParameters":{"source":{"uri":"git+https://example.com/other","commit":%q}}}}}`,
		i, digest, attest.PredicateSLSAv1, commit)
	bundle := fmt.Appendf(nil, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":%q}},"dsseEnvelope":{"payload":%q,"payloadType":"application/vnd.in-toto+json","signatures":[{"sig":%q}]}}`,
		keyID, base64.StdEncoding.EncodeToString([]byte(stmt)), base64.StdEncoding.EncodeToString([]byte(hexSum("sig ", i))))
	sum := sha256.Sum256(bundle)
	return otherBundle{keyID: keyID, digest: digest, commit: commit, buildID: fmt.Sprintf("other-%d", i), bundle: bundle,
		sum: hex.EncodeToString(sum[:]), at: t0.Add(time.Duration(i) * 30 * time.Second).UnixMicro()}
}

// bulkLoadPostgres is bulkLoad for a PostgreSQL index: batches of rows as
// arrays (unnest), each bundle's subject joined by its build ID.
func bulkLoadPostgres(ctx context.Context, dsn string, from, n int) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	const batch = 5000
	for lo := from; lo < n; lo += batch {
		var sums, keys, commits, builds, digests []string
		var bundles [][]byte
		var logIdx, ats, nows []int64
		now := time.Now().UnixMicro()
		for i := lo; i < min(lo+batch, n); i++ {
			o := other(i)
			sums, keys, commits, builds, digests = append(sums, o.sum), append(keys, o.keyID), append(commits, o.commit), append(builds, o.buildID), append(digests, o.digest)
			bundles, logIdx, ats, nows = append(bundles, o.bundle), append(logIdx, int64(i)), append(ats, o.at), append(nows, now)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO evidence (bundle_sha256, bundle, predicate_type, signer_key_id,
			signer_identity, signer_issuer, builder_id, source_uri, source_commit, build_id, log_index,
			integrated_us, indexed_us, sort_us)
			SELECT u.sum, u.bundle, $1, u.key, '', '', $2, $3, u.commit, u.build, u.log_index, u.at, u.now, u.at
			FROM unnest($4::text[], $5::bytea[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[])
				AS u(sum, bundle, key, commit, build, log_index, at, now)`,
			attest.PredicateSLSAv1, "https://custody.dev/builders/other@v1", "git+https://example.com/other",
			sums, bundles, keys, commits, builds, logIdx, ats, nows); err != nil {
			tx.Rollback()
			return fmt.Errorf("bundles %d..: %w", lo, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO evidence_subject (evidence_id, position, name, alg, value)
			SELECT e.id, 0, u.build, 'sha256', u.digest FROM unnest($1::text[], $2::text[]) AS u(build, digest)
			JOIN evidence e ON e.build_id = u.build`, builds, digests); err != nil {
			tx.Rollback()
			return fmt.Errorf("subjects %d..: %w", lo, err)
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if (lo-from)/batch%40 == 0 {
			log.Printf("  %d/%d", lo, n)
		}
	}
	_, err = db.ExecContext(ctx, `ANALYZE`)
	return err
}

func hexSum(parts ...any) string {
	s := sha256.Sum256(fmt.Append(nil, parts...))
	return hex.EncodeToString(s[:])
}

var (
	profile string
	dbDSN   string
)

type timing struct {
	what string
	d    []time.Duration
	cpu  []time.Duration // CPU time (user + system) of the run, all processes
	note string
}

// selfCPU is this process's CPU time so far (the server runs in it).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure times the baselines and `custody incident open`.
func measure(ctx context.Context, dir string, st *state, custody string, runs int, mdPath string) error {
	s, url, stop, err := serve(ctx, dir)
	if err != nil {
		return err
	}
	defer stop()
	admin, err := tokenfile.CreateToken(dir, api.RoleAdmin, "", "bench admin")
	if err != nil {
		return err
	}
	cl, err := client.New(url, admin)
	if err != nil {
		return err
	}
	count, err := s.index.Count(ctx)
	if err != nil {
		return err
	}
	sel := incident.Selector{KeyID: st.KeyID}
	var results []timing
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
	}

	// Baseline 1: the bare index search, Store API, paged.
	var storeT timing
	storeT.what = "baseline: Store.Search by key, paged by 1,000 (in process)"
	var found int
	for range runs {
		t0, c0 := time.Now(), selfCPU()
		q := store.Query{SignerKeyID: sel.KeyID, SignerIdentity: sel.Identity, BuilderID: sel.Builder, Limit: store.MaxLimit}
		found = 0
		for {
			page, err := s.index.Search(ctx, q)
			if err != nil {
				return err
			}
			found += len(page)
			if len(page) < q.Limit {
				break
			}
			q.AfterID = page[len(page)-1].ID
		}
		storeT.d, storeT.cpu = append(storeT.d, time.Since(t0)), append(storeT.cpu, selfCPU()-c0)
	}
	storeT.note = fmt.Sprintf("%d bundles", found)
	results = append(results, storeT)

	// Baseline 2: the same search over HTTP, as incident open pages it.
	var httpT timing
	httpT.what = "baseline: GET /api/v1/evidence by key, paged by 1,000"
	var evs []*api.Evidence
	for range runs {
		t0, c0 := time.Now(), selfCPU()
		q := sel.Query()
		q.Limit = api.MaxLimit
		evs = evs[:0]
		for {
			page, err := cl.Search(ctx, q)
			if err != nil {
				return err
			}
			evs = append(evs, page...)
			if len(page) < q.Limit {
				break
			}
			q.AfterID = page[len(page)-1].ID
		}
		httpT.d, httpT.cpu = append(httpT.d, time.Since(t0)), append(httpT.cpu, selfCPU()-c0)
	}
	httpT.note = fmt.Sprintf("%d bundles", len(evs))
	results = append(results, httpT)

	// Component: reading every bundle and verifying its timestamp.
	tm, err := root.NewTrustedRootFromJSON(s.TrustedRoot())
	if err != nil {
		return err
	}
	var vT timing
	vT.what = "component: incident.FromBundles (parse; verify the RFC 3161 timestamps that claim a time before T)"
	for range runs {
		t0, c0 := time.Now(), selfCPU()
		out, unreadable := incident.FromBundles(evs, nil, tm, st.T)
		vT.d, vT.cpu = append(vT.d, time.Since(t0)), append(vT.cpu, selfCPU()-c0)
		if len(unreadable) > 0 || len(out) != len(evs) {
			return fmt.Errorf("FromBundles: %d read, %d unreadable", len(out), len(unreadable))
		}
	}
	results = append(results, vT)

	// Component: the quarantine, as incident open appends it (one batch:
	// the opening and a record per affected artifact), through the client.
	var qT timing
	qT.what = "component: client.AppendIncidents (opening + quarantines, audited)"
	for r := range runs {
		inc, err := incident.NewID(time.Now())
		if err != nil {
			return err
		}
		batch := []*store.IncidentRecord{{Incident: inc, Event: store.IncidentOpened, Actor: "bench", Time: time.Now(), Detail: "bench component"}}
		for i := range st.Affected {
			batch = append(batch, &store.IncidentRecord{Incident: inc, Event: store.IncidentQuarantined, Artifact: "sha256:" + hexSum("bench quarantine ", r, " ", i),
				Actor: "bench", Time: time.Now(), Detail: fmt.Sprintf("evidence signed by key %s not proven before %s", st.KeyID, st.T.Format(time.RFC3339Nano))})
		}
		t0, c0 := time.Now(), selfCPU()
		ids, err := cl.AppendIncidents(ctx, batch)
		qT.d, qT.cpu = append(qT.d, time.Since(t0)), append(qT.cpu, selfCPU()-c0)
		if err != nil || len(ids) != len(batch) {
			return fmt.Errorf("AppendIncidents: %d IDs, %v", len(ids), err)
		}
	}
	qT.note = fmt.Sprintf("%d records", st.Affected+1)
	results = append(results, qT)
	if profile != "" {
		pprof.StopCPUProfile()
	}

	// The command.
	var cmdT timing
	cmdT.what = "custody incident open --server (whole process)"
	for r := range runs {
		cmd := exec.CommandContext(ctx, custody, "incident", "open", "--key", st.KeyID,
			"--compromised-since", st.T.Format(time.RFC3339), "--server", url, "--json")
		cmd.Env = append(os.Environ(), "CUSTODY_TOKEN="+admin, "HOME="+dir)
		var out strings.Builder
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		t0, c0 := time.Now(), selfCPU()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("custody incident open: %w", err)
		}
		cmdT.d = append(cmdT.d, time.Since(t0))
		ps := cmd.ProcessState
		cmdT.cpu = append(cmdT.cpu, selfCPU()-c0+ps.UserTime()+ps.SystemTime())
		var rep incident.Report
		if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if len(rep.Found.Affected) != st.Affected || len(rep.Found.Spared) != st.Spared || len(rep.Quarantined) != st.Affected {
			return fmt.Errorf("run %d: %d affected, %d spared, %d quarantined; want %d, %d, %d", r, len(rep.Found.Affected),
				len(rep.Found.Spared), len(rep.Quarantined), st.Affected, st.Spared, st.Affected)
		}
		got, err := cl.Incidents(ctx, store.IncidentQuery{Incident: rep.ID, Event: store.IncidentQuarantined})
		if err != nil || len(got) != st.Affected {
			return fmt.Errorf("run %d: server holds %d quarantine records, %v", r, len(got), err)
		}
	}
	cmdT.note = fmt.Sprintf("%d affected, %d spared, %d quarantine records on the server", st.Affected, st.Spared, st.Affected)
	results = append(results, cmdT)

	var b strings.Builder
	backend := "SQLite"
	if dbDSN != "" {
		backend = "PostgreSQL, on this machine; its server's CPU time is not in the CPU column"
	}
	fmt.Fprintf(&b, "Index: %d bundles (%s); the compromised key signed %d (%d after T, %d before).\n\n",
		count, backend, st.Affected+st.Spared, st.Affected, st.Spared)
	fmt.Fprintf(&b, "| what | wall, each run (s) | best wall (s) | CPU, each run (s) | note |\n| --- | --- | --- | --- | --- |\n")
	secs := func(ds []time.Duration) string {
		var out []string
		for _, d := range ds {
			out = append(out, fmt.Sprintf("%.2f", d.Seconds()))
		}
		return strings.Join(out, ", ")
	}
	for _, t := range results {
		best := append([]time.Duration(nil), t.d...)
		sort.Slice(best, func(i, j int) bool { return best[i] < best[j] })
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s | %s |\n", t.what, secs(t.d), best[0].Seconds(), secs(t.cpu), t.note)
	}
	io.WriteString(os.Stdout, b.String())
	if mdPath != "" {
		return os.WriteFile(mdPath, []byte(b.String()), 0o644)
	}
	return nil
}

// Package dashboard benchmarks the dashboard's environments page: 1,000
// deployments over 10 environments and 100,000 indexed bundles in SQLite,
// every running artifact re-verified (gate.Gather) and its policy
// evaluated on each render, and each checked for an incident's quarantine.
// The baseline, in the same run, is the bare store work the page cannot
// avoid: reading every deployment record, then each running artifact's
// quarantine records and its evidence by digest.
//
//	go test -run x -bench . -benchtime 50x ./bench/dashboard
//
// The index is built once in $CUSTODY_BENCH_DIR (default the OS temporary
// directory) and reused.
package dashboard

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
)

const (
	bundles     = 100000
	deployments = 1000
	envs        = 10
	builder     = "https://custody.dev/builders/bench@v1"
)

type noLog struct{}

func (noLog) Checkpoint(context.Context) (*tlog.Checkpoint, error) { return nil, fmt.Errorf("no log") }
func (noLog) CheckpointAt(uint64) (*tlog.Checkpoint, error)        { return nil, fmt.Errorf("no log") }
func (noLog) ConsistencyProof(context.Context, uint64, uint64) ([][]byte, error) {
	return nil, fmt.Errorf("no log")
}

func hexOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// fixture opens (building on first use) the index, and returns the store
// and the public key that signed the running artifacts' provenance.
func fixture(b *testing.B) (*store.SQLite, crypto.PublicKey) {
	b.Helper()
	ctx := context.Background()
	dir := os.Getenv("CUSTODY_BENCH_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "custody-bench-dashboard")
	os.MkdirAll(dir, 0o700)
	keyPath := filepath.Join(dir, "key.der")
	var key crypto.Signer
	if pemBytes, err := os.ReadFile(keyPath); err == nil {
		k, err := x509.ParsePKCS8PrivateKey(pemBytes)
		if err != nil {
			b.Fatal(err)
		}
		key = k.(crypto.Signer)
	} else {
		if key, err = signer.Generate(signer.ECDSAP256); err != nil {
			b.Fatal(err)
		}
		pemBytes, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(keyPath, pemBytes, 0o600)
	}
	st, err := store.OpenSQLite(filepath.Join(dir, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	n, err := st.Count(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := incidents(ctx, st); err != nil {
		b.Fatal(err)
	}
	if n >= bundles {
		return st, key.Public()
	}
	start := time.Now()
	// Every deployed artifact (100 per environment) has signed provenance.
	for i := 0; i < deployments; i++ {
		content := fmt.Sprintf("artifact %d", i)
		stmt, _ := attest.NewStatement([]attest.Subject{{Name: fmt.Sprintf("app-%d", i), Digest: map[string]string{"sha256": hexOf(content)}}},
			attest.PredicateSLSAv1, attest.ProvenanceV1{
				BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
					ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
						Source: attest.CustodySource{URI: "git+https://example.com/org/app", Commit: hexOf(content)[:40]}}},
				RunDetails: attest.RunDetails{Builder: attest.Builder{ID: builder}, Metadata: &attest.BuildMetadata{InvocationID: content}}})
		raw, _ := stmt.Marshal()
		bundle, err := signer.SignStatement(ctx, key, raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.Put(ctx, &store.Evidence{Bundle: bundle, Subjects: []store.Subject{{Name: fmt.Sprintf("app-%d", i),
			Digests: map[string]string{"sha256": hexOf(content)}}}, PredicateType: attest.PredicateSLSAv1, BuilderID: builder, LogIndex: -1}); err != nil {
			b.Fatal(err)
		}
		env := fmt.Sprintf("env-%d", i%envs)
		for _, ev := range []string{store.EventDeployed} {
			if _, err := st.AppendDeployment(ctx, &store.Deployment{Environment: env, Event: ev, Artifact: "sha256:" + hexOf(content),
				Name: fmt.Sprintf("app-%d", i), Actor: "ci", Time: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Filler: other bundles about other artifacts.
	for i := int(n) + deployments; i < bundles; i++ {
		h := hexOf(fmt.Sprintf("filler %d", i))
		if _, _, err := st.Put(ctx, &store.Evidence{Bundle: []byte(fmt.Sprintf(`{"filler":%d}`, i)),
			Subjects: []store.Subject{{Name: "filler", Digests: map[string]string{"sha256": h}}}, PredicateType: attest.PredicateSLSAv1,
			BuilderID: builder, LogIndex: -1}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built the index in %s", time.Since(start).Round(time.Second))
	return st, key.Public()
}

// incidents records, once, 20 incidents (one open) that quarantined 5
// filler artifacts each: no running artifact is quarantined, so every
// environment stays green, and each render looks each one up.
func incidents(ctx context.Context, st *store.SQLite) error {
	have, err := st.Incidents(ctx, store.IncidentQuery{Limit: 1})
	if err != nil || len(have) > 0 {
		return err
	}
	t0 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	var recs []*store.IncidentRecord
	for i := 0; i < 20; i++ {
		at := t0.Add(time.Duration(i) * 24 * time.Hour)
		id := fmt.Sprintf("INC-%s-%08x", at.Format("20060102T150405Z"), i)
		recs = append(recs, &store.IncidentRecord{Incident: id, Event: store.IncidentOpened, Actor: "oncall", Time: at,
			Detail: "builder " + builder + " compromised since " + at.Add(-time.Hour).Format(time.RFC3339)})
		for j := 0; j < 5; j++ {
			recs = append(recs, &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined, Actor: "oncall", Time: at,
				Artifact: "sha256:" + hexOf(fmt.Sprintf("filler %d", deployments+i*5+j)), Detail: "bench"})
		}
		recs = append(recs, &store.IncidentRecord{Incident: id, Event: store.IncidentReported, Actor: "oncall", Time: at,
			Report: []byte(fmt.Sprintf(`{"id":%q,"compromisedSince":%q,"openedAt":%q,"found":{"affected":[],"spared":[]},"rollbacks":[]}`,
				id, at.Add(-time.Hour).Format(time.RFC3339), at.Format(time.RFC3339)))})
		if i > 0 {
			recs = append(recs, &store.IncidentRecord{Incident: id, Event: store.IncidentClosed, Actor: "oncall", Time: at.Add(time.Hour)})
		}
	}
	_, err = st.AppendIncidents(ctx, recs)
	return err
}

// loadavg is the 1-minute load average, or -1 where /proc is absent.
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return -1
	}
	return l
}

func BenchmarkEnvironmentsPage(b *testing.B) {
	ctx := context.Background()
	st, pub := fixture(b)
	defer st.Close()
	keyID, _ := gate.KeyID(pub)
	pols := map[string]*policy.Policy{}
	for i := 0; i < envs; i++ {
		p, err := policy.Parse([]byte(fmt.Sprintf("apiVersion: custody.dev/policy/v1\nenvironment: env-%d\ntrustedBuilders: [%s]\nsigners: [{keyId: %s}]\n", i, builder, keyID)))
		if err != nil {
			b.Fatal(err)
		}
		pols[p.Environment] = p
	}
	km, err := gate.KeyMaterial(pub)
	if err != nil {
		b.Fatal(err)
	}
	d, err := dashboard.New(dashboard.Config{Index: st, Log: noLog{},
		Trust:     func() (root.TrustedMaterial, error) { return km, nil },
		Policies:  func() (map[string]*policy.Policy, error) { return pols, nil },
		Incidents: st.Incidents})
	if err != nil {
		b.Fatal(err)
	}
	h := d.Handler()
	var cpus []time.Duration
	page := func() time.Duration {
		start, cpu := time.Now(), cpuTime()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/", nil))
		el := time.Since(start)
		cpus = append(cpus, cpuTime()-cpu)
		if rec.Code != 200 {
			b.Fatalf("GET /ui/: %d %s", rec.Code, rec.Body.String())
		}
		return el
	}
	// Baseline: every deployment record, then each running artifact's
	// quarantine records and evidence by digest: the reads the page makes,
	// without verifying or rendering.
	bare := func() time.Duration {
		start := time.Now()
		var all []*store.Deployment
		var after int64
		for {
			pg, err := st.Deployments(ctx, store.DeploymentQuery{AfterID: after, Limit: store.MaxLimit})
			if err != nil {
				b.Fatal(err)
			}
			all = append(all, pg...)
			if len(pg) < store.MaxLimit {
				break
			}
			after = pg[len(pg)-1].ID
		}
		last := map[string]string{}
		for _, r := range all {
			last[r.Environment] = r.Artifact
		}
		for _, a := range last {
			if _, err := st.Incidents(ctx, store.IncidentQuery{Artifact: a, Event: store.IncidentQuarantined, Limit: store.MaxLimit}); err != nil {
				b.Fatal(err)
			}
			if _, err := st.Search(ctx, store.Query{Digest: a}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	if rec := httptest.NewRecorder(); true {
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/", nil))
		if c := strings.Count(rec.Body.String(), `data-status="pass"`); c != envs {
			b.Fatalf("%d environments verified green, want %d", c, envs)
		}
	}
	var pages, bases []time.Duration
	cpus = nil
	loadBefore := loadavg()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bases = append(bases, bare())
		pages = append(pages, page())
	}
	b.StopTimer()
	p50, p99 := pct(pages, 0.5), pct(pages, 0.99)
	b50, b99 := pct(bases, 0.5), pct(bases, 0.99)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(p50), "page-p50-ms")
	b.ReportMetric(ms(p99), "page-p99-ms")
	b.ReportMetric(ms(b50), "bare-p50-ms")
	b.ReportMetric(ms(b99), "bare-p99-ms")
	b.ReportMetric(ms(pct(cpus, 0.5)), "page-cpu-p50-ms")
	b.ReportMetric(float64(p50)/float64(b50), "ratio-p50")
	b.ReportMetric(float64(p99)/float64(b99), "ratio-p99")
	b.Logf("page p50 %s p99 %s (CPU p50 %s p99 %s); bare store p50 %s p99 %s; %d renders; load average %.2f before, %.2f after",
		p50, p99, pct(cpus, 0.5), pct(cpus, 0.99), b50, b99, len(pages), loadBefore, loadavg())
	if p50 > 100*time.Millisecond {
		b.Errorf("environments page p50 %s, goal < 100 ms", p50)
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

// Package sbom benchmarks what custody build --osv-db adds to a build: a
// CycloneDX SBOM of a 500-dependency module graph and its scan against an
// offline OSV database of 50,000 advisories, loaded from disk each time
// (internal/sbom, internal/osv). Baselines in the same run: reading the
// database's files without parsing them, loading (parsing and indexing)
// it alone, and a naive scan that checks every advisory against every
// component. The data is generated at start into a temporary directory and
// removed at the end; nothing is committed. Results are in README.md.
package sbom

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/osv"
	"github.com/custody-dev/custody/internal/sbom"
)

const (
	nDeps       = 500    // 400 Go modules, 100 npm packages
	nAdvisories = 50_000 // 35,000 Go, 15,000 npm
	hitEvery    = 100    // one advisory in hitEvery names a dependency
)

var (
	dbDir string
	deps  []attest.ResourceDescriptor
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "custody-bench-osv-")
	if err != nil {
		panic(err)
	}
	dbDir = dir
	start := time.Now()
	deps = generate(dir)
	fmt.Fprintf(os.Stderr, "generated %d advisories and %d dependencies in %v\n", nAdvisories, len(deps), time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goMod(i int) string  { return fmt.Sprintf("github.com/org%d/module%d", i%37, i) }
func npmPkg(i int) string { return fmt.Sprintf("@scope%d/package%d", i%11, i) }

// generate writes the OSV database and returns the resolved dependencies
// as custody build records them.
func generate(dir string) []attest.ResourceDescriptor {
	r := rand.New(rand.NewPCG(1, 2))
	var ds []attest.ResourceDescriptor
	for i := range 400 {
		ds = append(ds, attest.ResourceDescriptor{
			URI:    fmt.Sprintf("pkg:golang/%s@v1.%d.%d", goMod(i), i%10, i%7),
			Digest: map[string]string{"dirHash": strings.Repeat("ab", 32)},
		})
	}
	// a few pseudo-versions and +incompatible, as real graphs have
	ds[1].URI = "pkg:golang/" + goMod(1) + "@v0.0.0-20220906165146-f3363e06e74c"
	ds[2].URI = "pkg:golang/" + goMod(2) + "@v3.2.0%2Bincompatible"
	for i := range 100 {
		ds = append(ds, attest.ResourceDescriptor{
			URI:    "pkg:npm/" + strings.Replace(npmPkg(i), "@", "%40", 1) + fmt.Sprintf("@%d.%d.0", i%5, i%9),
			Digest: map[string]string{"sha512": strings.Repeat("cd", 64)},
		})
	}
	os.MkdirAll(filepath.Join(dir, "Go"), 0o755)
	os.MkdirAll(filepath.Join(dir, "npm"), 0o755)
	details := strings.Repeat("A crafted input makes the parser read past the end of its buffer. ", 6)
	for i := range nAdvisories {
		eco, sub := "Go", "Go"
		var name string
		if i%10 >= 7 {
			eco, sub = "npm", "npm"
			name = fmt.Sprintf("unrelated-npm-%d", r.IntN(6000))
			if i%hitEvery == 7 {
				name = npmPkg(r.IntN(100))
			}
		} else {
			name = fmt.Sprintf("example.com/unrelated/m%d", r.IntN(14000))
			if i%hitEvery == 0 {
				name = goMod(r.IntN(400))
			}
		}
		e := map[string]any{
			"schema_version": "1.6.0",
			"id":             fmt.Sprintf("BENCH-%06d", i),
			"modified":       "2026-01-01T00:00:00Z",
			"published":      "2025-01-01T00:00:00Z",
			"aliases":        []string{fmt.Sprintf("CVE-2025-%05d", i), fmt.Sprintf("GHSA-%04x-%04x-%04x", i, i*7%65536, i*13%65536)},
			"summary":        "Out-of-bounds read in " + name,
			"details":        details,
			"severity":       []map[string]string{{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}},
			"affected": []map[string]any{{
				"package": map[string]string{"ecosystem": eco, "name": name},
				"ranges": []map[string]any{{"type": "SEMVER", "events": []map[string]string{
					{"introduced": "0"}, {"fixed": fmt.Sprintf("1.%d.%d", r.IntN(10), r.IntN(7))},
					{"introduced": "2.0.0"}, {"last_affected": "2.3.1"},
				}}},
			}},
			"references":        []map[string]string{{"type": "ADVISORY", "url": "https://example.com/advisory/" + fmt.Sprint(i)}, {"type": "FIX", "url": "https://example.com/fix/" + fmt.Sprint(i)}},
			"database_specific": map[string]any{"severity": "HIGH", "github_reviewed": true, "cwe_ids": []string{"CWE-125"}},
		}
		b, _ := json.Marshal(e)
		if err := os.WriteFile(filepath.Join(dir, sub, fmt.Sprintf("BENCH-%06d.json", i)), b, 0o644); err != nil {
			panic(err)
		}
	}
	return ds
}

// sbomAndScan is the work custody build --osv-db adds: SBOM from the
// resolved dependencies, load what in the database can affect them
// (osv.LoadFor, as the CLI does), scan, build the predicate.
func sbomAndScan(tb testing.TB) (nFindings int) {
	comps := sbom.Merge(sbom.FromDependencies(deps))
	bom := sbom.New([]sbom.Subject{{Name: "app", SHA256: strings.Repeat("0", 64)}}, comps, sbom.Options{})
	if _, err := sbom.Encode(bom); err != nil {
		tb.Fatal(err)
	}
	var ts []osv.Target
	for _, c := range comps {
		ts = append(ts, osv.Target{Ecosystem: c.Ecosystem, Name: c.Name, Version: c.Version, PURL: c.PURL})
	}
	db, err := osv.LoadFor(context.Background(), dbDir, ts)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	fs := db.Scan(ts)
	p := osv.NewPredicate(fs, attest.VulnsScanner{URI: "bench"}, start, time.Now())
	if _, err := json.Marshal(p); err != nil {
		tb.Fatal(err)
	}
	return len(fs)
}

// BenchmarkSBOMAndScan is the measured pipeline; goal: under 2 s.
func BenchmarkSBOMAndScan(b *testing.B) {
	n := 0
	for b.Loop() {
		n = sbomAndScan(b)
	}
	b.ReportMetric(float64(n), "findings")
}

// BenchmarkReadFiles is the I/O floor: read every database file, parse nothing.
func BenchmarkReadFiles(b *testing.B) {
	for b.Loop() {
		n := 0
		filepath.WalkDir(dbDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				bs, _ := os.ReadFile(p)
				n += len(bs)
			}
			return nil
		})
	}
}

// BenchmarkLoadOnly is loading (parsing, indexing) the whole database
// alone, without LoadFor's shortcut.
func BenchmarkLoadOnly(b *testing.B) {
	for b.Loop() {
		if _, err := osv.Load(context.Background(), dbDir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanIndexed and BenchmarkScanNaive compare matching alone on a
// loaded database: the index by package against checking every advisory
// for every component.
func BenchmarkScanIndexed(b *testing.B) {
	db, ts := loaded(b)
	b.ResetTimer()
	for b.Loop() {
		db.Scan(ts)
	}
}

func BenchmarkScanNaive(b *testing.B) {
	_, ts := loaded(b)
	var entries []*osv.Entry
	filepath.WalkDir(dbDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			bs, _ := os.ReadFile(p)
			e, err := osv.Parse(bs)
			if err == nil {
				entries = append(entries, e)
			}
		}
		return nil
	})
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n = 0
		for _, t := range ts {
			for _, e := range entries {
				for _, a := range e.Affected {
					if a.Package.Name != t.Name || a.Package.Ecosystem != t.Ecosystem {
						continue
					}
					one := osv.NewDB()
					one.Add(e)
					n += len(one.Query(t.Ecosystem, t.Name, t.Version))
				}
			}
		}
	}
	b.ReportMetric(float64(n), "findings")
}

func loaded(tb testing.TB) (*osv.DB, []osv.Target) {
	db, err := osv.Load(context.Background(), dbDir)
	if err != nil {
		tb.Fatal(err)
	}
	var ts []osv.Target
	for _, c := range sbom.FromDependencies(deps) {
		ts = append(ts, osv.Target{Ecosystem: c.Ecosystem, Name: c.Name, Version: c.Version, PURL: c.PURL})
	}
	return db, ts
}

// TestSBOMAndScanFindsTheHits checks the bench measures real work: the
// generated advisories that name a dependency are found.
func TestSBOMAndScanFindsTheHits(t *testing.T) {
	if n := sbomAndScan(t); n == 0 {
		t.Fatal("no findings: the benchmark data names no dependency")
	}
}

package osv

import (
	"archive/zip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

func loadTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Load(context.Background(), "../../testdata/osv")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestQuery(t *testing.T) {
	db := loadTestDB(t)
	tests := []struct {
		eco, name, version string
		want               []string
		fixed              string // of the first match
	}{
		{"Go", "golang.org/x/text", "v0.3.6", []string{"GO-2021-0113"}, "0.3.7"},
		{"Go", "golang.org/x/text", "v0.3.2", []string{"GO-2020-0015", "GO-2021-0113"}, "0.3.3"},
		{"Go", "golang.org/x/text", "v0.3.7", nil, ""},
		{"Go", "golang.org/x/text", "v0.3.8-0.20220101000000-abcdefabcdef", nil, ""},
		// pseudo-versions order by their timestamp against a pseudo-version fix
		{"Go", "golang.org/x/net", "v0.0.0-20220905000000-aaaaaaaaaaaa", []string{"GO-2022-0969"}, "0.0.0-20220906165146-f3363e06e74c"},
		{"Go", "golang.org/x/net", "v0.0.0-20220906165146-f3363e06e74c", nil, ""},
		{"Go", "golang.org/x/net", "v0.1.0", nil, ""},
		// +incompatible is build metadata; last_affected is inclusive
		{"Go", "github.com/example/legacy", "v3.2.0+incompatible", []string{"CUSTODY-TEST-0001"}, ""},
		{"Go", "github.com/example/legacy", "v3.2.1+incompatible", nil, ""},
		{"Go", "github.com/example/legacy", "v1.9.9+incompatible", nil, ""},
		// unordered events, two intervals, explicit versions
		{"Go", "github.com/example/twice", "v0.9.0", []string{"CUSTODY-TEST-0003"}, ""},
		{"Go", "github.com/example/twice", "v1.1.0", []string{"CUSTODY-TEST-0003"}, "1.2.0"},
		{"Go", "github.com/example/twice", "v1.5.0", nil, ""},
		{"Go", "github.com/example/twice", "v2.0.0-rc.2", []string{"CUSTODY-TEST-0003"}, "2.1.0"},
		{"Go", "github.com/example/twice", "v2.0.0-beta", nil, ""},
		{"Go", "github.com/example/twice", "v2.1.0", nil, ""},
		{"npm", "@example/parser", "1.4.1", []string{"CUSTODY-TEST-1001"}, "1.4.2"},
		{"npm", "@Example/Parser", "1.4.1", []string{"CUSTODY-TEST-1001"}, "1.4.2"},
		{"npm", "@example/parser", "1.4.2", nil, ""},
		{"npm", "left-pad", "1.3.1-beta.1", []string{"CUSTODY-TEST-1002"}, "1.3.1-beta.2"},
		{"npm", "left-pad", "1.3.1-beta.10", nil, ""},
		{"npm", "left-pad", "0.9.0", nil, ""},
		{"npm", "left-pad", "not-a-version", nil, ""},
		{"PyPI", "left-pad", "1.1.0", nil, ""},
		{"Go", "golang.org/x/text", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+"@"+tt.version, func(t *testing.T) {
			ms := db.Query(tt.eco, tt.name, tt.version)
			var ids []string
			for _, m := range ms {
				ids = append(ids, m.Entry.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("got %v, want %v", ids, tt.want)
			}
			if len(ms) > 0 && ms[0].Fixed != tt.fixed {
				t.Errorf("fixed = %q, want %q", ms[0].Fixed, tt.fixed)
			}
		})
	}
}

func TestScores(t *testing.T) {
	db := loadTestDB(t)
	tests := []struct {
		eco, name, version string
		want               []attest.VulnsScore
	}{
		{"Go", "golang.org/x/text", "v0.3.6", nil},
		{"Go", "github.com/example/legacy", "v3.0.0", []attest.VulnsScore{{Method: "CVSS_V3", Score: "9.8"}}},
		{"Go", "github.com/example/twice", "v1.0.0", []attest.VulnsScore{{Method: "osv:database_specific", Score: "LOW"}}},
		{"npm", "@example/parser", "1.0.0", []attest.VulnsScore{{Method: "osv:database_specific", Score: "MODERATE"}}},
		{"npm", "left-pad", "1.0.0", nil}, // CVSS v4 is not scored
	}
	for _, tt := range tests {
		ms := db.Query(tt.eco, tt.name, tt.version)
		if len(ms) != 1 {
			t.Fatalf("%s@%s: %d matches", tt.name, tt.version, len(ms))
		}
		if got := ms[0].Scores(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: scores %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCVSSBaseScore(t *testing.T) {
	tests := []struct {
		vector string
		want   float64
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1},
		{"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5},
		{"CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 2.0},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},
		{"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5},
		{"AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3},
	}
	for _, tt := range tests {
		got, err := CVSSBaseScore(tt.vector)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.vector, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "CVSS:4.0/AV:N", "CVSS:3.1/AV:N", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "AV:N/AC:L"} {
		if _, err := CVSSBaseScore(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(context.Background(), dir); err == nil {
		t.Error("empty database: no error")
	}
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`[{"path":"x"}]`), 0o644)
	os.WriteFile(filepath.Join(dir, "GO-1.json"), []byte(`{"id":"GO-1","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`), 0o644)
	db, err := Load(context.Background(), dir)
	if err != nil || db.Len() != 1 || db.Skipped() != 1 {
		t.Fatalf("Load = %v, %v; want 1 entry and 1 skipped", db, err)
	}
	os.WriteFile(filepath.Join(dir, "GO-2.json"), []byte(`{"id":`), 0o644)
	if _, err := Load(context.Background(), dir); err == nil {
		t.Error("malformed entry: no error")
	}
	if _, err := Load(context.Background(), filepath.Join(dir, "GO-1.json")); err == nil {
		t.Error("a file as database: no error")
	}
}

func TestLoadZip(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	b, _ := os.ReadFile("../../testdata/osv/Go/GO-2021-0113.json")
	w, _ := zw.Create("GO-2021-0113.json")
	w.Write(b)
	zw.Close()
	f.Close()
	db, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if ms := db.Query("Go", "golang.org/x/text", "v0.3.6"); len(ms) != 1 {
		t.Fatalf("got %d matches from all.zip", len(ms))
	}
}

func TestParse(t *testing.T) {
	if _, err := Parse([]byte(`[]`)); !errors.Is(err, ErrNotEntry) {
		t.Errorf("array: %v", err)
	}
	if _, err := Parse([]byte(`{"summary":"x"}`)); !errors.Is(err, ErrNotEntry) {
		t.Errorf("no id: %v", err)
	}
	if _, err := Parse([]byte(`{"id":"X","affected":"nope"}`)); err == nil || errors.Is(err, ErrNotEntry) {
		t.Errorf("bad shape: %v", err)
	}
	e, err := Parse([]byte(`{"id":"X","affected":[{"package":{"purl":"pkg:npm/%40scope/name"}}]}`))
	if err != nil || e.Affected[0].Package.Name != "@scope/name" || e.Affected[0].Package.Ecosystem != "npm" {
		t.Errorf("purl-only package: %+v, %v", e, err)
	}
}

func TestScanAndPredicate(t *testing.T) {
	db := loadTestDB(t)
	fs := db.Scan([]Target{
		{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.3.6", PURL: "pkg:golang/golang.org/x/text@v0.3.6"},
		{Ecosystem: "npm", Name: "@example/parser", Version: "1.0.0", PURL: "pkg:npm/%40example/parser@1.0.0"},
	})
	if len(fs) != 2 || fs[0].ID != "CUSTODY-TEST-1001" || fs[1].ID != "GO-2021-0113" {
		t.Fatalf("findings %+v", fs)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := NewPredicate(fs, attest.VulnsScanner{URI: "https://custody.dev/scanner"}, now, now)
	if len(p.Scanner.Result) != 2 || p.Scanner.Result[1].Severity == nil {
		t.Fatalf("predicate %+v", p)
	}
	if got := db.LastModified(); got != time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC) {
		t.Errorf("LastModified = %v", got)
	}
}

// FuzzParse: any bytes parse or fail without panicking, and a parsed
// entry can be queried.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"Go/GO-2022-0969.json", "Go/CUSTODY-TEST-0003.json", "npm/CUSTODY-TEST-1002.json"} {
		b, err := os.ReadFile("../../testdata/osv/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "v1.0.0")
	}
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"limit":"*"},{"last_affected":"x"}]}]}]}`), "1.0.0")
	f.Fuzz(func(t *testing.T, b []byte, version string) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		db := NewDB()
		db.Add(e)
		for _, a := range e.Affected {
			for _, m := range db.Query(a.Package.Ecosystem, a.Package.Name, version) {
				m.Scores()
			}
		}
	})
}

func FuzzCVSSBaseScore(f *testing.F) {
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
	f.Add("AV:N/AC:L/Au:N/C:P/I:P/A:P")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := CVSSBaseScore(v)
		if err == nil && (s < 0 || s > 10) {
			t.Fatalf("%q scored %v", v, s)
		}
	})
}

func TestLoadForMatchesLoad(t *testing.T) {
	full := loadTestDB(t)
	ts := []Target{
		{Ecosystem: "Go", Name: "golang.org/x/text", Version: "v0.3.2"},
		{Ecosystem: "Go", Name: "golang.org/x/net", Version: "v0.0.0-20220101000000-aaaaaaaaaaaa"},
		{Ecosystem: "npm", Name: "@Example/Parser", Version: "1.0.0"},
		{Ecosystem: "Go", Name: "github.com/example/legacy", Version: "v3.0.0+incompatible"},
	}
	part, err := LoadFor(context.Background(), "../../testdata/osv", ts)
	if err != nil {
		t.Fatal(err)
	}
	a, b := full.Scan(ts), part.Scan(ts)
	if len(a) != 5 || len(a) != len(b) {
		t.Fatalf("Load found %d, LoadFor %d", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Errorf("finding %d: %s vs %s", i, a[i].ID, b[i].ID)
		}
	}
	if full.Len() != part.Len() || !full.LastModified().Equal(part.LastModified()) {
		t.Errorf("Len %d/%d LastModified %v/%v", full.Len(), part.Len(), full.LastModified(), part.LastModified())
	}
}

// FuzzMayAffect: the LoadFor shortcut never drops an entry that names a
// package: for every parsed entry, each affected package name passes it.
func FuzzMayAffect(f *testing.F) {
	for _, name := range []string{"Go/GO-2021-0113.json", "npm/CUSTODY-TEST-1001.json"} {
		b, _ := os.ReadFile("../../testdata/osv/" + name)
		f.Add(b)
	}
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"npm","name":"\u0040a/b"}}]}`))
	f.Add([]byte(`{"id":"X","affected":[{"package":{"purl":"pkg:npm/%40a/b"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		for _, a := range e.Affected {
			if a.Package.Name == "" {
				continue
			}
			if ok, _, _ := mayAffect(b, map[string]bool{strings.ToLower(a.Package.Name): true}); !ok {
				t.Fatalf("entry naming %q dropped", a.Package.Name)
			}
		}
	})
}

// TestScanSameAsNaive: what a scan finds through LoadFor's shortcut and the
// package index is exactly what matching every advisory of the testdata
// database, parsed in full, one by one against every package finds: for
// every package the database names, at every version its ranges and lists
// name and at versions between and around them.
func TestScanSameAsNaive(t *testing.T) {
	const dir = "../../testdata/osv"
	var entries []*Entry
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		e, err := Parse(b)
		if errors.Is(err, ErrNotEntry) {
			return nil
		}
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ts []Target
	seen := map[Target]bool{}
	add := func(eco, name, v string) {
		for _, n := range []string{name, strings.ToUpper(name)} {
			tg := Target{Ecosystem: eco, Name: n, Version: v, PURL: "pkg:" + eco + "/" + n + "@" + v}
			if !seen[tg] {
				seen[tg] = true
				ts = append(ts, tg)
			}
		}
	}
	for _, e := range entries {
		for _, a := range e.Affected {
			eco, name := a.Package.Ecosystem, a.Package.Name
			vs := append([]string{"0.0.1", "v0.0.1", "v0.0.0-20000101000000-000000000000", "99.0.0", "v99.0.0", "v3.0.0+incompatible"}, a.Versions...)
			for _, r := range a.Ranges {
				for _, ev := range r.Events {
					for _, v := range []string{ev.Introduced, ev.Fixed, ev.LastAffected, ev.Limit} {
						if v == "" || v == "0" || v == "*" {
							continue
						}
						vs = append(vs, v, v+"-rc.1", v+".1", "v"+strings.TrimPrefix(v, "v"))
					}
				}
			}
			for _, v := range vs {
				add(eco, name, v)
			}
		}
	}
	if len(ts) < 100 {
		t.Fatalf("only %d targets", len(ts))
	}

	// The reference: every entry in a database of its own, asked about
	// every target.
	var naive []Finding
	for _, e := range entries {
		one := NewDB()
		one.Add(e)
		naive = append(naive, one.Scan(ts)...)
	}
	slices.SortFunc(naive, func(a, b Finding) int {
		return cmpOr(strings.Compare(a.ID, b.ID), strings.Compare(a.PURL, b.PURL))
	})
	if len(naive) < 20 {
		t.Fatalf("the reference finds only %d findings; the test says little", len(naive))
	}
	t.Logf("%d targets, %d findings", len(ts), len(naive))

	full, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	part, err := LoadFor(context.Background(), dir, ts)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]Finding{"Load": full.Scan(ts), "LoadFor": part.Scan(ts)} {
		if !reflect.DeepEqual(got, naive) {
			t.Errorf("%s+Scan found %d findings, the naive match %d", name, len(got), len(naive))
			for i := range min(len(got), len(naive)) {
				if !reflect.DeepEqual(got[i], naive[i]) {
					t.Errorf("first difference at %d:\n got %+v\nwant %+v", i, got[i], naive[i])
					break
				}
			}
		}
	}
	if full.Len() != part.Len() || !full.LastModified().Equal(part.LastModified()) {
		t.Errorf("Len %d/%d LastModified %v/%v", full.Len(), part.Len(), full.LastModified(), part.LastModified())
	}
}

// TestEcosystemFromPURL checks package URLs in advisories are read as
// sbom.ParsePURL reads them: an unescaped npm scope names the scoped package
// (the old parser cut at its '@' and named nothing), the type's case is
// ignored, and a malformed escape names no package.
func TestEcosystemFromPURL(t *testing.T) {
	tests := []struct {
		purl, eco, name string
		ok              bool
	}{
		{"pkg:npm/@types/node@20.11.0", EcosystemNPM, "@types/node", true},
		{"pkg:npm/%40types/node", EcosystemNPM, "@types/node", true},
		{"pkg:golang/github.com/BurntSushi/toml@v1.4.0", EcosystemGo, "github.com/BurntSushi/toml", true},
		{"pkg:NPM/left-pad", EcosystemNPM, "left-pad", true},
		{"pkg:npm/a%zz", "", "", false},
		{"pkg:pypi/flask", "", "", false},
	}
	for _, tt := range tests {
		eco, name, ok := ecosystemFromPURL(tt.purl)
		if eco != tt.eco || name != tt.name || ok != tt.ok {
			t.Errorf("ecosystemFromPURL(%q) = %q, %q, %v; want %q, %q, %v", tt.purl, eco, name, ok, tt.eco, tt.name, tt.ok)
		}
	}
}

package osv

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/attest"
)

// DB is an in-memory OSV database indexed by ecosystem and package name.
// It is safe for concurrent reads once loaded.
type DB struct {
	byPkg   map[pkgKey][]*entryRef
	entries int
	skipped int
	// lastMod is the latest modified time of entries LoadFor examined
	// without parsing.
	lastMod time.Time
}

type pkgKey struct{ ecosystem, name string }

// entryRef is one affected package of an entry.
type entryRef struct {
	entry    *Entry
	affected *Affected
}

// NewDB returns an empty database; Add entries to it.
func NewDB() *DB { return &DB{byPkg: make(map[pkgKey][]*entryRef)} }

// Add indexes an entry. Withdrawn entries are kept out of matching.
func (db *DB) Add(e *Entry) {
	db.entries++
	if e.Withdrawn != "" {
		return
	}
	for i := range e.Affected {
		a := &e.Affected[i]
		k := pkgKey{normEcosystem(a.Package.Ecosystem), normName(a.Package.Ecosystem, a.Package.Name)}
		if k.ecosystem == "" || k.name == "" {
			continue
		}
		db.byPkg[k] = append(db.byPkg[k], &entryRef{entry: e, affected: a})
	}
}

// Len returns the number of entries added (withdrawn ones included).
func (db *DB) Len() int { return db.entries }

// Skipped returns how many files Load skipped as not OSV entries.
func (db *DB) Skipped() int { return db.skipped }

// normEcosystem maps an OSV ecosystem ("Go", "npm", "npm:…" variants) to
// the name used as index key; "" for ecosystems this package does not match.
func normEcosystem(e string) string {
	base, _, _ := strings.Cut(e, ":")
	switch strings.ToLower(base) {
	case "go", "golang":
		return EcosystemGo
	case "npm":
		return EcosystemNPM
	}
	return ""
}

func normName(ecosystem, name string) string {
	if normEcosystem(ecosystem) == EcosystemNPM {
		return strings.ToLower(name) // npm names are lowercase; old ones were not
	}
	return name
}

// Load reads every OSV entry under dir: *.json files at any depth, and the
// *.json members of any *.zip file (OSV's per-ecosystem all.zip). Files
// that are JSON but not OSV entries (index files) are skipped and counted;
// a malformed file is an error naming it, because silently dropping an
// advisory would hide a vulnerability.
func Load(ctx context.Context, dir string) (*DB, error) {
	return load(ctx, dir, nil)
}

// filter decides from an entry's raw bytes whether to parse it, whether a
// file it drops is an entry, and reads its modified time; nil parses
// everything.
type filter func([]byte) (keep, entry bool, mod time.Time)

func load(ctx context.Context, dir string, keep filter) (*DB, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("couldn't open OSV database: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("OSV database %s is not a directory", dir)
	}
	var files, zips []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".json"):
			files = append(files, p)
		case strings.HasSuffix(p, ".zip"):
			zips = append(zips, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read OSV database: %w", err)
	}
	db := NewDB()
	if err := db.loadFiles(ctx, files, keep); err != nil {
		return nil, err
	}
	for _, z := range zips {
		if err := db.loadZip(z, keep); err != nil {
			return nil, err
		}
	}
	if db.entries == 0 {
		return nil, fmt.Errorf("OSV database %s holds no entries (want OSV JSON files, e.g. DIR/Go/*.json)", dir)
	}
	return db, nil
}

// loadFiles reads and filters or parses files on several goroutines (the
// reads are system calls: more readers than cores keep the cores busy) and
// adds them in path order, so the result does not depend on scheduling.
func (db *DB) loadFiles(ctx context.Context, files []string, keep filter) error {
	entries := make([]*Entry, len(files))
	errs := make([]error, len(files))
	mods := make([]time.Time, len(files))
	dropped := make([]bool, len(files))
	notEntry := make([]bool, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(4*runtime.GOMAXPROCS(0), len(files))) {
		wg.Go(func() {
			var buf []byte
			for {
				j := int(next.Add(1) - 1)
				if j >= len(files) || ctx.Err() != nil {
					return
				}
				var b []byte
				b, errs[j] = readEntry(files[j], buf)
				if errs[j] != nil {
					continue
				}
				buf = b
				if keep != nil {
					ok, isEntry, mod := keep(b)
					if !ok {
						dropped[j], notEntry[j], mods[j] = true, !isEntry, mod
						continue
					}
				}
				entries[j], errs[j] = Parse(b) // keeps no reference to b
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for j, e := range entries {
		if dropped[j] && notEntry[j] {
			db.skipped++
			continue
		}
		if dropped[j] {
			db.entries++
			if mods[j].After(db.lastMod) {
				db.lastMod = mods[j]
			}
			continue
		}
		if err := errs[j]; err != nil {
			if errors.Is(err, ErrNotEntry) {
				db.skipped++
				continue
			}
			return fmt.Errorf("couldn't load %s: %w", files[j], err)
		}
		db.Add(e)
	}
	return nil
}

func (db *DB) loadZip(path string, keep filter) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("couldn't open %s: %w", path, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".json") || f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("couldn't read %s in %s: %w", f.Name, path, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, MaxEntryBytes+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("couldn't read %s in %s: %w", f.Name, path, err)
		}
		if keep != nil {
			if ok, isEntry, mod := keep(b); !ok {
				if !isEntry {
					db.skipped++
					continue
				}
				db.entries++
				if mod.After(db.lastMod) {
					db.lastMod = mod
				}
				continue
			}
		}
		e, err := Parse(b)
		if errors.Is(err, ErrNotEntry) {
			db.skipped++
			continue
		}
		if err != nil {
			return fmt.Errorf("couldn't load %s in %s: %w", f.Name, path, err)
		}
		db.Add(e)
	}
	return nil
}

// Match is one advisory affecting a package version.
type Match struct {
	Entry    *Entry
	Affected *Affected
	// Fixed is the lowest fixed version above the matched one, as the
	// entry writes it, or "" when there is none.
	Fixed string
}

// Query returns the advisories affecting version of package name in
// ecosystem ("Go" or "npm"), sorted by ID. A version that is not a
// semantic version matches only an entry's explicit versions list.
func (db *DB) Query(ecosystem, name, version string) []Match {
	eco := normEcosystem(ecosystem)
	refs := db.byPkg[pkgKey{eco, normName(ecosystem, name)}]
	if len(refs) == 0 {
		return nil
	}
	c := canonical(eco, version)
	var out []Match
	for _, r := range refs {
		var hit bool
		var fixed string
		if c == "" {
			hit = slices.Contains(r.affected.Versions, version)
		} else {
			hit, fixed = r.affected.affectsVersion(eco, c)
		}
		if hit {
			out = append(out, Match{Entry: r.entry, Affected: r.affected, Fixed: fixed})
		}
	}
	slices.SortFunc(out, func(a, b Match) int { return strings.Compare(a.Entry.ID, b.Entry.ID) })
	return slices.CompactFunc(out, func(a, b Match) bool { return a.Entry == b.Entry })
}

// Scores returns the severity ratings of m: each CVSS v2/v3 vector of the
// affected package or the entry scored as a base score ("7.5"), and the
// database_specific.severity name ("HIGH") when present. Vectors that
// cannot be scored (CVSS v4) are left out; Vectors lists them all.
func (m Match) Scores() []attest.VulnsScore {
	var out []attest.VulnsScore
	for _, s := range append(slices.Clone(m.Affected.Severity), m.Entry.Severity...) {
		if !strings.HasPrefix(s.Type, "CVSS_") {
			continue
		}
		f, err := CVSSBaseScore(s.Score)
		if err != nil {
			continue
		}
		out = append(out, attest.VulnsScore{Method: s.Type, Score: attest.ScoreValue(fmt.Sprintf("%.1f", f))})
	}
	for _, raw := range []json.RawMessage{m.Affected.DatabaseSpecific, m.Entry.DatabaseSpecific} {
		var ds struct {
			Severity any `json:"severity"`
		}
		if len(raw) == 0 || json.Unmarshal(raw, &ds) != nil {
			continue
		}
		if s, ok := ds.Severity.(string); ok && s != "" {
			out = append(out, attest.VulnsScore{Method: "osv:database_specific", Score: attest.ScoreValue(s)})
		}
	}
	return slices.Compact(out)
}

// Vectors returns the entry's severity vectors ("CVSS_V3 CVSS:3.1/…").
func (m Match) Vectors() []string {
	var out []string
	for _, s := range append(slices.Clone(m.Affected.Severity), m.Entry.Severity...) {
		out = append(out, s.Type+" "+s.Score)
	}
	return slices.Compact(out)
}

package osv

import (
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
)

// Target is one package version to scan.
type Target struct {
	Ecosystem string // "Go" or "npm"
	Name      string
	Version   string
	PURL      string
}

// Finding is one advisory affecting one scanned package.
type Finding struct {
	ID      string              `json:"id"`
	Aliases []string            `json:"aliases,omitempty"`
	Summary string              `json:"summary,omitempty"`
	PURL    string              `json:"purl"`
	Package string              `json:"package"`
	Version string              `json:"version"`
	Fixed   string              `json:"fixed,omitempty"`
	Scores  []attest.VulnsScore `json:"severity"`
	Vectors []string            `json:"vectors,omitempty"`
}

// Scan matches every package against db and returns the findings sorted
// by ID then purl.
func (db *DB) Scan(pkgs []Target) []Finding {
	var out []Finding
	for _, p := range pkgs {
		for _, m := range db.Query(p.Ecosystem, p.Name, p.Version) {
			out = append(out, Finding{
				ID:      m.Entry.ID,
				Aliases: m.Entry.Aliases,
				Summary: m.Entry.Summary,
				PURL:    p.PURL,
				Package: p.Name,
				Version: p.Version,
				Fixed:   m.Fixed,
				Scores:  m.Scores(),
				Vectors: m.Vectors(),
			})
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmpOr(strings.Compare(a.ID, b.ID), strings.Compare(a.PURL, b.PURL))
	})
	return out
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// NewPredicate writes findings as a vulns predicate: one result per
// advisory and package, its severity the scores the advisory gives (an
// advisory without any is left without, which policy counts as critical),
// and annotations naming the package, version, fix, aliases and vectors.
func NewPredicate(findings []Finding, scanner attest.VulnsScanner, started, finished time.Time) *attest.VulnsPredicate {
	p := &attest.VulnsPredicate{Scanner: scanner, Metadata: attest.VulnsMetadata{ScanStartedOn: started.UTC(), ScanFinishedOn: finished.UTC()}}
	p.Scanner.Result = make([]attest.VulnsResult, 0, len(findings))
	for _, f := range findings {
		r := attest.VulnsResult{ID: f.ID, Severity: f.Scores}
		if r.Severity == nil {
			r.Severity = []attest.VulnsScore{}
		}
		r.Annotations = append(r.Annotations, map[string]any{"purl": f.PURL}, map[string]any{"installedVersion": f.Version})
		if f.Fixed != "" {
			r.Annotations = append(r.Annotations, map[string]any{"fixedVersion": f.Fixed})
		}
		if len(f.Aliases) > 0 {
			r.Annotations = append(r.Annotations, map[string]any{"aliases": f.Aliases})
		}
		if f.Summary != "" {
			r.Annotations = append(r.Annotations, map[string]any{"summary": f.Summary})
		}
		if len(f.Vectors) > 0 {
			r.Annotations = append(r.Annotations, map[string]any{"vectors": f.Vectors})
		}
		p.Scanner.Result = append(p.Scanner.Result, r)
	}
	return p
}

// LastModified returns the latest "modified" time of the entries (zero
// when none has one): how fresh the database is.
func (db *DB) LastModified() time.Time {
	last := db.lastMod
	for _, refs := range db.byPkg {
		for _, r := range refs {
			if t, err := time.Parse(time.RFC3339Nano, r.entry.Modified); err == nil && t.After(last) {
				last = t
			}
		}
	}
	return last.UTC()
}

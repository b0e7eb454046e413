// Package osv reads an offline copy of the Open Source Vulnerability
// database (OSV schema, https://ossf.github.io/osv-schema/) and matches
// package versions against it.
//
// A database is a directory of OSV JSON files as published per ecosystem
// (DIR/Go/*.json, DIR/npm/*.json, the vulndb-v1 ID/ layout, or the
// ecosystem's all.zip, extracted or not). Ranges of type SEMVER and
// ECOSYSTEM are understood for the Go and npm ecosystems, with the
// introduced, fixed, last_affected and limit events and the explicit
// versions list; Go versions may be pseudo-versions or +incompatible.
package osv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/custody-dev/custody/internal/sbom"
)

// MaxEntryBytes bounds one OSV file.
const MaxEntryBytes = 4 << 20

// Ecosystems this package matches.
const (
	EcosystemGo  = "Go"
	EcosystemNPM = "npm"
)

// Entry is one OSV advisory: the fields matching and reporting need.
type Entry struct {
	ID               string          `json:"id"`
	Modified         string          `json:"modified,omitempty"`
	Withdrawn        string          `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Severity         []Severity      `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// Affected is one affected package of an Entry.
type Affected struct {
	Package          Package         `json:"package"`
	Ranges           []Range         `json:"ranges,omitempty"`
	Versions         []string        `json:"versions,omitempty"`
	Severity         []Severity      `json:"severity,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// Package names a package in an ecosystem.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range is a version range: a list of events, evaluated in version order.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Severity is an OSV severity: a type (CVSS_V2, CVSS_V3, CVSS_V4, Ubuntu)
// and a score (for CVSS, the vector string).
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// ErrNotEntry is returned by Parse for well-formed JSON that is not an OSV
// entry (an index file, a JSON array); database loading skips such files.
var ErrNotEntry = errors.New("not an OSV entry")

// Parse parses one OSV entry. It returns ErrNotEntry (wrapped) for JSON
// that is not an object with an "id", and other errors for malformed
// JSON or an entry whose fields have the wrong shape.
func Parse(b []byte) (*Entry, error) {
	if len(b) > MaxEntryBytes {
		return nil, fmt.Errorf("entry is %d bytes, more than the limit of %d", len(b), MaxEntryBytes)
	}
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(t) > 0 && t[0] != '{' {
		if !json.Valid(t) {
			return nil, errors.New("invalid JSON")
		}
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotEntry)
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("couldn't parse OSV entry: %w", err)
	}
	if e.ID == "" {
		return nil, fmt.Errorf("%w: no id", ErrNotEntry)
	}
	for i := range e.Affected {
		a := &e.Affected[i]
		if a.Package.Name == "" && a.Package.PURL != "" {
			if eco, name, ok := ecosystemFromPURL(a.Package.PURL); ok {
				a.Package.Ecosystem, a.Package.Name = eco, name
			}
		}
	}
	return &e, nil
}

// ecosystemFromPURL maps pkg:golang/NAME and pkg:npm/NAME to an OSV
// ecosystem and package name, parsing with sbom.ParsePURL.
func ecosystemFromPURL(s string) (eco, name string, ok bool) {
	p, err := sbom.ParsePURL(s)
	if err != nil {
		return "", "", false
	}
	switch p.Type {
	case "golang":
		return EcosystemGo, p.Name, true
	case "npm":
		return EcosystemNPM, p.Name, true
	}
	return "", "", false
}

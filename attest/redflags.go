package attest

import (
	"errors"
	"fmt"
	"github.com/custody-dev/custody/internal/lazyre"
	"time"
)

// PredicateRedFlags is custody's red flags predicate: what a custody server
// found when it compared a new build with the earlier builds of its
// lineage (same subject name and source repository). The server computes
// it for every provenance it indexes and signs it with its audit key;
// docs/redflags.md describes the kinds.
const PredicateRedFlags = "https://custody.dev/redflags/v1"

// Limits of a red flags predicate, which ParseRedFlags enforces.
const (
	// MaxRedFlags is the largest number of flags one predicate carries.
	MaxRedFlags = 1000
	// MaxRedFlagDiff is the largest number of dependency changes listed.
	MaxRedFlagDiff = 5000
	// maxRedFlagText bounds a message or a "clear" text.
	maxRedFlagText = 4096
)

// RedFlagsPredicate is the predicate of PredicateRedFlags.
type RedFlagsPredicate struct {
	// ComputedBy names the server that compared (its URL or name).
	ComputedBy string `json:"computedBy"`
	// ComputedAt is when it compared.
	ComputedAt time.Time `json:"computedAt"`
	// Build is the provenance the flags are about.
	Build RedFlagsBuild `json:"build"`
	// Lineage says which builds it was compared with.
	Lineage RedFlagsLineage `json:"lineage"`
	// Flags are the red flags found; empty when the build looked like
	// the ones before it.
	Flags []RedFlag `json:"flags"`
	// Dependencies is the dependency diff since the last release (or the
	// previous build when the lineage has no release).
	Dependencies []DependencyChange `json:"dependencies,omitempty"`
	// Notes say what could not be compared and why (an SBOM that did not
	// parse, a dependency list over the cap, too short a history).
	Notes []string `json:"notes,omitempty"`
}

// RedFlagsBuild identifies the build a red flags predicate is about.
type RedFlagsBuild struct {
	// Bundle is the lowercase hex SHA-256 of its provenance bundle.
	Bundle string `json:"bundle"`
	// EvidenceID is its ID in the server's index.
	EvidenceID int64  `json:"evidenceId"`
	BuildID    string `json:"buildId,omitempty"`
	SourceURI  string `json:"sourceUri,omitempty"`
	SourceRef  string `json:"sourceRef,omitempty"`
	BuilderID  string `json:"builderId,omitempty"`
}

// RedFlagsLineage describes the history a build was compared with.
type RedFlagsLineage struct {
	SubjectName string `json:"subjectName"`
	SourceURI   string `json:"sourceUri,omitempty"`
	// Track is "release" for builds of release refs, else the ref.
	Track string `json:"track,omitempty"`
	// Compared is how many earlier builds of the lineage were read.
	Compared int `json:"compared"`
	// LastRelease is the build the dependency diff is against, if any.
	LastRelease *RedFlagsBuild `json:"lastRelease,omitempty"`
}

// RedFlag is one finding.
type RedFlag struct {
	// Kind is the finding's name, e.g. "new-dependency" (lowercase letters,
	// digits and '-').
	Kind string `json:"kind"`
	// Message says what was found, with the numbers it was judged on.
	Message string `json:"message"`
	// Clear says what would clear it.
	Clear string `json:"clear,omitempty"`
	// Subject is what the flag is about (a dependency, a toolchain), if
	// anything narrower than the build.
	Subject string `json:"subject,omitempty"`
}

// DependencyChange is one line of a dependency diff: Change is "added",
// "removed" or "changed"; From and To are "VERSION DIGEST" as recorded.
type DependencyChange struct {
	Change string `json:"change"`
	Name   string `json:"name"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// RedFlagKinds are the kinds of red flags custody servers report
// (internal/redflags.Kinds must list the same, a test holds them equal):
// the names a policy's redFlags section may use. A kind a server reports
// that is not listed here still reaches a policy's Rego as input.redFlags.
var RedFlagKinds = []string{
	"new-source", "builder-changed", "new-builder-key", "new-signer", "non-release-ref",
	"new-dependency", "dependency-added", "dependency-removed", "dependency-changed", "dependencies-unchecked",
	"toolchain-changed", "toolchain-downgrade", "newly-unpinned", "build-duration", "unusual-hour",
}

var redFlagKind = lazyre.New(`^[a-z][a-z0-9-]{0,63}$`)

// ParseRedFlags parses a red flags predicate from untrusted bytes. Besides
// what decodePredicate refuses (over MaxStatementBytes, a duplicate member,
// invalid UTF-8), it refuses unknown members, no computedBy or
// computedAt, a build bundle that is not lowercase hex SHA-256, no lineage
// subject name, more than MaxRedFlags flags or MaxRedFlagDiff dependency
// changes, a flag kind that is not a lowercase name, an empty or overlong
// message, and a change other than added, removed or changed.
func ParseRedFlags(b []byte) (*RedFlagsPredicate, error) {
	var p RedFlagsPredicate
	if err := decodePredicate("red flags", b, MaxStatementBytes, true, &p); err != nil {
		return nil, err
	}
	switch {
	case p.ComputedBy == "" || len(p.ComputedBy) > maxNameLen:
		return nil, errors.New("red flags predicate names no computedBy (or one over 1024 bytes)")
	case p.ComputedAt.IsZero():
		return nil, errors.New("red flags predicate has no computedAt")
	case !sha256Hex.MatchString(p.Build.Bundle):
		return nil, fmt.Errorf("red flags build.bundle %q is not a lowercase hex sha256", p.Build.Bundle)
	case p.Lineage.SubjectName == "" || len(p.Lineage.SubjectName) > maxNameLen:
		return nil, errors.New("red flags lineage names no subjectName (or one over 1024 bytes)")
	case p.Lineage.Compared < 0:
		return nil, errors.New("red flags lineage.compared is negative")
	case len(p.Flags) > MaxRedFlags:
		return nil, fmt.Errorf("red flags predicate has %d flags, more than %d", len(p.Flags), MaxRedFlags)
	case len(p.Dependencies) > MaxRedFlagDiff:
		return nil, fmt.Errorf("red flags predicate lists %d dependency changes, more than %d", len(p.Dependencies), MaxRedFlagDiff)
	}
	for i, f := range p.Flags {
		if !redFlagKind.MatchString(f.Kind) {
			return nil, fmt.Errorf("red flag %d: kind %q is not a lowercase name", i, f.Kind)
		}
		if f.Message == "" || len(f.Message) > maxRedFlagText || len(f.Clear) > maxRedFlagText || len(f.Subject) > maxRedFlagText {
			return nil, fmt.Errorf("red flag %d (%s): message empty, or a text over %d bytes", i, f.Kind, maxRedFlagText)
		}
	}
	for i, d := range p.Dependencies {
		if d.Change != "added" && d.Change != "removed" && d.Change != "changed" {
			return nil, fmt.Errorf("dependency change %d: change %q is not added, removed or changed", i, d.Change)
		}
		if d.Name == "" || len(d.Name) > maxRedFlagText {
			return nil, fmt.Errorf("dependency change %d: name empty or over %d bytes", i, maxRedFlagText)
		}
	}
	if p.Flags == nil {
		p.Flags = []RedFlag{}
	}
	return &p, nil
}

package attest

import (
	"errors"
	"fmt"
	"time"
)

// PredicateRebuild is the in-toto predicate type of a rebuild attestation,
// written by `custody rebuild` (schema in internal/rebuild/PREDICATE.md):
// an independent rebuilder replayed a recorded build from its source commit
// and compared the outputs with the recorded subjects. Its statement's
// subjects are the original subjects with their recorded digests, so
// evidence about an artifact finds it, whether the rebuild matched or not.
const PredicateRebuild = "https://custody.dev/rebuild/v1"

// Statuses of one subject in a rebuild.
const (
	RebuildMatch    = "match"    // the rebuilt file has the recorded digest
	RebuildMismatch = "mismatch" // the rebuilt file has another digest
	RebuildMissing  = "missing"  // the rebuild produced no file of that name
)

// RebuildPredicate is the predicate of PredicateRebuild.
type RebuildPredicate struct {
	// Original identifies the build that was replayed.
	Original RebuildOriginal `json:"original"`
	// Rebuilder identifies who rebuilt it.
	Rebuilder Rebuilder `json:"rebuilder"`
	// Matched is true only when every subject's status is RebuildMatch.
	Matched bool `json:"matched"`
	// Subjects has one result per subject of the original statement,
	// sorted by name.
	Subjects []RebuildSubject `json:"subjects"`
	// Toolchains compares the recorded toolchains with the rebuilder's.
	Toolchains RebuildToolchains `json:"toolchains"`
	// Hermetic is true when the rebuild ran in the sandbox (always, for
	// custody rebuild, which refuses to run without it).
	Hermetic bool `json:"hermetic"`
	// Sandbox names the sandbox tool and its version ("bubblewrap 0.8.0").
	Sandbox string `json:"sandbox,omitempty"`
	// RefusedEnvironment names the recorded variables that were not
	// replayed and why ("LD_PRELOAD: not on the replay allow-list …"),
	// never their values.
	RefusedEnvironment []string `json:"refusedEnvironment,omitempty"`
	// StartedOn and FinishedOn bound the rebuild.
	StartedOn  time.Time `json:"startedOn"`
	FinishedOn time.Time `json:"finishedOn"`
}

// RebuildOriginal is the replayed build as its provenance recorded it.
type RebuildOriginal struct {
	// BuildID is the provenance's invocation ID.
	BuildID string `json:"buildId"`
	// BuilderID is the provenance's runDetails.builder.id.
	BuilderID string `json:"builderId"`
	// Bundle is the digest of the Sigstore bundle carrying the provenance
	// ({"sha256": HEX}).
	Bundle map[string]string `json:"bundle"`
	// Signer is who signed the original provenance: the key hint of a
	// key-signed bundle, or the certificate identity.
	Signer string `json:"signer,omitempty"`
	// Source is the source commit the rebuild fetched.
	SourceURI    string `json:"sourceUri"`
	SourceRef    string `json:"sourceRef,omitempty"`
	SourceCommit string `json:"sourceCommit"`
	// Command and WorkingDir are what was replayed.
	Command    []string `json:"command"`
	WorkingDir string   `json:"workingDir"`
}

// Rebuilder identifies the rebuilder. Only KeyID is authenticated (it is
// the key that signed the attestation); ID is what the rebuilder says it is.
type Rebuilder struct {
	ID    string `json:"id"`
	KeyID string `json:"keyId,omitempty"` // lowercase hex SHA-256 of the PKIX public key
}

// RebuildSubject is the outcome for one recorded subject.
type RebuildSubject struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"`
	Expected map[string]string `json:"expected"`
	// Got is the rebuilt file's digest; absent when Status is RebuildMissing.
	Got map[string]string `json:"got,omitempty"`
	// Path is where the rebuilt file was found, relative to the working
	// directory.
	Path string `json:"path,omitempty"`
	// Diffoscope is the start of diffoscope's text report on a mismatch,
	// when diffoscope was installed and the original file was at hand.
	Diffoscope string `json:"diffoscope,omitempty"`
}

// RebuildToolchains are the recorded and the rebuilder's toolchain versions.
type RebuildToolchains struct {
	Recorded  map[string]string `json:"recorded,omitempty"`
	Rebuilder map[string]string `json:"rebuilder,omitempty"`
	// Differs names the toolchains whose versions differ (or that the
	// rebuilder lacks). Non-empty only with AllowToolchainMismatch.
	Differs []string `json:"differs,omitempty"`
}

// ProvenanceBundle is the lowercase hex SHA-256 of the bundle that carried
// the replayed provenance, "" when the predicate does not record it.
func (p *RebuildPredicate) ProvenanceBundle() string { return p.Original.Bundle["sha256"] }

// ParseRebuild parses a rebuild predicate from untrusted bytes. Members it
// does not know are ignored. Besides what decodePredicate refuses (over
// MaxStatementBytes, a duplicate member, invalid UTF-8), it refuses a
// missing boolean "matched" and what Validate refuses.
func ParseRebuild(b []byte) (*RebuildPredicate, error) {
	var raw struct {
		RebuildPredicate
		Matched *bool `json:"matched"`
	}
	if err := decodePredicate("rebuild", b, MaxStatementBytes, false, &raw); err != nil {
		return nil, err
	}
	if raw.Matched == nil {
		return nil, errors.New("rebuild predicate has no boolean \"matched\"")
	}
	p := raw.RebuildPredicate
	p.Matched = *raw.Matched
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that p is consistent: at least one subject, every
// subject named with a known status and an expected digest, Matched true
// exactly when every subject matched, an original.buildId of at most 1024
// bytes, and an original.bundle.sha256, when given, of 64 lowercase hex
// digits.
func (p *RebuildPredicate) Validate() error {
	if len(p.Subjects) == 0 {
		return errors.New("rebuild predicate has no subjects")
	}
	all := true
	for i, s := range p.Subjects {
		switch s.Status {
		case RebuildMatch, RebuildMismatch, RebuildMissing:
		default:
			return fmt.Errorf("rebuild subject %d (%q) has unknown status %q", i, s.Name, s.Status)
		}
		if len(s.Expected) == 0 {
			return fmt.Errorf("rebuild subject %d (%q) has no expected digest", i, s.Name)
		}
		all = all && s.Status == RebuildMatch
	}
	if p.Matched != all {
		return fmt.Errorf("rebuild predicate says matched=%t but its subjects say %t", p.Matched, all)
	}
	if len(p.Original.BuildID) > maxNameLen {
		return errors.New("rebuild predicate original.buildId is over 1024 bytes")
	}
	if h, ok := p.Original.Bundle["sha256"]; ok && !sha256Hex.MatchString(h) {
		return fmt.Errorf("rebuild predicate original.bundle.sha256 %q is not 64 lowercase hex digits", h)
	}
	return nil
}

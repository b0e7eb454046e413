package rebuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// PredicateType is the in-toto predicate type of a rebuild attestation
// (schema in PREDICATE.md). It is the type policy.PredicateRebuild names.
const PredicateType = "https://custody.dev/rebuild/v1"

// MaxPredicateBytes bounds the predicates ParsePredicate and ParseReview
// read.
const MaxPredicateBytes = 1 << 20

// Statuses of one subject in a rebuild.
const (
	StatusMatch    = "match"    // the rebuilt file has the recorded digest
	StatusMismatch = "mismatch" // the rebuilt file has another digest
	StatusMissing  = "missing"  // the rebuild produced no file of that name
)

// Predicate is the predicate of a rebuild attestation: an independent
// rebuilder replayed a recorded build from its source commit and compared
// the outputs with the recorded subjects. Its statement's subjects are the
// original subjects with their recorded digests, so evidence about an
// artifact finds it, whether the rebuild matched or not.
type Predicate struct {
	// Original identifies the build that was replayed.
	Original Original `json:"original"`
	// Rebuilder identifies who rebuilt it.
	Rebuilder Rebuilder `json:"rebuilder"`
	// Matched is true only when every subject's status is StatusMatch.
	Matched bool `json:"matched"`
	// Subjects has one result per subject of the original statement,
	// sorted by name.
	Subjects []SubjectResult `json:"subjects"`
	// Toolchains compares the recorded toolchains with the rebuilder's.
	Toolchains Toolchains `json:"toolchains"`
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

// Original is the replayed build as its provenance recorded it.
type Original struct {
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

// SubjectResult is the outcome for one recorded subject.
type SubjectResult struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"`
	Expected map[string]string `json:"expected"`
	// Got is the rebuilt file's digest; absent when Status is StatusMissing.
	Got map[string]string `json:"got,omitempty"`
	// Path is where the rebuilt file was found, relative to the working
	// directory.
	Path string `json:"path,omitempty"`
	// Diffoscope is the start of diffoscope's text report on a mismatch,
	// when diffoscope was installed and the original file was at hand.
	Diffoscope string `json:"diffoscope,omitempty"`
}

// Toolchains are the recorded and the rebuilder's toolchain versions.
type Toolchains struct {
	Recorded  map[string]string `json:"recorded,omitempty"`
	Rebuilder map[string]string `json:"rebuilder,omitempty"`
	// Differs names the toolchains whose versions differ (or that the
	// rebuilder lacks). Non-empty only with AllowToolchainMismatch.
	Differs []string `json:"differs,omitempty"`
}

// ParsePredicate parses a rebuild predicate from untrusted bytes. It
// refuses input over MaxPredicateBytes, a missing "matched", a subject with
// an unknown status, and "matched": true with a subject that did not match.
func ParsePredicate(b []byte) (*Predicate, error) {
	if len(b) > MaxPredicateBytes {
		return nil, fmt.Errorf("rebuild predicate is %d bytes, more than the limit of %d", len(b), MaxPredicateBytes)
	}
	var raw struct {
		Predicate
		Matched *bool `json:"matched"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("couldn't parse rebuild predicate: %w", err)
	}
	if raw.Matched == nil {
		return nil, errors.New("rebuild predicate has no boolean \"matched\"")
	}
	p := raw.Predicate
	p.Matched = *raw.Matched
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that p is consistent: at least one subject, every
// subject named with a known status and an expected digest, and Matched
// true exactly when every subject matched.
func (p *Predicate) Validate() error {
	if len(p.Subjects) == 0 {
		return errors.New("rebuild predicate has no subjects")
	}
	all := true
	for i, s := range p.Subjects {
		switch s.Status {
		case StatusMatch, StatusMismatch, StatusMissing:
		default:
			return fmt.Errorf("rebuild subject %d (%q) has unknown status %q", i, s.Name, s.Status)
		}
		if len(s.Expected) == 0 {
			return fmt.Errorf("rebuild subject %d (%q) has no expected digest", i, s.Name)
		}
		all = all && s.Status == StatusMatch
	}
	if p.Matched != all {
		return fmt.Errorf("rebuild predicate says matched=%t but its subjects say %t", p.Matched, all)
	}
	return nil
}

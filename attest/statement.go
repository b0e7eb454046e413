package attest

import (
	"encoding/json"
	"time"
)

// Well-known type URIs.
const (
	StatementTypeV1   = "https://in-toto.io/Statement/v1"
	StatementTypeV01  = "https://in-toto.io/Statement/v0.1"
	PayloadType       = "application/vnd.in-toto+json"
	PredicateSLSAv1   = "https://slsa.dev/provenance/v1"
	PredicateSLSAv02  = "https://slsa.dev/provenance/v0.2"
	BuildTypeCustody  = "https://custody.dev/build/v1"
	MaxStatementBytes = 16 << 20
)

// Subject is one artifact a statement is about.
type Subject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// Statement is an in-toto statement with its predicate kept raw.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// ProvenanceFacts is the version-independent view of a provenance predicate
// that verification and policy check.
type ProvenanceFacts struct {
	BuilderID    string    `json:"builderId"`
	BuildType    string    `json:"buildType,omitempty"`
	BuildID      string    `json:"buildId,omitempty"`
	SourceURI    string    `json:"sourceUri,omitempty"`    // as recorded, e.g. git+https://github.com/org/repo
	SourceRef    string    `json:"sourceRef,omitempty"`    // e.g. refs/tags/v1.2.0
	SourceCommit string    `json:"sourceCommit,omitempty"` // full hex commit
	StartedOn    time.Time `json:"startedOn,omitzero"`     // zero when not recorded
	FinishedOn   time.Time `json:"finishedOn,omitzero"`    // zero when not recorded
	Dirty        bool      `json:"dirty,omitempty"`
	// Pinning lists the unpinned inputs a custody build recorded; policy
	// (Rego: input.provenance[_].facts.pinning) can refuse them.
	Pinning []Pinning `json:"pinning,omitempty"`
}

package attest

import "time"

// ProvenanceV1 is the SLSA Provenance v1 predicate
// (https://slsa.dev/spec/v1.0/provenance).
type ProvenanceV1 struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is the input side of a build.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   any                  `json:"externalParameters"`
	InternalParameters   any                  `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// RunDetails describes the run that produced the subjects.
type RunDetails struct {
	Builder    Builder              `json:"builder"`
	Metadata   *BuildMetadata       `json:"metadata,omitempty"`
	Byproducts []ResourceDescriptor `json:"byproducts,omitempty"`
}

// Builder identifies the trusted build platform.
type Builder struct {
	ID                  string               `json:"id"`
	Version             map[string]string    `json:"version,omitempty"`
	BuilderDependencies []ResourceDescriptor `json:"builderDependencies,omitempty"`
}

// BuildMetadata carries the unique invocation ID and times.
type BuildMetadata struct {
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

// ResourceDescriptor is the in-toto v1 ResourceDescriptor
// (https://github.com/in-toto/attestation/blob/main/spec/v1/resource_descriptor.md).
type ResourceDescriptor struct {
	URI              string            `json:"uri,omitempty"`
	Digest           map[string]string `json:"digest,omitempty"`
	Name             string            `json:"name,omitempty"`
	DownloadLocation string            `json:"downloadLocation,omitempty"`
	MediaType        string            `json:"mediaType,omitempty"`
	Content          []byte            `json:"content,omitempty"`
	Annotations      map[string]any    `json:"annotations,omitempty"`
}

// CustodyExternalParameters is externalParameters for BuildTypeCustody: what
// the user asked for. Everything here is under the caller's control.
type CustodyExternalParameters struct {
	Command    []string      `json:"command"`
	WorkingDir string        `json:"workingDir"`
	Source     CustodySource `json:"source"`
	Hermetic   bool          `json:"hermetic"`
}

// CustodySource is the source a custody build ran from.
type CustodySource struct {
	URI    string `json:"uri"`              // git+https://host/org/repo or git+file:///path
	Ref    string `json:"ref,omitempty"`    // refs/heads/main, refs/tags/v1
	Commit string `json:"commit,omitempty"` // full hex commit
	Dirty  bool   `json:"dirty,omitempty"`  // uncommitted changes were present (--allow-dirty)
}

// CustodyInternalParameters is internalParameters for BuildTypeCustody: what
// the builder observed about its own environment.
type CustodyInternalParameters struct {
	Environment map[string]string `json:"environment,omitempty"` // allow-listed; secrets as "[REDACTED]"
	Toolchains  map[string]string `json:"toolchains,omitempty"`  // "go": "go1.26.8 linux/amd64"
	Hostname    string            `json:"hostname,omitempty"`
	Findings    []string          `json:"findings,omitempty"` // e.g. unpinned inputs
	Pinning     []Pinning         `json:"pinning,omitempty"`  // unpinned inputs, structured for policy
}

// Pinning is one unpinned input a custody build found in its source tree:
// an input that can change without the source changing (a go.mod without
// go.sum, a Dockerfile FROM without a digest, an action used by tag, …).
type Pinning struct {
	Kind   string `json:"kind"`
	File   string `json:"file"` // slash-separated, relative to the build directory
	Detail string `json:"detail"`
}

// Redacted replaces the value of a secret-looking environment variable.
const Redacted = "[REDACTED]"

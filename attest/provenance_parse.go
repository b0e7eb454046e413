package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Build types whose layouts ParseProvenance knows.
const (
	// BuildTypeGitHubWorkflow is the GitHub Actions workflow build type
	// (https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1),
	// used by npm provenance and GitHub artifact attestations.
	BuildTypeGitHubWorkflow = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
)

// SLSA v1 predicate as read from untrusted bytes: only what the facts need,
// with the free-form parts kept raw.
type provenanceV1In struct {
	BuildDefinition struct {
		BuildType            string               `json:"buildType"`
		ExternalParameters   json.RawMessage      `json:"externalParameters"`
		InternalParameters   json.RawMessage      `json:"internalParameters"`
		ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder  Builder        `json:"builder"`
		Metadata *BuildMetadata `json:"metadata"`
	} `json:"runDetails"`
}

// SLSA v0.2 predicate (https://slsa.dev/provenance/v0.2).
type provenanceV02In struct {
	Builder struct {
		ID string `json:"id"`
	} `json:"builder"`
	BuildType  string `json:"buildType"`
	Invocation struct {
		ConfigSource struct {
			URI        string            `json:"uri"`
			Digest     map[string]string `json:"digest"`
			EntryPoint string            `json:"entryPoint"`
		} `json:"configSource"`
		Environment map[string]any `json:"environment"`
	} `json:"invocation"`
	Metadata *struct {
		BuildInvocationID string     `json:"buildInvocationId"`
		BuildStartedOn    *time.Time `json:"buildStartedOn"`
		BuildFinishedOn   *time.Time `json:"buildFinishedOn"`
	} `json:"metadata"`
	Materials []ResourceDescriptor `json:"materials"`
}

// ParseProvenance normalises an untrusted SLSA provenance predicate, v1
// (PredicateSLSAv1) or v0.2 (PredicateSLSAv02), into ProvenanceFacts.
//
// For v1 it understands custody's BuildTypeCustody (source from
// CustodyExternalParameters, build ID from metadata.invocationId), the GitHub
// workflow build type BuildTypeGitHubWorkflow (externalParameters.workflow
// and the gitCommit of resolvedDependencies[0]) and, for any other build type
// such as the SLSA GitHub generator's delegator, a first resolved dependency
// of the form git+https://host/org/repo@ref. For v0.2 the source is
// invocation.configSource. A predicate without a builder ID is an error.
func ParseProvenance(predicateType string, predicate []byte) (*ProvenanceFacts, error) {
	if len(predicate) > MaxStatementBytes {
		return nil, fmt.Errorf("predicate is %d bytes, more than the limit of %d", len(predicate), MaxStatementBytes)
	}
	var (
		f   *ProvenanceFacts
		err error
	)
	switch predicateType {
	case PredicateSLSAv1:
		f, err = parseV1(predicate)
	case PredicateSLSAv02:
		f, err = parseV02(predicate)
	default:
		return nil, fmt.Errorf("predicate type %q is not SLSA provenance v1 or v0.2", predicateType)
	}
	if err != nil {
		return nil, err
	}
	if f.BuilderID == "" {
		return nil, errors.New("provenance has no builder id")
	}
	return f, nil
}

func parseV1(b []byte) (*ProvenanceFacts, error) {
	var p provenanceV1In
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("couldn't parse SLSA v1 provenance: %w", err)
	}
	bd := p.BuildDefinition
	f := &ProvenanceFacts{
		BuilderID: p.RunDetails.Builder.ID,
		BuildType: bd.BuildType,
	}
	if bd.BuildType == "" {
		return nil, errors.New("provenance has no buildType")
	}
	if m := p.RunDetails.Metadata; m != nil {
		f.BuildID = m.InvocationID
		if m.StartedOn != nil {
			f.StartedOn = *m.StartedOn
		}
		if m.FinishedOn != nil {
			f.FinishedOn = *m.FinishedOn
		}
	}
	// The first resolved dependency is the source in every layout we know;
	// build-type specific fields below take precedence.
	if len(bd.ResolvedDependencies) > 0 {
		dep := bd.ResolvedDependencies[0]
		if strings.HasPrefix(dep.URI, "git+") {
			f.SourceURI, f.SourceRef = splitRef(dep.URI)
			f.SourceCommit = gitCommit(dep.Digest)
		}
	}
	switch bd.BuildType {
	case BuildTypeCustody:
		var ext CustodyExternalParameters
		if err := json.Unmarshal(bd.ExternalParameters, &ext); err != nil {
			return nil, fmt.Errorf("couldn't parse custody externalParameters: %w", err)
		}
		f.SourceURI = ext.Source.URI
		f.SourceRef = ext.Source.Ref
		f.SourceCommit = ext.Source.Commit
		f.Dirty = ext.Source.Dirty
		if len(bd.InternalParameters) > 0 && string(bd.InternalParameters) != "null" {
			var in CustodyInternalParameters
			if err := json.Unmarshal(bd.InternalParameters, &in); err != nil {
				return nil, fmt.Errorf("couldn't parse custody internalParameters: %w", err)
			}
			f.Pinning = in.Pinning
		}
	case BuildTypeGitHubWorkflow:
		var ext struct {
			Workflow struct {
				Ref        string `json:"ref"`
				Repository string `json:"repository"`
				Path       string `json:"path"`
			} `json:"workflow"`
		}
		if err := json.Unmarshal(bd.ExternalParameters, &ext); err != nil {
			return nil, fmt.Errorf("couldn't parse workflow externalParameters: %w", err)
		}
		if r := ext.Workflow.Repository; r != "" {
			f.SourceURI = "git+" + r
		}
		if ext.Workflow.Ref != "" {
			f.SourceRef = ext.Workflow.Ref
		}
	default:
		if f.SourceRef == "" && len(bd.InternalParameters) > 0 {
			// SLSA GitHub generator layouts record the ref as GITHUB_REF.
			var ip struct {
				Ref string `json:"GITHUB_REF"`
			}
			if json.Unmarshal(bd.InternalParameters, &ip) == nil {
				f.SourceRef = ip.Ref
			}
		}
	}
	return f, nil
}

func parseV02(b []byte) (*ProvenanceFacts, error) {
	var p provenanceV02In
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("couldn't parse SLSA v0.2 provenance: %w", err)
	}
	f := &ProvenanceFacts{
		BuilderID: p.Builder.ID,
		BuildType: p.BuildType,
	}
	cs := p.Invocation.ConfigSource
	if cs.URI != "" {
		f.SourceURI, f.SourceRef = splitRef(cs.URI)
		f.SourceCommit = gitCommit(cs.Digest)
	} else if len(p.Materials) > 0 && strings.HasPrefix(p.Materials[0].URI, "git+") {
		f.SourceURI, f.SourceRef = splitRef(p.Materials[0].URI)
		f.SourceCommit = gitCommit(p.Materials[0].Digest)
	}
	if m := p.Metadata; m != nil {
		f.BuildID = m.BuildInvocationID
		if m.BuildStartedOn != nil {
			f.StartedOn = *m.BuildStartedOn
		}
		if m.BuildFinishedOn != nil {
			f.FinishedOn = *m.BuildFinishedOn
		}
	}
	return f, nil
}

// splitRef splits "git+https://host/org/repo@refs/tags/v1" into the URI and
// the ref. An '@' in the authority (git+ssh://git@host/...) is not a ref.
func splitRef(uri string) (string, string) {
	at := strings.LastIndexByte(uri, '@')
	if at < 0 {
		return uri, ""
	}
	rest := uri
	if i := strings.Index(uri, "://"); i >= 0 {
		rest = uri[i+3 : at]
	} else {
		rest = uri[:at]
	}
	if !strings.Contains(rest, "/") {
		return uri, ""
	}
	return uri[:at], uri[at+1:]
}

func gitCommit(d map[string]string) string {
	for _, alg := range []string{"gitCommit", "sha1", "sha256"} {
		if v := d[alg]; v != "" {
			return v
		}
	}
	return ""
}

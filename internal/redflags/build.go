package redflags

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/sbom"
	"github.com/custody-dev/custody/internal/store"
)

// MaxDependencies is the largest number of dependencies compared per
// build. A build that lists more is flagged (KindDependenciesUnchecked):
// what lies past the cap was not compared, and a flag a policy can act on
// is better than a silent gap.
const MaxDependencies = 10000

// Build is what red flags compare of one build: the facts of its verified
// provenance for one subject.
type Build struct {
	EvidenceID    int64
	Bundle        string // lowercase hex SHA-256 of the provenance bundle
	PredicateType string
	SubjectName   string
	BuildID       string
	SourceURI     string
	SourceRef     string
	BuilderID     string
	// Signer: key ID, or certificate identity and issuer.
	SignerKeyID, SignerIdentity, SignerIssuer string
	// Deps are the resolved dependencies (and SBOM components) by name.
	Deps map[string]Dep
	// DepsOver is set when the build listed more than MaxDependencies.
	DepsOver bool
	// Toolchains are name -> version as the builder recorded them.
	Toolchains map[string]string
	// Unpinned are the unpinned inputs the builder recorded, as
	// "kind file: detail".
	Unpinned []string
	// Started and Finished are the build's own times (self-reported by
	// the builder, inside its signed provenance).
	Started, Finished time.Time
	// SignedAt is the time the server's log or timestamp authority proved.
	SignedAt time.Time
}

// Dep is one dependency: Name identifies it across versions
// ("pkg:golang/example.com/mod", "file:go.sum"), Version and Digest
// ("alg:value,…", sorted) say which one.
type Dep struct {
	Name, Version, Digest string
}

// String is "VERSION DIGEST", the form a diff shows.
func (d Dep) String() string { return strings.TrimSpace(d.Version + " " + d.Digest) }

// Duration is Finished - Started, or 0 when either is missing or the
// times run backwards.
func (b *Build) Duration() time.Duration {
	if b.Started.IsZero() || b.Finished.IsZero() || !b.Finished.After(b.Started) {
		return 0
	}
	return b.Finished.Sub(b.Started)
}

// When is the build's time for the hour-of-day comparison: the proven
// signing time, else the builder's start time.
func (b *Build) When() time.Time {
	if !b.SignedAt.IsZero() {
		return b.SignedAt
	}
	return b.Started
}

// bundlePayload is the one member of a Sigstore bundle red flags read: the
// DSSE payload (protojson writes bytes as standard base64).
type bundlePayload struct {
	DSSE struct {
		Payload []byte `json:"payload"`
	} `json:"dsseEnvelope"`
}

// provenanceExtras is what red flags read of a provenance predicate
// besides attest.ParseProvenance's facts.
type provenanceExtras struct {
	BuildDefinition struct {
		InternalParameters   json.RawMessage             `json:"internalParameters"`
		ResolvedDependencies []attest.ResourceDescriptor `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	Materials []attest.ResourceDescriptor `json:"materials"` // v0.2
}

// FromEvidence reads the build of subject name from an indexed provenance
// record. The signer and time are the index's (established by a
// verification that succeeded); everything else is read from the signed
// statement.
func FromEvidence(e *store.Evidence, name string) (*Build, error) {
	var bp bundlePayload
	if err := json.Unmarshal(e.Bundle, &bp); err != nil {
		return nil, fmt.Errorf("couldn't read bundle: %w", err)
	}
	if len(bp.DSSE.Payload) == 0 {
		return nil, errors.New("bundle has no DSSE payload")
	}
	st, err := attest.ParseStatement(bp.DSSE.Payload)
	if err != nil {
		return nil, err
	}
	facts, err := attest.ParseProvenance(st.PredicateType, st.Predicate)
	if err != nil {
		return nil, err
	}
	b := &Build{
		EvidenceID: e.ID, Bundle: e.BundleSHA256, PredicateType: e.PredicateType, SubjectName: name,
		BuildID: facts.BuildID, SourceURI: facts.SourceURI, SourceRef: facts.SourceRef, BuilderID: facts.BuilderID,
		SignerKeyID: e.SignerKeyID, SignerIdentity: e.SignerIdentity, SignerIssuer: e.SignerIssuer,
		Started: facts.StartedOn, Finished: facts.FinishedOn, SignedAt: e.IntegratedTime,
		Deps: map[string]Dep{}, Toolchains: map[string]string{},
	}
	for _, p := range facts.Pinning {
		b.Unpinned = append(b.Unpinned, fmt.Sprintf("%s %s: %s", p.Kind, p.File, p.Detail))
	}
	var x provenanceExtras
	if json.Unmarshal(st.Predicate, &x) == nil {
		var in struct {
			Toolchains map[string]string `json:"toolchains"`
		}
		if len(x.BuildDefinition.InternalParameters) > 0 && json.Unmarshal(x.BuildDefinition.InternalParameters, &in) == nil {
			maps.Copy(b.Toolchains, in.Toolchains)
		}
		b.addDeps(append(x.BuildDefinition.ResolvedDependencies, x.Materials...))
	}
	return b, nil
}

// addDeps adds resource descriptors as dependencies, skipping the source
// repository itself (its commit changes with every build).
func (b *Build) addDeps(rds []attest.ResourceDescriptor) {
	for _, rd := range rds {
		d, ok := depOf(rd)
		if !ok || (b.SourceURI != "" && strings.HasPrefix(rd.URI, b.SourceURI)) {
			continue
		}
		b.add(d)
	}
}

// add records d unless a dependency of that name is there already or the
// cap is reached.
func (b *Build) add(d Dep) {
	if _, ok := b.Deps[d.Name]; ok {
		return
	}
	if len(b.Deps) >= MaxDependencies {
		b.DepsOver = true
		return
	}
	b.Deps[d.Name] = d
}

// AddSBOM adds the components of a CycloneDX SBOM about the build's
// artifact that its provenance does not list. It returns an error for an
// SBOM that does not parse (the caller notes it; nothing is added).
func (b *Build) AddSBOM(predicate []byte) error {
	bom, err := sbom.Parse(predicate)
	if err != nil {
		return err
	}
	comps, _ := sbom.Components(bom)
	for _, c := range comps {
		p, err := sbom.ParsePURL(c.PURL)
		if err != nil {
			continue
		}
		var digests []string
		for alg, v := range c.Hashes {
			digests = append(digests, strings.ToLower(alg)+":"+v)
		}
		slices.Sort(digests)
		b.add(Dep{Name: "pkg:" + p.Type + "/" + p.Name, Version: p.Version, Digest: strings.Join(digests, ",")})
	}
	return nil
}

// depOf names a resource descriptor: a package URL by its type and name
// (the version apart), another URI without its "@ref", a file by its name.
func depOf(rd attest.ResourceDescriptor) (Dep, bool) {
	var digests []string
	for alg, v := range rd.Digest {
		digests = append(digests, alg+":"+v)
	}
	slices.Sort(digests)
	d := Dep{Digest: strings.Join(digests, ",")}
	switch {
	case strings.HasPrefix(rd.URI, "pkg:"):
		p, err := sbom.ParsePURL(rd.URI)
		if err != nil {
			return Dep{}, false
		}
		d.Name, d.Version = "pkg:"+p.Type+"/"+p.Name, p.Version
	case rd.URI != "":
		d.Name = rd.URI
		if i := strings.LastIndexByte(rd.URI, '@'); i > strings.LastIndexByte(rd.URI, '/') {
			d.Name, d.Version = rd.URI[:i], rd.URI[i+1:]
		}
	case rd.Name != "":
		d.Name = "file:" + rd.Name
	default:
		return Dep{}, false
	}
	if len(d.Name) > store.MaxFieldLen {
		return Dep{}, false
	}
	return d, true
}

// Package redflags compares a new build with the earlier builds of its
// lineage and reports what looks unlike them: dependencies added, removed,
// changed or never seen before, a new source repository, builder, builder
// key or signing identity for the subject name, a ref that is not a
// release ref, a toolchain that changed or went backwards, a duration far
// outside the recent builds (median and MAD over the last builds), a build
// at an hour the lineage never built at, inputs that became unpinned.
//
// The findings are an attest.RedFlagsPredicate
// (https://custody.dev/redflags/v1, see docs/redflags.md); custody serve
// computes one for every provenance it indexes and signs it with its audit
// key. The lineage of a build is the earlier provenance of the same
// subject name and source repository in the index, read newest first
// (store.Query.Newest); its track is "release" for release refs, else the
// ref, and timing, hours, toolchains and pinning are compared within the
// track.
package redflags

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
)

// Kinds of red flags (attest.RedFlag.Kind). Policies name them in
// redFlags.deny and redFlags.requireApproval.
const (
	KindNewDependency         = "new-dependency"
	KindDependencyAdded       = "dependency-added"
	KindDependencyRemoved     = "dependency-removed"
	KindDependencyChanged     = "dependency-changed"
	KindDependenciesUnchecked = "dependencies-unchecked"
	KindNewSource             = "new-source"
	KindBuilderChanged        = "builder-changed"
	KindNewBuilderKey         = "new-builder-key"
	KindNewSigner             = "new-signer"
	KindNonReleaseRef         = "non-release-ref"
	KindToolchainChanged      = "toolchain-changed"
	KindToolchainDowngrade    = "toolchain-downgrade"
	KindDuration              = "build-duration"
	KindUnusualHour           = "unusual-hour"
	KindNewlyUnpinned         = "newly-unpinned"
)

// Kinds lists every kind, in the order findings are reported.
var Kinds = []string{
	KindNewSource, KindBuilderChanged, KindNewBuilderKey, KindNewSigner, KindNonReleaseRef,
	KindNewDependency, KindDependencyAdded, KindDependencyRemoved, KindDependencyChanged, KindDependenciesUnchecked,
	KindToolchainChanged, KindToolchainDowngrade, KindNewlyUnpinned, KindDuration, KindUnusualHour,
}

// DefaultReleaseRefs are the refs (path.Match globs) whose builds are
// releases when Options.ReleaseRefs is empty.
var DefaultReleaseRefs = []string{"refs/tags/*", "refs/heads/main", "refs/heads/master", "refs/heads/release/*", "refs/heads/release-*"}

// Defaults of Options.
const (
	// DefaultWindow is how many earlier builds of the lineage are read.
	DefaultWindow = 64
	// maxPerKind bounds the flags of one kind; the rest are summed up in
	// one more flag (the dependency diff lists them all).
	maxPerKind = 50
)

// Index is what red flags need of the evidence index (store.SQLite,
// store.Postgres, store.Memory): the lineage by Search, whether a name
// was ever built by a builder, key or identity by FirstSeen.
type Index interface {
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	FirstSeen(ctx context.Context, q store.FirstSeenQuery) (int64, error)
}

// Options configures Compute. The zero value uses the defaults.
type Options struct {
	// Window is how many earlier builds of the lineage are compared
	// (default DefaultWindow).
	Window int
	// ReleaseRefs are path.Match globs of release refs (default
	// DefaultReleaseRefs).
	ReleaseRefs []string
	// ComputedBy names the server (required).
	ComputedBy string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Cache, when set, keeps the earlier builds read, for the next
	// computation (default none: every earlier build is parsed).
	Cache *Cache
}

// Result is the red flags of one subject of a provenance.
type Result struct {
	Subject   attest.Subject
	Predicate *attest.RedFlagsPredicate
}

// Compute compares the build recorded by e, an indexed and verified
// provenance record (it must have an ID), with its lineage in idx, for
// each of its subjects (at most maxSubjects, named in a note beyond).
// sboms are CycloneDX predicates about the artifact whose components are
// compared with the provenance's dependencies. It returns an error only
// when the provenance cannot be read or the index fails.
func Compute(ctx context.Context, idx Index, e *store.Evidence, sboms [][]byte, opts Options) ([]Result, error) {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	opts.Window = min(opts.Window, store.MaxLimit)
	if len(opts.ReleaseRefs) == 0 {
		opts.ReleaseRefs = DefaultReleaseRefs
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var out []Result
	for i, sub := range e.Subjects {
		if i == maxSubjects {
			break
		}
		b, err := FromEvidence(e, sub.Name)
		if err != nil {
			return nil, fmt.Errorf("couldn't read provenance %d: %w", e.ID, err)
		}
		var notes []string
		for _, s := range sboms {
			if err := b.AddSBOM(s); err != nil {
				notes = append(notes, "an SBOM of the artifact was not compared: "+err.Error())
			}
		}
		c := &comparison{ctx: ctx, idx: idx, opts: opts, cur: b, notes: notes}
		p, err := c.run()
		if err != nil {
			return nil, err
		}
		if len(e.Subjects) > maxSubjects && i == 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("the provenance has %d subjects; red flags were computed for the first %d", len(e.Subjects), maxSubjects))
		}
		out = append(out, Result{Subject: attest.Subject{Name: sub.Name, Digest: sub.Digests}, Predicate: p})
	}
	return out, nil
}

// maxSubjects bounds the subjects of one provenance red flags are
// computed for.
const maxSubjects = 16

// comparison is one Compute of one subject.
type comparison struct {
	ctx   context.Context
	idx   Index
	opts  Options
	cur   *Build
	hist  []*Build // earlier builds of the lineage, newest first
	track string
	flags []attest.RedFlag
	notes []string
	diff  []attest.DependencyChange
	base  *Build // what the dependency diff is against
}

func (c *comparison) run() (*attest.RedFlagsPredicate, error) {
	if err := c.readLineage(); err != nil {
		return nil, err
	}
	comparable, err := c.identity()
	if err != nil {
		return nil, err
	}
	if comparable {
		c.ref()
		c.dependencies()
		c.toolchains()
		c.pinning()
		c.timing()
	}
	b := c.cur
	p := &attest.RedFlagsPredicate{
		ComputedBy: c.opts.ComputedBy,
		ComputedAt: c.opts.Now().UTC(),
		Build:      buildRef(b),
		Lineage: attest.RedFlagsLineage{SubjectName: b.SubjectName, SourceURI: b.SourceURI, Track: c.track,
			Compared: len(c.hist)},
		Flags:        orderFlags(c.flags),
		Dependencies: c.diff,
		Notes:        c.notes,
	}
	if c.base != nil {
		r := buildRef(c.base)
		p.Lineage.LastRelease = &r
	}
	return p, nil
}

func buildRef(b *Build) attest.RedFlagsBuild {
	return attest.RedFlagsBuild{Bundle: b.Bundle, EvidenceID: b.EvidenceID, BuildID: b.BuildID,
		SourceURI: b.SourceURI, SourceRef: b.SourceRef, BuilderID: b.BuilderID}
}

// orderFlags sorts flags by their kind's place in Kinds, stably.
func orderFlags(fs []attest.RedFlag) []attest.RedFlag {
	if fs == nil {
		return []attest.RedFlag{}
	}
	slices.SortStableFunc(fs, func(a, b attest.RedFlag) int {
		return slices.Index(Kinds, a.Kind) - slices.Index(Kinds, b.Kind)
	})
	return fs
}

func (c *comparison) flag(kind, subject, clear, format string, args ...any) {
	c.flags = append(c.flags, attest.RedFlag{Kind: kind, Subject: subject, Message: fmt.Sprintf(format, args...), Clear: clear})
}

// isRelease reports whether ref matches a release ref glob.
func (c *comparison) isRelease(ref string) bool {
	for _, g := range c.opts.ReleaseRefs {
		if ok, _ := path.Match(g, ref); ok && ref != "" {
			return true
		}
	}
	return false
}

// trackOf is the track of a ref: "release", or the ref itself.
func (c *comparison) trackOf(ref string) string {
	if c.isRelease(ref) {
		return "release"
	}
	if ref == "" {
		return "(no ref)"
	}
	return ref
}

// readLineage reads the newest earlier builds of the subject name from the
// same source: attributed (verified) provenance only, another build ID than
// this build's (a build that wrote several bundles is one build).
func (c *comparison) readLineage() error {
	b := c.cur
	c.track = c.trackOf(b.SourceRef)
	rows, err := c.idx.Search(c.ctx, store.Query{SubjectName: b.SubjectName, SourceURI: b.SourceURI,
		PredicateType: b.PredicateType, BeforeID: b.EvidenceID, Newest: true, Limit: c.opts.Window})
	if err != nil {
		return fmt.Errorf("couldn't read the lineage: %w", err)
	}
	unread := 0
	for _, r := range rows {
		if !attributed(r) || r.SourceURI != b.SourceURI {
			continue
		}
		h, err := c.opts.Cache.build(r, b.SubjectName)
		if err != nil {
			unread++
			continue
		}
		if b.BuildID != "" && h.BuildID == b.BuildID {
			continue
		}
		c.hist = append(c.hist, h)
	}
	if unread > 0 {
		c.notes = append(c.notes, fmt.Sprintf("%d earlier build(s) of the lineage could not be read and were left out", unread))
	}
	return nil
}

// attributed reports whether the index attributes e to a signer (see
// server.Attributed): only verified records are history.
func attributed(e *store.Evidence) bool { return e.SignerKeyID != "" || e.SignerIdentity != "" }

// ref flags a ref that is not a release ref.
func (c *comparison) ref() {
	if c.track == "release" {
		return
	}
	c.flag(KindNonReleaseRef, c.cur.SourceRef, "build from a release ref ("+strings.Join(c.opts.ReleaseRefs, ", ")+")",
		"built from %s, which is not a release ref (%s)", orNone(c.cur.SourceRef), strings.Join(c.opts.ReleaseRefs, ", "))
}

func orNone(s string) string {
	if s == "" {
		return "no recorded ref"
	}
	return s
}

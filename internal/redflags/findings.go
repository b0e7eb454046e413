package redflags

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
)

// provenanceTypes are the predicate types whose builds count as earlier
// builds of a subject name.
var provenanceTypes = []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02}

// identity flags a source repository, builder, builder key or signing
// identity that no earlier build of the subject name had. What the
// builds compared (prior) do not show is looked up in the index's first
// seen table: one point lookup, however long the name's history
// (bench/redflags). An earlier build there is one the server verified and
// indexed, so its provenance parsed. It returns false when there is no
// lineage to compare the rest with (the first build of the subject name,
// or of it from this source).
func (c *comparison) identity() (bool, error) {
	b := c.cur
	prior := c.hist
	if len(prior) == 0 {
		others, err := c.earlier()
		if err != nil {
			return false, err
		}
		if len(others) == 0 {
			c.notes = append(c.notes, "first build of "+b.SubjectName+": nothing to compare it with")
			return false, nil
		}
		var sources []string
		for _, o := range others {
			if !slices.Contains(sources, o.SourceURI) && len(sources) < 3 {
				sources = append(sources, o.SourceURI)
			}
		}
		c.flag(KindNewSource, b.SourceURI, "build from the lineage's repository; if the move is intended, have this build approved or excepted, and later builds from it are the lineage",
			"%s was never built from %s before; earlier builds came from %s", b.SubjectName, orNone(b.SourceURI), strings.Join(sources, ", "))
		prior = others
	}
	checks := []struct {
		kind, value string
		seen        func(*Build) bool
		q           store.FirstSeenQuery
		what        string
	}{
		{KindBuilderChanged, b.BuilderID, func(h *Build) bool { return h.BuilderID == b.BuilderID },
			store.FirstSeenQuery{Kind: store.FirstSeenBuilder, Value: b.BuilderID}, "builder"},
		{KindNewBuilderKey, b.SignerKeyID, func(h *Build) bool { return h.SignerKeyID == b.SignerKeyID },
			store.FirstSeenQuery{Kind: store.FirstSeenKey, Value: b.SignerKeyID}, "builder key"},
		{KindNewSigner, b.SignerIdentity, func(h *Build) bool {
			return h.SignerIdentity == b.SignerIdentity && h.SignerIssuer == b.SignerIssuer
		}, store.FirstSeenQuery{Kind: store.FirstSeenIdentity, Value: b.SignerIdentity, Issuer: b.SignerIssuer}, "signing identity"},
	}
	for _, ck := range checks {
		if ck.value == "" || slices.ContainsFunc(prior, ck.seen) {
			continue
		}
		ck.q.SubjectName = b.SubjectName
		first, err := c.idx.FirstSeen(c.ctx, ck.q)
		if err != nil {
			return false, fmt.Errorf("couldn't look up earlier builds: %w", err)
		}
		if first > 0 && first < b.EvidenceID {
			continue
		}
		c.flag(ck.kind, ck.value, "build with the lineage's "+ck.what+", or have this build approved",
			"%s %s never built %s before; the last build used %s", ck.what, ck.value, b.SubjectName, describe(ck.kind, prior[0]))
	}
	return len(c.hist) > 0, nil
}

// describe names what build h used for the identity kind.
func describe(kind string, h *Build) string {
	switch kind {
	case KindBuilderChanged:
		return h.BuilderID
	case KindNewBuilderKey:
		return "key " + orNone(h.SignerKeyID)
	}
	if h.SignerIdentity == "" {
		return "key " + h.SignerKeyID
	}
	return h.SignerIdentity + " (" + h.SignerIssuer + ")"
}

// earlier returns attributed earlier provenance of the subject name,
// newest first (a page of at most 16 per type).
func (c *comparison) earlier() ([]*Build, error) {
	var out []*Build
	for _, pt := range provenanceTypes {
		q := store.Query{SubjectName: c.cur.SubjectName, PredicateType: pt, BeforeID: c.cur.EvidenceID, Newest: true, Limit: 16}
		rows, err := c.idx.Search(c.ctx, q)
		if err != nil {
			return nil, fmt.Errorf("couldn't search earlier builds: %w", err)
		}
		for _, r := range rows {
			if !attributed(r) {
				continue
			}
			if h, err := c.opts.Cache.build(r, c.cur.SubjectName); err == nil {
				out = append(out, h)
			}
		}
	}
	return out, nil
}

// sameTrack returns the earlier builds of the current build's track.
func (c *comparison) sameTrack() []*Build {
	var out []*Build
	for _, h := range c.hist {
		if c.trackOf(h.SourceRef) == c.track {
			out = append(out, h)
		}
	}
	return out
}

// previous is the newest earlier build of the track, else of the lineage.
func (c *comparison) previous() *Build {
	if t := c.sameTrack(); len(t) > 0 {
		return t[0]
	}
	return c.hist[0]
}

// dependencies diffs the dependencies with the last release (the newest
// earlier release build, else the previous build) and flags each change,
// and flags dependencies no earlier build of the lineage had.
func (c *comparison) dependencies() {
	cur := c.cur
	c.base = c.hist[0]
	label := "the previous build"
	for _, h := range c.hist {
		if c.isRelease(h.SourceRef) {
			c.base, label = h, "the last release ("+h.SourceRef+")"
			break
		}
	}
	if cur.DepsOver {
		c.flag(KindDependenciesUnchecked, "", "split the artifact, or review its dependency list by hand",
			"the build lists more than %d dependencies; those past the cap were not compared", MaxDependencies)
	}
	names := make([]string, 0, len(cur.Deps)+len(c.base.Deps))
	for n := range cur.Deps {
		names = append(names, n)
	}
	for n := range c.base.Deps {
		if _, ok := cur.Deps[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	count := map[string]int{}
	for _, n := range names {
		now, inCur := cur.Deps[n]
		was, inBase := c.base.Deps[n]
		var ch attest.DependencyChange
		switch {
		case !inBase:
			ch = attest.DependencyChange{Change: "added", Name: n, To: now.String()}
			c.limited(count, KindDependencyAdded, n, "%s %s was added since %s", n, now.String(), label)
		case !inCur:
			ch = attest.DependencyChange{Change: "removed", Name: n, From: was.String()}
			c.limited(count, KindDependencyRemoved, n, "%s %s was removed since %s", n, was.String(), label)
		case now != was:
			ch = attest.DependencyChange{Change: "changed", Name: n, From: was.String(), To: now.String()}
			c.limited(count, KindDependencyChanged, n, "%s changed from %s to %s since %s", n, orNone(was.String()), orNone(now.String()), label)
		default:
			continue
		}
		if len(c.diff) < attest.MaxRedFlagDiff {
			c.diff = append(c.diff, ch)
		}
		if ch.Change == "added" && !c.seenBefore(n) {
			c.limited(count, KindNewDependency, n, "%s was never a dependency of an earlier build of %s (%d compared)", n, cur.SourceURI, len(c.hist))
		}
	}
	c.summarise(count)
}

// seenBefore reports whether an earlier build of the lineage had a
// dependency named n.
func (c *comparison) seenBefore(n string) bool {
	return slices.ContainsFunc(c.hist, func(h *Build) bool { _, ok := h.Deps[n]; return ok })
}

// clearFor says what clears a dependency flag.
var clearFor = map[string]string{
	KindDependencyAdded:   "review the change and approve the build, or remove the dependency",
	KindDependencyRemoved: "review the change and approve the build",
	KindDependencyChanged: "review the new version and approve the build, or pin the old one",
	KindNewDependency:     "review the new dependency and approve the build, or remove it",
}

// limited flags at most maxPerKind of a kind; count keeps the tally.
func (c *comparison) limited(count map[string]int, kind, subject, format string, args ...any) {
	count[kind]++
	if count[kind] <= maxPerKind {
		c.flag(kind, subject, clearFor[kind], format, args...)
	}
}

// summarise adds one flag per kind that went over maxPerKind.
func (c *comparison) summarise(count map[string]int) {
	for _, k := range Kinds {
		if n := count[k]; n > maxPerKind {
			c.flag(k, "", clearFor[k], "and %d more %s finding(s): see the dependency diff", n-maxPerKind, k)
		}
	}
}

// toolchains flags a toolchain whose version changed since the previous
// build of the track, and one that went backwards.
func (c *comparison) toolchains() {
	prev := c.previous()
	names := make([]string, 0, len(c.cur.Toolchains))
	for n := range c.cur.Toolchains {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		now, was := c.cur.Toolchains[n], prev.Toolchains[n]
		if was == "" || now == was {
			continue
		}
		if compareVersions(firstWord(now), firstWord(was)) < 0 {
			c.flag(KindToolchainDowngrade, n, "build with the toolchain of the previous build or newer",
				"toolchain %s went backwards: %s, the previous build used %s", n, now, was)
			continue
		}
		c.flag(KindToolchainChanged, n, "expected after a toolchain upgrade: approve the build",
			"toolchain %s changed: %s, the previous build used %s", n, now, was)
	}
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// compareVersions compares the numbers in two version strings
// ("go1.26.8" < "go1.26.10"), then the strings.
func compareVersions(a, b string) int {
	na, nb := numbers(a), numbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			if na[i] < nb[i] {
				return -1
			}
			return 1
		}
	}
	if len(na) != len(nb) {
		return len(na) - len(nb)
	}
	return strings.Compare(a, b)
}

// numbers returns the runs of decimal digits in s (at most 8, each at
// most 9 digits).
func numbers(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		if len(out) == 8 {
			break
		}
		n, err := strconv.Atoi(f[:min(len(f), 9)])
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

// pinning flags inputs that were pinned in the previous build of the
// track and are not now.
func (c *comparison) pinning() {
	prev := c.previous()
	for _, u := range c.cur.Unpinned {
		if !slices.Contains(prev.Unpinned, u) {
			c.flag(KindNewlyUnpinned, u, "pin the input (a digest, a lock file, a hash) and rebuild",
				"input became unpinned since the previous build: %s", u)
		}
	}
}

// timing flags a duration outside the recent builds of the track and an
// hour of day the track never built at.
func (c *comparison) timing() {
	var durs []time.Duration
	var whens []time.Time
	for _, h := range c.sameTrack() {
		if d := h.Duration(); d > 0 {
			durs = append(durs, d)
		}
		if w := h.When(); !w.IsZero() {
			whens = append(whens, w)
		}
	}
	if msg := durationOutlier(c.cur.Duration(), durs); msg != "" {
		c.flag(KindDuration, "", "find out why (a stalled or injected step, a cache that was skipped); rebuild, or approve the build", "%s", msg)
	}
	if msg := unusualHour(c.cur.When(), whens); msg != "" {
		c.flag(KindUnusualHour, "", "confirm who started the build, then approve it", "%s", msg)
	}
}

package osv

import (
	"strings"

	"golang.org/x/mod/semver"
)

// canonical returns the version in the form golang.org/x/mod/semver
// compares ("v1.2.3-pre"), or "" when it is not a semantic version. Go
// module versions carry a "v" (OSV's Go entries do not); pseudo-versions
// are pre-releases and so order correctly; "+incompatible" is build
// metadata, which semver ignores, as the go command does. Go toolchain
// versions ("go1.21.3") are accepted for the stdlib and toolchain
// packages.
func canonical(ecosystem, v string) string {
	v = strings.TrimSpace(v)
	if ecosystem == EcosystemGo {
		if rest, ok := strings.CutPrefix(v, "go"); ok {
			v = goToolchainSemver(rest)
		}
	}
	if ecosystem == EcosystemNPM {
		v = strings.TrimPrefix(v, "=")
	}
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return ""
	}
	return v
}

// goToolchainSemver turns "1.21", "1.21.3" or "1.21rc2" into semver.
func goToolchainSemver(v string) string {
	pre := ""
	for _, tag := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(v, tag); i > 0 {
			v, pre = v[:i], "-"+v[i:]
			break
		}
	}
	if strings.Count(v, ".") == 1 {
		v += ".0"
	}
	return v + pre
}

// compare compares canonical versions; "0" in an event means before every
// version.
func compare(a, b string) int { return semver.Compare(a, b) }

// affects reports whether version (canonical) is in the range. Events
// whose version is not a semantic version are ignored; a range with no
// usable introduced event affects nothing.
func (r *Range) affects(ecosystem, version string) bool {
	switch r.Type {
	case "SEMVER", "ECOSYSTEM":
	default:
		return false // GIT ranges name commits, not versions
	}
	// Walk the events in version order (OSV: the order of events in the
	// file carries no meaning). Ties keep file order.
	type ev struct {
		kind string
		v    string // canonical; "" for introduced "0"
	}
	evs := make([]ev, 0, len(r.Events))
	for _, e := range r.Events {
		switch {
		case e.Introduced != "":
			if e.Introduced == "0" {
				evs = append(evs, ev{"introduced", ""})
			} else if c := canonical(ecosystem, e.Introduced); c != "" {
				evs = append(evs, ev{"introduced", c})
			}
		case e.Fixed != "":
			if c := canonical(ecosystem, e.Fixed); c != "" {
				evs = append(evs, ev{"fixed", c})
			}
		case e.LastAffected != "":
			if c := canonical(ecosystem, e.LastAffected); c != "" {
				evs = append(evs, ev{"last_affected", c})
			}
		case e.Limit != "":
			if e.Limit == "*" {
				continue
			}
			if c := canonical(ecosystem, e.Limit); c != "" {
				evs = append(evs, ev{"limit", c})
			}
		}
	}
	// insertion sort: ranges have a handful of events
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evLess(evs[j].v, evs[j-1].v); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	affected := false
	for _, e := range evs {
		switch e.kind {
		case "introduced":
			if e.v == "" || compare(version, e.v) >= 0 {
				affected = true
			}
		case "fixed":
			if compare(version, e.v) >= 0 {
				affected = false
			}
		case "last_affected":
			if compare(version, e.v) > 0 {
				affected = false
			}
		case "limit":
			if compare(version, e.v) >= 0 {
				affected = false
			}
		}
	}
	return affected
}

// evLess orders event versions, "" (introduced "0") first.
func evLess(a, b string) bool {
	if a == "" || b == "" {
		return a == "" && b != ""
	}
	return compare(a, b) < 0
}

// affectsVersion reports whether a (canonical) version is affected by a.
func (a *Affected) affectsVersion(ecosystem, version string) (bool, string) {
	for _, v := range a.Versions {
		if canonical(ecosystem, v) == version && version != "" {
			return true, ""
		}
	}
	for i := range a.Ranges {
		if a.Ranges[i].affects(ecosystem, version) {
			return true, a.Ranges[i].fixedAfter(ecosystem, version)
		}
	}
	return false, ""
}

// fixedAfter returns the lowest fixed version above version, as written
// in the entry, or "".
func (r *Range) fixedAfter(ecosystem, version string) string {
	best, bestC := "", ""
	for _, e := range r.Events {
		if e.Fixed == "" {
			continue
		}
		c := canonical(ecosystem, e.Fixed)
		if c == "" || compare(c, version) <= 0 {
			continue
		}
		if bestC == "" || compare(c, bestC) < 0 {
			best, bestC = e.Fixed, c
		}
	}
	return best
}

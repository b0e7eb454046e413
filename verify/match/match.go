// Package match holds the rules by which custody compares a provenance's
// source URI and builder ID with what is expected: verify.Requirements'
// SourceURI and BuilderID, and package policy's trusted builders and
// sources, so a policy means what `custody verify --source-uri` and
// `--builder-id` mean. It is apart from package verify so that policy does
// not link sigstore-go's verifier for two string comparisons.
package match

import "strings"

// NormalizeSource reduces a source URI to lowercase host/path for
// comparison: it drops a "git+" prefix, the scheme, userinfo (git@), any
// "@ref", a trailing "/" and ".git". "" means it names no repository.
func NormalizeSource(s string) string {
	s = strings.TrimPrefix(s, "git+")
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	// A ref may still be attached (git+https://host/org/repo@refs/tags/v1).
	if at := strings.LastIndexByte(s, '@'); at >= 0 && strings.Contains(s[:at], "/") {
		s = s[:at]
	}
	if at := strings.IndexByte(s, '@'); at >= 0 && !strings.Contains(s[:at], "/") {
		s = s[at+1:] // userinfo, as in ssh://git@host/...
	}
	s = strings.TrimSuffix(s, "/")
	s = strings.TrimSuffix(s, ".git")
	return strings.ToLower(s)
}

// Source reports whether the recorded source URI names the repository
// want names (see NormalizeSource): "github.com/org/repo" matches
// "git+https://github.com/org/repo.git@refs/tags/v1". An empty recorded
// source matches nothing.
func Source(recorded, want string) bool {
	return recorded != "" && NormalizeSource(recorded) == NormalizeSource(want)
}

// Builder reports whether the recorded builder ID is the one want names,
// with slsa-verifier's rule: a want containing '@' must equal the builder ID
// exactly; otherwise it must equal the part of the builder ID before its
// last '@', so "https://github.com/org/repo/.github/workflows/b.yml"
// accepts any version of that workflow.
func Builder(recorded, want string) bool {
	if strings.Contains(want, "@") {
		return recorded == want
	}
	if at := strings.LastIndexByte(recorded, '@'); at >= 0 {
		recorded = recorded[:at]
	}
	return recorded == want
}

package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/custody-dev/custody/attest"
)

// DefaultCIPaths are the patterns a protectedPaths rule uses when it names
// none: the CI and build-pipeline definitions of common CI systems.
var DefaultCIPaths = []string{
	".github/workflows/**",
	".github/actions/**",
	".gitlab-ci.yml",
	".gitlab/ci/**",
	".circleci/**",
	".buildkite/**",
	".ci/**",
	".travis.yml",
	".drone.yml",
	".woodpecker/**",
	".woodpecker.yml",
	"azure-pipelines.yml",
	"bitbucket-pipelines.yml",
	"Jenkinsfile",
	"cloudbuild.yaml",
}

// Review is one verified review attestation.
type Review struct {
	Signature
	attest.ReviewPredicate
}

// Reviews is the policy's source review requirements (see REVIEW.md).
type Reviews struct {
	// EveryCommit requires every commit from the previous release to the
	// artifact's source commit to be reviewed by someone other than its
	// author.
	EveryCommit bool `yaml:"everyCommit,omitempty" json:"everyCommit,omitempty"`
	// ReleaseRefs are path.Match globs over the ref a review range starts
	// from (its baseRef): the range must start at a release. Default
	// refs/tags/*.
	ReleaseRefs []string `yaml:"releaseRefs,omitempty" json:"releaseRefs,omitempty"`
	// Signers may vouch for the reviewers an attestation lists (a review
	// bot that reads the code host's approvals). Without them a review
	// counts only for the group member who signed it.
	Signers []Principal `yaml:"signers,omitempty" json:"signers,omitempty"`
	// ProtectedPaths need approvals from a group when the reviewed commits
	// change them.
	ProtectedPaths []PathRule `yaml:"protectedPaths,omitempty" json:"protectedPaths,omitempty"`
}

// PathRule needs Count members of Group among the reviewers of every
// reviewed commit that changes a path matching Paths (none of them the
// commit's author). Paths are globs from the repository root: path.Match
// per segment, and "**" for any number of segments. Empty: DefaultCIPaths.
type PathRule struct {
	Paths []string `yaml:"paths,omitempty" json:"paths,omitempty"`
	Group string   `yaml:"group" json:"group"`
	Count int      `yaml:"count" json:"count"`
}

func (p *Policy) validateReviews() error {
	r := p.Reviews
	if r == nil {
		return nil
	}
	if !r.EveryCommit && len(r.ProtectedPaths) == 0 {
		return errors.New("reviews requires nothing: set everyCommit: true or list protectedPaths")
	}
	if len(r.ReleaseRefs) > maxListLen || len(r.ProtectedPaths) > maxListLen || len(r.Signers) > maxListLen {
		return fmt.Errorf("reviews has a list of more than %d entries", maxListLen)
	}
	for i, g := range r.ReleaseRefs {
		if err := checkName(fmt.Sprintf("reviews.releaseRefs[%d]", i), g); err != nil {
			return err
		}
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("reviews.releaseRefs[%d] %q is not a valid glob: %w", i, g, err)
		}
	}
	for i := range r.Signers {
		if err := checkPrincipal(fmt.Sprintf("reviews.signers[%d]", i), &r.Signers[i]); err != nil {
			return err
		}
	}
	for i, pr := range r.ProtectedPaths {
		ms, ok := p.members[pr.Group]
		if !ok {
			return fmt.Errorf("reviews.protectedPaths[%d] names group %q, which is not in groups", i, pr.Group)
		}
		if pr.Count < 1 || pr.Count > maxApprovalThreshold {
			return fmt.Errorf("reviews.protectedPaths[%d].count %d must be at least 1", i, pr.Count)
		}
		if pr.Count > len(ms) {
			return fmt.Errorf("reviews.protectedPaths[%d] needs %d of group %q, which has only %d member(s)", i, pr.Count, pr.Group, len(ms))
		}
		if len(pr.Paths) > maxListLen {
			return fmt.Errorf("reviews.protectedPaths[%d] lists more than %d paths", i, maxListLen)
		}
		for j, g := range pr.Paths {
			if err := checkName(fmt.Sprintf("reviews.protectedPaths[%d].paths[%d]", i, j), g); err != nil {
				return err
			}
			if err := checkPathGlob(g); err != nil {
				return fmt.Errorf("reviews.protectedPaths[%d].paths[%d] %q: %w", i, j, g, err)
			}
		}
	}
	return nil
}

func (r *Reviews) releaseRefs() []string {
	if len(r.ReleaseRefs) == 0 {
		return []string{"refs/tags/*"}
	}
	return r.ReleaseRefs
}

func (pr PathRule) paths() []string {
	if len(pr.Paths) == 0 {
		return DefaultCIPaths
	}
	return pr.Paths
}

func checkPathGlob(g string) error {
	if strings.HasPrefix(g, "/") || strings.HasSuffix(g, "/") {
		return errors.New("a path pattern is relative to the repository root, without a leading or trailing '/'")
	}
	stars := 0
	for _, seg := range strings.Split(g, "/") {
		if seg == "" {
			return errors.New("empty path segment")
		}
		if seg == "**" {
			if stars++; stars > 4 {
				return errors.New("more than 4 \"**\" segments")
			}
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("not a valid glob: %w", err)
		}
	}
	return nil
}

// matchPath reports whether name (a slash-separated path from the
// repository root) matches pattern: path.Match per segment, "**" matching
// any number of segments (zero included).
func matchPath(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse repeated "**"; then try every split point.
			for len(pat) > 1 && pat[1] == "**" {
				pat = pat[1:]
			}
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

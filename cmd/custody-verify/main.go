// Command custody-verify is custody's lean verifier for devices, cloud
// functions and update hooks: custody verify (a Sigstore bundle with its
// provenance checks) and custody verify --pack (an evidence pack decided
// offline with the environment's policy), with the same flags, built from
// the public packages verify, pack, policy and trust. It links no
// database, Kubernetes, HTTP server or log engine; built with
// -tags custody_norego it leaves out the Rego engine too, and a policy
// with custom Rego rules is refused with a message naming the full custody
// binary. See docs/edge.md.
//
// Exit codes: 0 verified (allowed), 1 failed (denied, quarantined, a
// refused pack), 2 bad input.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/custody-dev/custody/internal/gcpolicy"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/policy"
)

func main() {
	// One verification, then exit: no GC cycle for memory the exit frees,
	// a memory limit for hostile inputs (GOGC, GOMEMLIMIT override it).
	gcpolicy.ShortLived()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitError is an error with its exit code and a hint.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }

func usage(err error, hint string) error  { return &exitError{exitUsage, err, hint} }
func failed(err error, hint string) error { return &exitError{exitFailed, err, hint} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, rest, err := parseFlags(args, stderr)
	if err == nil {
		if f.pack != "" {
			err = runPack(ctx, f, rest, stdout)
		} else {
			err = runBundle(ctx, f, rest, stdout)
		}
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{exitUsage, err, ""}
	}
	if errors.Is(err, policy.ErrRegoUnavailable) {
		ee.code = exitUsage
	}
	fmt.Fprintf(stderr, "error: %v\n", ee.err)
	if ee.hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", ee.hint)
	}
	return ee.code
}

// runPack is custody verify --pack.
func runPack(ctx context.Context, f *flags, args []string, stdout io.Writer) error {
	if f.bundle != "" || f.server != "" {
		return usage(errors.New("--pack carries the evidence: give no --server or --bundle"), "")
	}
	if f.env == "" {
		return usage(errors.New("--pack needs --env ENV"), "")
	}
	dg, err := f.artifactDigest(args)
	if err != nil {
		return err
	}
	d := &pack.Device{PackPath: f.pack, TrustRootPath: f.trustRoot, StatePath: f.state,
		Options: pack.Options{Artifact: dg, Environment: f.env}}
	for _, p := range f.packKeys {
		pub, err := loadPublicKey(p)
		if err != nil {
			return err
		}
		d.PackKeys = append(d.PackKeys, pub)
	}
	if d.Extra, err = f.extraTrust(); err != nil {
		return err
	}
	res, err := d.Verify(ctx)
	switch {
	case errors.Is(err, pack.ErrMalformed):
		return usage(fmt.Errorf("pack refused: %w", err), "")
	case errors.Is(err, policy.ErrRegoUnavailable):
		return usage(err, "the full custody binary evaluates Rego: custody verify --pack "+f.pack+" --env "+f.env)
	case err != nil:
		return failed(fmt.Errorf("pack refused: %w", err), "")
	}
	if f.jsonOut {
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
	} else {
		res.WriteText(stdout)
	}
	if res.Allowed {
		return nil
	}
	reason, fix := res.Refusal()
	return failed(errors.New(reason), fix)
}

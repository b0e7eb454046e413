package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/verify"
)

// runBundle is custody verify of one bundle.
func runBundle(ctx context.Context, f *flags, args []string, stdout io.Writer) error {
	var art verify.Artifact
	switch {
	case len(args) == 1 && f.digest != "":
		return usage(errors.New("give either an artifact or --digest, not both"), "")
	case len(args) == 1:
		fi, err := os.Stat(args[0])
		if err != nil || !fi.Mode().IsRegular() {
			return usage(fmt.Errorf("artifact %s is not a readable regular file", args[0]), "")
		}
		art.Path = args[0]
	case f.digest != "":
		d, err := digest.Parse(f.digest)
		if err != nil {
			return usage(fmt.Errorf("--digest: %w", err), "use --digest sha256:HEX")
		}
		art.Digests = map[string]string{d.Alg: d.Hex}
	default:
		return usage(errors.New("no artifact to verify"), "pass the artifact file, or --digest sha256:HEX")
	}
	path := f.bundle
	if path == "" && art.Path != "" {
		path = art.Path + ".sigstore.json"
	}
	if path == "" {
		return usage(errors.New("--bundle is required with --digest"), "")
	}
	b, err := fsutil.ReadFileLimited(path, verify.MaxBundleBytes)
	if err != nil {
		return usage(fmt.Errorf("couldn't read bundle: %w", err), "")
	}
	tm, err := f.bundleTrust()
	if err != nil {
		return err
	}
	req, err := f.requirements()
	if err != nil {
		return err
	}
	rep, err := verify.Verify(ctx, b, art, tm, req)
	if err != nil {
		return usage(fmt.Errorf("%s: %w", path, err), "")
	}
	if f.jsonOut {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		writeReport(stdout, rep)
	}
	if !rep.Verified {
		for _, c := range rep.Failed() {
			return failed(fmt.Errorf("verification failed: %s: %s", c.Name, c.Reason), "")
		}
		return failed(errors.New("verification failed: no check passed"), "")
	}
	return nil
}

// bundleTrust is --trust-root, --trusted-root and --key (found by any
// key hint, as custody verify takes it).
func (f *flags) bundleTrust() (root.TrustedMaterial, error) {
	var tms root.TrustedMaterialCollection
	if f.trustRoot != "" {
		tm, err := trustRootMaterial(f.trustRoot)
		if err != nil {
			return nil, err
		}
		tms = append(tms, tm)
	}
	extra, err := f.trust(verify.PublicKeyMaterial)
	if err != nil {
		return nil, err
	}
	if extra != nil {
		tms = append(tms, extra)
	}
	switch len(tms) {
	case 0:
		return nil, usage(errors.New("nothing to trust: no --key, --trusted-root or --trust-root"), "")
	case 1:
		return tms[0], nil
	}
	return tms, nil
}

// writeReport prints the verdict and every check as custody verify does.
func writeReport(w io.Writer, rep *verify.Report) {
	switch skipped := rep.NotChecked(); {
	case !rep.Verified:
		fmt.Fprintln(w, "Verification FAILED")
	case len(skipped) > 0:
		fmt.Fprintf(w, "Verified OK, but not checked: %s (see SKIP)\n", strings.Join(skipped, ", "))
	default:
		fmt.Fprintln(w, "Verified OK")
	}
	for _, c := range rep.Checks {
		mark := "PASS"
		switch {
		case c.NotChecked:
			mark = "SKIP"
		case !c.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %-16s %s\n", mark, c.Name, c.Reason)
	}
}

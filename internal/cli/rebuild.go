package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/rebuild"
	"github.com/custody-dev/custody/internal/sandbox"
	"github.com/custody-dev/custody/signer"
)

// DefaultRebuilderID is recorded as the rebuilder's ID when --rebuilder-id
// is not given.
const DefaultRebuilderID = rebuild.DefaultRebuilderID

// rebuildSuffix ends the name of the rebuild attestation written beside an
// artifact.
const rebuildSuffix = rebuild.AttestationSuffix

type rebuildFlags struct {
	verify                 verifyFlags // trust for the original: --key-pub, --trusted-root, identity
	bundle, key, out       string
	server, rebuilderID    string
	outDir                 string
	env                    []string
	allowToolchainMismatch bool
	force, jsonOut         bool
}

func newRebuildCmd(s *streams) *cobra.Command {
	var f rebuildFlags
	c := &cobra.Command{
		Use:   "rebuild (ARTIFACT [--bundle B] | BUNDLE) --key REBUILDER_KEY (--key-pub BUILDER_PUB | --trusted-root ROOT ...) [--server URL]",
		Short: "Independently rebuild an artifact from its provenance and attest whether it matches",
		Long: "Verifies the artifact's provenance, clones the recorded source at the recorded commit into a\n" +
			"clean temporary directory, checks the toolchains against the recorded ones, replays the recorded\n" +
			"command in a sandbox (bubblewrap: no network, no capabilities, nothing of this machine but the\n" +
			"base system, the recorded toolchains and the clone; allow-listed variables only) in the recorded working directory and\n" +
			"compares every output with the recorded subjects. The result, match or not, is signed with the\n" +
			"rebuilder's key (predicate " + attest.PredicateRebuild + ") and written beside the artifact\n" +
			"(ARTIFACT" + rebuildSuffix + ") or pushed with --server. Exit 0 on a match, 1 on a mismatch.",
		Args: argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runRebuild(c.Context(), s, &f, args[0])
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "the rebuilder's signing key (never the original builder's)")
	fl.StringVar(&f.bundle, "bundle", "", "provenance bundle of ARTIFACT (default ARTIFACT.sigstore.json)")
	fl.StringVar(&f.verify.key, "key-pub", "", "trusted public key of the original builder (PEM)")
	fl.StringVar(&f.verify.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json for the original's signature, logs and timestamps")
	fl.StringVar(&f.verify.identity, "certificate-identity", "", "expected certificate identity of a keyless original")
	fl.StringVar(&f.verify.identityRegexp, "certificate-identity-regexp", "", "expected certificate identity, as a regular expression")
	fl.StringVar(&f.verify.issuer, "certificate-oidc-issuer", "", "expected OIDC issuer of a keyless original")
	fl.StringVar(&f.verify.issuerRegexp, "certificate-oidc-issuer-regexp", "", "expected OIDC issuer, as a regular expression")
	fl.StringVar(&f.out, "out", "", "where to write the rebuild attestation (default ARTIFACT"+rebuildSuffix+")")
	fl.BoolVar(&f.force, "force", false, "replace an existing rebuild attestation file")
	fl.StringVar(&f.server, "server", "", "push the rebuild attestation to custody serve (token from $CUSTODY_TOKEN)")
	fl.StringVar(&f.rebuilderID, "rebuilder-id", DefaultRebuilderID, "rebuilder ID recorded in the attestation")
	fl.StringVar(&f.outDir, "out-dir", "", "the original build's --out-dir, relative to its working directory (default: search)")
	fl.StringArrayVar(&f.env, "env", nil, "pass this variable into the hermetic rebuild (repeatable), e.g. GOCACHE")
	fl.BoolVar(&f.allowToolchainMismatch, "allow-toolchain-mismatch", false, "rebuild even when a recorded toolchain differs (recorded in the attestation)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	withSandboxStatus(c)
	return c
}

// withSandboxStatus ends c's help with whether this machine can run the
// sandbox, checked when the help is shown.
func withSandboxStatus(c *cobra.Command) {
	help := c.HelpFunc()
	c.SetHelpFunc(func(c *cobra.Command, args []string) {
		help(c, args)
		w := c.OutOrStdout()
		if err := sandbox.Check(); err != nil {
			fmt.Fprintf(w, "\nSandbox: UNAVAILABLE, %s\n", strings.TrimPrefix(err.Error(), sandbox.ErrUnavailable.Error()+": "))
			return
		}
		fmt.Fprintf(w, "\nSandbox: available (%s)\n", sandbox.Version())
	})
}

// sandboxErr is the error of a command that needs the sandbox on a
// machine without it.
func sandboxErr(err error) error {
	return usageErr(err, "install bubblewrap (apt-get install bubblewrap) and allow user namespaces; custody never runs a recorded command without its sandbox")
}

func runRebuild(ctx context.Context, s *streams, f *rebuildFlags, arg string) error {
	// Fail closed, before anything is read or opened.
	if err := sandbox.Check(); err != nil {
		return sandboxErr(err)
	}
	opts, tail, err := rebuildOptions(s, f, arg)
	if err != nil {
		return err
	}
	report, err := rebuild.Attest(ctx, *opts)
	if err != nil {
		return rebuildErr(s, err, tail, opts.Out)
	}
	if f.jsonOut {
		if err := writeJSON(s.out, report); err != nil {
			return err
		}
	} else {
		printRebuild(s.out, report)
	}
	if !report.Matched {
		var names []string
		for _, r := range report.Subjects {
			if r.Status != attest.RebuildMatch {
				names = append(names, r.Name)
			}
		}
		return failErr(fmt.Errorf("rebuild did not reproduce %s (the failed rebuild is recorded in %s)", strings.Join(names, ", "), report.Attestation),
			"outputs that embed times, paths or build IDs never match: build with -trimpath, SOURCE_DATE_EPOCH and no build ID")
	}
	return nil
}

// rebuildOptions turns the flags into rebuild.Attest's options. The tail
// keeps the end of the build's output when it is not shown (no terminal).
func rebuildOptions(s *streams, f *rebuildFlags, arg string) (*rebuild.AttestOptions, *tailBuffer, error) {
	if f.key == "" {
		return nil, nil, usageErr(errors.New("--key is required"), "the rebuild attestation is signed with the rebuilder's own key: custody key generate --out rebuilder")
	}
	if f.verify.key == "" && f.verify.trustedRoot == "" {
		return nil, nil, usageErr(errors.New("nothing to verify the original with: no --key-pub or --trusted-root"),
			"pass --key-pub builder.pub (the original builder's public key) or --trusted-root")
	}
	tm, err := trustMaterial(&f.verify)
	if err != nil {
		return nil, nil, err
	}
	req, err := f.verify.requirements()
	if err != nil {
		return nil, nil, err
	}
	opts := &rebuild.AttestOptions{Artifact: arg, Bundle: f.bundle, Out: f.out, Force: f.force, Trust: tm, Requirements: req,
		RebuilderID: f.rebuilderID, KeyUnattended: keyOpensUnattended(f.key), Sign: keySigner}
	if opts.Bundle == "" {
		if strings.HasSuffix(arg, ".json") {
			opts.Artifact, opts.Bundle = "", arg
		} else {
			opts.Bundle = arg + bundleSuffix
		}
	}
	if opts.Out == "" {
		opts.Out = rebuild.AttestationPath(opts.Artifact, opts.Bundle)
	}
	opts.OpenKey = func() (crypto.Signer, func(), error) { return loadSigner(s, f.key) }
	if f.server != "" {
		// Logged and timestamped by the server it is pushed to.
		cl, err := newClient(serverURL(f.server))
		if err != nil {
			return nil, nil, err
		}
		opts.Sign = func(sg crypto.Signer) signFunc { return loggedKeySigner(sg, cl) }
		opts.Push = func(ctx context.Context, b []byte) (int64, error) {
			id, _, err := cl.Push(ctx, b)
			return id, remoteErr(err, "push rebuild attestation (kept in "+opts.Out+")")
		}
	}
	tty := isTerminal(s.out)
	var buildOut io.Writer = s.err
	tail := &tailBuffer{max: 4 << 10}
	if !tty {
		buildOut = tail
	}
	opts.Rebuild = rebuild.Options{
		AllowToolchainMismatch: f.allowToolchainMismatch,
		EnvAllow:               f.env,
		OutDir:                 f.outDir,
		Stdout:                 buildOut,
		Stderr:                 buildOut,
	}
	if tty {
		opts.Rebuild.Progress = func(stage, detail string) {
			fmt.Fprintf(s.err, "custody: %s %s\n", stage, detail)
		}
	}
	if p, err := exec.LookPath("diffoscope"); err == nil {
		opts.Rebuild.Diffoscope = p
	}
	return opts, tail, nil
}

// rebuildErr maps rebuild.Attest's errors to exit codes and hints; a
// build command that failed gets the tail of its output printed first.
func rebuildErr(s *streams, err error, tail *tailBuffer, out string) error {
	var ee *exitError
	var te *rebuild.ToolchainError
	var ce *build.CommandError
	switch {
	case errors.As(err, &ee): // from opening the key, signing or pushing
		return err
	case errors.Is(err, rebuild.ErrAttestationExists):
		return usageErr(fmt.Errorf("rebuild attestation %s already exists", out), "pass --force to replace it, or --out elsewhere")
	case errors.Is(err, rebuild.ErrOriginalUnverified):
		return failErr(err, "nothing was rebuilt; check --key-pub / --trusted-root")
	case errors.Is(err, rebuild.ErrNotIndependent):
		return failErr(err, "rebuild with a key of your own: custody key generate --out rebuilder")
	case errors.Is(err, rebuild.ErrNotReplayable):
		return failErr(err, "only custody builds from a clean, committed source can be rebuilt")
	case errors.As(err, &te):
		return failErr(err, "install the recorded toolchains, or pass --allow-toolchain-mismatch (recorded in the attestation)")
	case errors.Is(err, build.ErrHermeticUnavailable):
		return sandboxErr(err)
	case errors.As(err, &ce):
		if t := strings.TrimSpace(tail.String()); t != "" {
			fmt.Fprintf(s.err, "%s\n", t)
		}
		return failErr(fmt.Errorf("the rebuild could not complete: %w", err),
			"nothing was recorded: a build that fails here (missing dependency without network?) says nothing about the artifact")
	}
	return usageErr(err, "")
}

// keyOpensUnattended reports whether opening the rebuilder key ref can
// never ask on the terminal, so that it may run beside the rebuild: a
// pkcs11: URI (its PIN comes from the URI, its pin-source or
// $CUSTODY_PKCS11_PIN, never a prompt), a KMS reference (refused at
// once), or a key file when $CUSTODY_PASSWORD is set, even to "".
// A key file without it may prompt, and is opened before the rebuild.
func keyOpensUnattended(ref string) bool {
	if signer.IsPKCS11URI(ref) || signer.IsKMSRef(ref) {
		return true
	}
	_, ok := os.LookupEnv(passwordEnv)
	return ok
}

func printRebuild(w io.Writer, r *rebuild.Report) {
	if r.Matched {
		fmt.Fprintf(w, "Rebuild MATCHED build %s (commit %s)\n", r.Original.BuildID, r.Original.SourceCommit)
	} else {
		fmt.Fprintf(w, "Rebuild DIFFERS from build %s (commit %s)\n", r.Original.BuildID, r.Original.SourceCommit)
	}
	for _, sr := range r.Subjects {
		switch sr.Status {
		case attest.RebuildMatch:
			fmt.Fprintf(w, "  match     %s sha256:%s\n", sr.Name, sr.Expected["sha256"])
		case attest.RebuildMismatch:
			fmt.Fprintf(w, "  MISMATCH  %s expected sha256:%s, got sha256:%s\n", sr.Name, sr.Expected["sha256"], sr.Got["sha256"])
		case attest.RebuildMissing:
			fmt.Fprintf(w, "  MISSING   %s expected sha256:%s, the rebuild produced no such file\n", sr.Name, sr.Expected["sha256"])
		}
		if sr.Diffoscope != "" {
			fmt.Fprintf(w, "  diffoscope:\n")
			for line := range strings.SplitSeq(strings.TrimRight(sr.Diffoscope, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
	if len(r.Toolchains.Differs) > 0 {
		fmt.Fprintf(w, "  toolchains that differ (allowed): %s\n", strings.Join(r.Toolchains.Differs, ", "))
	}
	if r.Attestation != "" {
		fmt.Fprintf(w, "Rebuild attestation written to %s\n", r.Attestation)
	}
	if r.EvidenceID != 0 {
		fmt.Fprintf(w, "Pushed to the server as evidence %d\n", r.EvidenceID)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

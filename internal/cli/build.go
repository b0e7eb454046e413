package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/internal/sandbox"
	"github.com/custody-dev/custody/signer"
)

// bundleSuffix names the bundle written beside an artifact.
const bundleSuffix = build.BundleSuffix

type buildFlags struct {
	key          string
	outDir       string
	artifacts    []string
	subjects     []string
	subjectsFile string
	bundle       string
	allowDirty   bool
	hermetic     bool
	builderID    string
	env          []string
	jsonOut      bool
	server       string
	sbom         bool
	osvDB        string
	attach       bool
	registry     registryFlags
	identity     identityFlags
}

func newBuildCmd(s *streams) *cobra.Command {
	var f buildFlags
	c := &cobra.Command{
		Use:   "build --key KEY [--out-dir DIR | --artifact GLOB]... -- COMMAND [ARG...]",
		Short: "Run a build and sign SLSA provenance for every output",
		Long: "Runs COMMAND, then writes for every output file (each file under --out-dir, or matching\n" +
			"--artifact) a SLSA v1 provenance statement signed in a DSSE envelope inside a Sigstore\n" +
			"bundle: NAME.sigstore.json beside the file, or one bundle for all subjects with --bundle.\n" +
			"Non-file outputs (an image the command pushed) are named with --subject NAME@sha256:HEX.\n" +
			"Beside each provenance bundle it signs a CycloneDX SBOM of the resolved dependencies\n" +
			"(NAME.sbom.sigstore.json; --sbom=false turns it off) and, with --osv-db DIR, a vulnerability\n" +
			"scan of them (NAME.vulns.sigstore.json), so the scan is part of the build.",
		Args: func(c *cobra.Command, args []string) error {
			if c.ArgsLenAtDash() != 0 || len(args) == 0 {
				return usageErr(errors.New("build needs the command after --"),
					"custody build --key release.key --out-dir dist -- go build -o dist/app .")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runBuild(c.Context(), s, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "signing key: path to an encrypted key file")
	fl.StringVar(&f.outDir, "out-dir", "", "every file under DIR is an output")
	fl.StringArrayVar(&f.artifacts, "artifact", nil, "glob of output files (repeatable)")
	fl.StringArrayVar(&f.subjects, "subject", nil, "non-file output NAME@sha256:HEX (repeatable)")
	fl.StringVar(&f.subjectsFile, "subjects-file", "", "file of NAME@sha256:HEX lines or sha256sum output")
	fl.StringVar(&f.bundle, "bundle", "", "write one bundle for all subjects to this path")
	fl.BoolVar(&f.allowDirty, "allow-dirty", false, "build from a work tree with uncommitted changes (recorded in the provenance)")
	fl.BoolVar(&f.hermetic, "hermetic", false, "run the command in the sandbox (bubblewrap): no network, a clean environment, only the repository writable")
	fl.StringVar(&f.builderID, "builder-id", build.DefaultBuilderID, "builder ID recorded in the provenance")
	fl.StringArrayVar(&f.env, "env", nil, "also record this environment variable (repeatable; secrets are redacted)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	fl.BoolVar(&f.sbom, "sbom", true, "also sign a CycloneDX SBOM of the resolved dependencies (NAME.sbom.sigstore.json)")
	fl.StringVar(&f.osvDB, "osv-db", "", "also scan the dependencies against this offline OSV database and sign the result (NAME.vulns.sigstore.json)")
	fl.StringVar(&f.server, "server", "", "have custody serve sign, log and timestamp the provenance (token from $CUSTODY_TOKEN) instead of --key")
	fl.BoolVar(&f.attach, "attach", false, "attach each bundle to the images among its subjects (--subject oci://HOST/REPO@sha256:HEX) in their registry")
	addRegistryFlags(fl, &f.registry)
	addIdentityFlags(c, &f.identity)
	withSandboxStatus(c)
	return c
}

func runBuild(ctx context.Context, s *streams, f *buildFlags, command []string) error {
	if err := checkBuildFlags(f); err != nil {
		return err
	}
	subjects, err := buildSubjects(f)
	if err != nil {
		return err
	}
	// Open the key (or reach the server) before the build runs: the
	// provenance is signed the moment the outputs exist, and a wrong
	// password or a server that is down should not cost a build.
	sign, release, err := buildSigner(ctx, s, f)
	if err != nil {
		return err
	}
	defer release()
	var cl *oci.Client
	if f.attach {
		if cl, err = attachClient(f, subjects); err != nil {
			return err
		}
	}
	rel, err := build.Release(ctx, build.Options{
		Command:    command,
		Dir:        ".",
		OutDir:     f.outDir,
		Artifacts:  f.artifacts,
		Subjects:   subjects,
		AllowDirty: f.allowDirty,
		Hermetic:   f.hermetic,
		BuilderID:  f.builderID,
		EnvAllow:   f.env,
		Stdout:     s.err, // the build's own output must not mix with custody's report
		Stderr:     s.err,
	}, build.SignOptions{Sign: sign, Bundle: f.bundle, OneStatement: f.server != "", SBOM: f.sbom, OSVDB: f.osvDB})
	if err != nil {
		return buildErr(err)
	}
	attached, err := attachBuild(ctx, cl, rel)
	if f.jsonOut {
		if werr := writeJSON(s.out, builtAndAttached{rel, attached}); werr != nil {
			return werr
		}
	} else {
		printBuild(s.out, rel)
		for _, a := range attached {
			fmt.Fprintf(s.out, "  attached to %s as referrer %s\n", a.Image, a.Referrer)
		}
	}
	return err
}

// checkBuildFlags refuses flags that cannot make a build.
func checkBuildFlags(f *buildFlags) error {
	switch {
	case f.key == "" && f.server == "":
		return usageErr(errors.New("--key or --server is required"), "create a key with 'custody key generate --out NAME', or sign through custody serve with --server URL")
	case f.key != "" && f.server != "":
		return usageErr(errors.New("give either --key or --server, not both"), "")
	case f.identity.token != "" && f.server == "":
		return usageErr(errors.New("--identity-token needs --server"), "custody build --server URL --identity-token @token ...")
	case f.outDir == "" && len(f.artifacts) == 0 && len(f.subjects) == 0 && f.subjectsFile == "":
		return usageErr(errors.New("no outputs named"), "pass --out-dir DIR, --artifact GLOB or --subject NAME@sha256:HEX")
	}
	if f.hermetic {
		if err := sandbox.Check(); err != nil {
			return sandboxErr(err)
		}
	}
	return nil
}

// buildSubjects parses --subject and --subjects-file.
func buildSubjects(f *buildFlags) ([]attest.Subject, error) {
	var subjects []attest.Subject
	for _, v := range f.subjects {
		sub, err := build.ParseSubject(v)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--subject %q: %w", v, err), "use NAME@sha256:HEX")
		}
		subjects = append(subjects, sub)
	}
	if f.subjectsFile != "" {
		b, err := os.ReadFile(f.subjectsFile)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't read subjects file: %w", err), "")
		}
		more, err := build.ParseSubjectsFile(b)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't parse subjects file %s: %w", f.subjectsFile, err), "")
		}
		subjects = append(subjects, more...)
	}
	return subjects, nil
}

// buildSigner signs through the server (--server) or with the key (--key).
func buildSigner(ctx context.Context, s *streams, f *buildFlags) (signFunc, func(), error) {
	if f.server == "" {
		sg, release, err := loadSigner(s, f.key)
		if err != nil {
			return nil, nil, err
		}
		return keySigner(sg), release, nil
	}
	if f.identity.wanted() {
		sign, err := keylessSigner(ctx, s, f.server, &f.identity)
		return sign, func() {}, err
	}
	cl, err := newClient(f.server)
	if err != nil {
		return nil, nil, err
	}
	if _, err := cl.PublicKey(ctx, "builder"); err != nil {
		return nil, nil, remoteErr(err, "couldn't reach the signing service")
	}
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		b, err := cl.Sign(ctx, payload)
		return b, remoteErr(err, "signing service")
	}, func() {}, nil
}

// buildErr maps build.Release's errors to exit codes and hints.
func buildErr(err error) error {
	var ce *build.CommandError
	var oe *build.OSVError
	switch {
	case errors.Is(err, build.ErrDirty):
		return usageErr(err, "commit your changes, or pass --allow-dirty (the provenance will say so)")
	case errors.Is(err, build.ErrHermeticUnavailable):
		return sandboxErr(err)
	case errors.Is(err, build.ErrNoOutputs):
		return usageErr(err, "check --out-dir / --artifact: the command produced no matching files")
	case errors.As(err, &ce):
		return failErr(err, "nothing was signed")
	case errors.As(err, &oe):
		return usageErr(err, osvHint)
	}
	var ee *exitError
	if errors.As(err, &ee) { // from the signer
		return err
	}
	return usageErr(err, "")
}

func printBuild(w io.Writer, rel *build.Released) {
	fmt.Fprintf(w, "build %s: %d subject(s) signed\n", rel.BuildID, len(rel.Build.Subjects))
	for _, b := range rel.Bundles {
		for _, sub := range b.Subjects {
			fmt.Fprintf(w, "  %s sha256:%s -> %s\n", sub.Name, sub.Digest["sha256"], b.Bundle)
		}
	}
	for _, b := range rel.SBOMs {
		fmt.Fprintf(w, "  SBOM -> %s\n", b.Bundle)
	}
	for _, b := range rel.Scans {
		fmt.Fprintf(w, "  vulnerability scan -> %s\n", b.Bundle)
	}
	if rel.Scanned {
		fmt.Fprintf(w, "%d vulnerabilit(ies) found\n", len(rel.Findings))
		printFindings(w, rel.Findings)
	}
}

// signFunc signs an in-toto statement and returns the Sigstore bundle.
type signFunc = build.SignFunc

// keySigner signs with a local key.
func keySigner(sg crypto.Signer) signFunc {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		b, err := signer.SignStatement(ctx, sg, payload)
		if err != nil {
			return nil, failErr(fmt.Errorf("couldn't sign: %w", err), "")
		}
		return b, nil
	}
}

// loggedKeySigner signs with a local key, logs the signature in the
// server's transparency log and has it timestamped by the server's TSA
// (with cl's token), so what is pushed to the server is in its log and
// provably signed at that time, as the audit trail requires.
func loggedKeySigner(sg crypto.Signer, cl *client.Client) signFunc {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		b, err := signer.SignStatement(ctx, sg, payload, signer.WithTransparencyLog(cl.Transparency()),
			signer.WithTimestampAuthority(cl.TimestampAuthority()))
		if err != nil {
			return nil, remoteErr(fmt.Errorf("couldn't sign, log and timestamp: %w", err), "log and timestamp through the server")
		}
		return b, nil
	}
}

// signStatement wraps pred in an in-toto statement about subjects and signs it.
func signStatement(ctx context.Context, sign signFunc, subjects []attest.Subject, predicateType string, pred any) ([]byte, error) {
	return build.SignStatement(ctx, sign, subjects, predicateType, pred)
}

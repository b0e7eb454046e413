package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/osv"
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
	withSandboxStatus(c)
	return c
}

type builtBundle struct {
	Bundle   string           `json:"bundle"`
	Subjects []attest.Subject `json:"subjects"`
}

type buildReport struct {
	BuildID string        `json:"buildId"`
	Bundles []builtBundle `json:"bundles"`
	*buildEvidence
}

func runBuild(ctx context.Context, s *streams, f *buildFlags, command []string) error {
	switch {
	case f.key == "" && f.server == "":
		return usageErr(errors.New("--key or --server is required"), "create a key with 'custody key generate --out NAME', or sign through custody serve with --server URL")
	case f.key != "" && f.server != "":
		return usageErr(errors.New("give either --key or --server, not both"), "")
	}
	if f.outDir == "" && len(f.artifacts) == 0 && len(f.subjects) == 0 && f.subjectsFile == "" {
		return usageErr(errors.New("no outputs named"), "pass --out-dir DIR, --artifact GLOB or --subject NAME@sha256:HEX")
	}
	if f.hermetic {
		if err := sandbox.Check(); err != nil {
			return sandboxErr(err)
		}
	}
	var subjects []attest.Subject
	for _, v := range f.subjects {
		sub, err := build.ParseSubject(v)
		if err != nil {
			return usageErr(fmt.Errorf("--subject %q: %w", v, err), "use NAME@sha256:HEX")
		}
		subjects = append(subjects, sub)
	}
	if f.subjectsFile != "" {
		b, err := os.ReadFile(f.subjectsFile)
		if err != nil {
			return usageErr(fmt.Errorf("couldn't read subjects file: %w", err), "")
		}
		more, err := build.ParseSubjectsFile(b)
		if err != nil {
			return usageErr(fmt.Errorf("couldn't parse subjects file %s: %w", f.subjectsFile, err), "")
		}
		subjects = append(subjects, more...)
	}
	// Open the key (or reach the server) before the build runs: the
	// provenance is signed the moment the outputs exist, and a wrong
	// password or a server that is down should not cost a build.
	var sign signFunc
	if f.server != "" {
		cl, err := newClient(f.server)
		if err != nil {
			return err
		}
		if _, err := cl.PublicKey(ctx, "builder"); err != nil {
			return remoteErr(err, "couldn't reach the signing service")
		}
		sign = func(ctx context.Context, payload []byte) ([]byte, error) {
			b, err := cl.Sign(ctx, payload)
			return b, remoteErr(err, "signing service")
		}
	} else {
		sg, release, err := loadSigner(s, f.key)
		if err != nil {
			return err
		}
		defer release()
		sign = keySigner(sg)
	}
	// A missing OSV database should not cost a build either.
	if f.osvDB != "" {
		if fi, err := os.Stat(f.osvDB); err != nil || !fi.IsDir() {
			return usageErr(fmt.Errorf("OSV database %s is not a directory", f.osvDB), "point --osv-db at a directory of OSV JSON files (DIR/Go/*.json, DIR/npm/*.json) or an all.zip")
		}
	}
	res, err := build.Run(ctx, build.Options{
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
	})
	if err != nil {
		var ce *build.CommandError
		switch {
		case errors.Is(err, build.ErrDirty):
			return usageErr(err, "commit your changes, or pass --allow-dirty (the provenance will say so)")
		case errors.Is(err, build.ErrHermeticUnavailable):
			return sandboxErr(err)
		case errors.Is(err, build.ErrNoOutputs):
			return usageErr(err, "check --out-dir / --artifact: the command produced no matching files")
		case errors.As(err, &ce):
			return failErr(err, "nothing was signed")
		}
		return usageErr(err, "")
	}
	// One job per bundle: a subject list and where its bundle goes.
	var jobs []builtBundle
	switch {
	case f.bundle != "":
		jobs = append(jobs, builtBundle{Bundle: f.bundle, Subjects: res.Subjects})
	case f.server != "" && !(len(res.Subjects) == 1 && len(res.Outputs) == 1):
		// The signing service signs one statement per build (a build ID
		// it has seen is a replay), so all subjects share one bundle.
		dir := f.outDir
		if dir == "" {
			dir = "."
		}
		jobs = append(jobs, builtBundle{Bundle: filepath.Join(dir, "build-"+res.BuildID+bundleSuffix), Subjects: res.Subjects})
	default:
		files := map[string]string{} // subject name -> file path
		for _, o := range res.Outputs {
			files[o.Name] = o.Path
		}
		dir := f.outDir
		if dir == "" {
			dir = "."
		}
		for _, sub := range res.Subjects {
			path, ok := files[sub.Name]
			if ok {
				path += bundleSuffix
			} else {
				path = filepath.Join(dir, safeName(sub.Name)+bundleSuffix)
			}
			jobs = append(jobs, builtBundle{Bundle: path, Subjects: []attest.Subject{sub}})
		}
	}
	// The SBOM and the scan are read before anything is signed, so a bad
	// OSV database leaves no provenance without its scan.
	per, scanTargets, err := buildComponents(res, jobs)
	if err != nil {
		return err
	}
	var osvDB *osv.DB
	if f.osvDB != "" {
		if osvDB, err = loadOSV(ctx, f.osvDB, scanTargets); err != nil {
			return err
		}
	}
	provJobs := make([]evidenceJob, len(jobs))
	for i, j := range jobs {
		provJobs[i] = evidenceJob{Bundle: j.Bundle, Subjects: j.Subjects, PredicateType: attest.PredicateSLSAv1, Predicate: res.Provenance}
	}
	if err := signEvidence(ctx, sign, provJobs); err != nil {
		return err
	}
	ev, err := signBuildEvidence(ctx, sign, jobs, per, f.sbom, osvDB)
	if err != nil {
		return err
	}
	report := buildReport{BuildID: res.BuildID, Bundles: jobs, buildEvidence: ev}
	if f.jsonOut {
		return writeJSON(s.out, report)
	}
	fmt.Fprintf(s.out, "build %s: %d subject(s) signed\n", res.BuildID, len(res.Subjects))
	for _, b := range report.Bundles {
		for _, sub := range b.Subjects {
			fmt.Fprintf(s.out, "  %s sha256:%s -> %s\n", sub.Name, sub.Digest["sha256"], b.Bundle)
		}
	}
	if ev != nil {
		for _, b := range ev.SBOMs {
			fmt.Fprintf(s.out, "  SBOM -> %s\n", b.Bundle)
		}
		for _, b := range ev.Scans {
			fmt.Fprintf(s.out, "  vulnerability scan -> %s\n", b.Bundle)
		}
		if osvDB != nil {
			fmt.Fprintf(s.out, "%d vulnerabilit(ies) found\n", len(ev.Findings))
			printFindings(s.out, ev.Findings)
		}
	}
	return nil
}

// signFunc signs an in-toto statement and returns the Sigstore bundle.
type signFunc func(ctx context.Context, statement []byte) ([]byte, error)

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
	st, err := attest.NewStatement(subjects, predicateType, pred)
	if err != nil {
		return nil, usageErr(fmt.Errorf("couldn't build statement: %w", err), "")
	}
	payload, err := st.Marshal()
	if err != nil {
		return nil, usageErr(fmt.Errorf("couldn't encode statement: %w", err), "")
	}
	return sign(ctx, payload)
}

// safeName turns a subject name (possibly an image reference) into a file name.
func safeName(name string) string {
	r := strings.NewReplacer("/", "_", ":", "_", "@", "_", "\\", "_")
	n := r.Replace(name)
	if n == "" || n == "." || n == ".." {
		n = "subject"
	}
	return n
}

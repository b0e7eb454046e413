package cli

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/rebuild"
	"github.com/custody-dev/custody/internal/sandbox"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

// DefaultRebuilderID is recorded as the rebuilder's ID when --rebuilder-id
// is not given.
const DefaultRebuilderID = "https://custody.dev/rebuilders/local@v1"

// rebuildSuffix ends the name of the rebuild attestation written beside an
// artifact.
const rebuildSuffix = ".rebuild" + bundleSuffix

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
			"rebuilder's key (predicate " + rebuild.PredicateType + ") and written beside the artifact\n" +
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

// rebuildReport is the --json output.
type rebuildReport struct {
	Matched     bool                    `json:"matched"`
	Attestation string                  `json:"attestation,omitempty"`
	EvidenceID  int64                   `json:"evidenceId,omitempty"`
	Subjects    []rebuild.SubjectResult `json:"subjects"`
	Toolchains  rebuild.Toolchains      `json:"toolchains"`
	Original    rebuild.Original        `json:"original"`
}

func runRebuild(ctx context.Context, s *streams, f *rebuildFlags, arg string) error {
	// Fail closed, before anything is read or opened.
	if err := sandbox.Check(); err != nil {
		return sandboxErr(err)
	}
	if f.key == "" {
		return usageErr(errors.New("--key is required"), "the rebuild attestation is signed with the rebuilder's own key: custody key generate --out rebuilder")
	}
	artifact, bundlePath := arg, f.bundle
	if bundlePath == "" {
		if strings.HasSuffix(arg, ".json") {
			artifact, bundlePath = "", arg
		} else {
			bundlePath = arg + bundleSuffix
		}
	}
	out := f.out
	if out == "" {
		base := artifact
		if base == "" {
			base = strings.TrimSuffix(strings.TrimSuffix(bundlePath, ".json"), ".sigstore")
		}
		out = base + rebuildSuffix
	}
	if !f.force {
		if _, err := os.Stat(out); err == nil {
			return usageErr(fmt.Errorf("rebuild attestation %s already exists", out), "pass --force to replace it, or --out elsewhere")
		}
	}

	// 1. The provenance must verify before anything is replayed.
	bundleJSON, err := readLimited(bundlePath, maxBundleBytes)
	if err != nil {
		return usageErr(fmt.Errorf("couldn't read bundle: %w", err), "")
	}
	if f.verify.key == "" && f.verify.trustedRoot == "" {
		return usageErr(errors.New("nothing to verify the original with: no --key-pub or --trusted-root"),
			"pass --key-pub builder.pub (the original builder's public key) or --trusted-root")
	}
	tm, err := trustMaterial(&f.verify)
	if err != nil {
		return err
	}
	req, err := f.verify.requirements()
	if err != nil {
		return err
	}
	art := verify.Artifact{Path: artifact}
	if artifact == "" {
		d, err := firstSubjectDigest(bundleJSON)
		if err != nil {
			return usageErr(fmt.Errorf("%s: %w", bundlePath, err), "")
		}
		art.Digests = d
	}
	rep, err := verify.Verify(ctx, bundleJSON, art, tm, req)
	if err != nil {
		if errors.Is(err, verify.ErrMalformed) {
			return usageErr(fmt.Errorf("%s: %w", bundlePath, err), "")
		}
		return usageErr(err, "")
	}
	if !rep.Verified {
		return failErr(fmt.Errorf("the original provenance does not verify: %s", firstFailure(rep)), "nothing was rebuilt; check --key-pub / --trusted-root")
	}

	// 2. The rebuilder key, and independence: the rebuilder is not the
	// builder. Decrypting the key (scrypt) takes a noticeable part of a small
	// rebuild, and opening a token or KMS key waits on the module or the
	// network, so when no prompt is needed (keyOpensUnattended) it runs
	// beside the rebuild, which it cancels on failure: a wrong password or
	// PIN, or the builder's own key, still stop everything before anything
	// is signed, with the error they gave when opened first.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type loaded struct {
		sg      crypto.Signer
		release func()
		err     error
	}
	keyCh := make(chan loaded, 1)
	var k loaded
	defer func() {
		if k.release == nil { // returned before taking the key: wait for it
			k = <-keyCh
		}
		k.release()
	}()
	openKey := func() {
		sg, release, err := loadSigner(s, f.key)
		if err == nil {
			err = checkIndependent(sg, rep.Signer)
		}
		if err != nil {
			cancel(err)
		}
		keyCh <- loaded{sg, release, err}
	}
	// keyErr waits for the key and returns its error, if any. It is asked
	// before any other error is reported, so a key that fails to open gives
	// the same error and exit code whether it opened first or beside the
	// rebuild.
	keyErr := func() error {
		if k.release == nil {
			k = <-keyCh
		}
		return k.err
	}
	if keyOpensUnattended(f.key) {
		go openKey()
	} else {
		openKey()
		if err := keyErr(); err != nil {
			return err
		}
	}

	plan, err := rebuild.NewPlan(rep.Statement)
	if err != nil {
		if kerr := keyErr(); kerr != nil {
			return kerr
		}
		if errors.Is(err, rebuild.ErrNotReplayable) {
			return failErr(err, "only custody builds from a clean, committed source can be rebuilt")
		}
		return usageErr(err, "")
	}

	// 3. Rebuild.
	tty := isTerminal(s.out)
	var buildOut io.Writer = s.err
	tail := &tailBuffer{max: 4 << 10}
	if !tty {
		buildOut = tail
	}
	opts := rebuild.Options{
		AllowToolchainMismatch: f.allowToolchainMismatch,
		EnvAllow:               f.env,
		OutDir:                 f.outDir,
		Stdout:                 buildOut,
		Stderr:                 buildOut,
	}
	if tty {
		opts.Progress = func(stage, detail string) {
			fmt.Fprintf(s.err, "custody: %s %s\n", stage, detail)
		}
	}
	if p, err := exec.LookPath("diffoscope"); err == nil {
		opts.Diffoscope = p
	}
	if artifact != "" && opts.Diffoscope != "" { // the original, for diffoscope on a mismatch
		if d, err := digest.File(artifact); err == nil {
			if sub, ok := rep.Statement.SubjectFor(d.Alg, d.Hex); ok {
				opts.Originals = map[string]string{sub.Name: artifact}
			}
		}
	}
	res, err := rebuild.Run(ctx, plan, opts)
	if kerr := keyErr(); kerr != nil {
		return kerr
	}
	sg := k.sg
	if err != nil {
		var te *rebuild.ToolchainError
		var ce *build.CommandError
		switch {
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
		return usageErr(fmt.Errorf("couldn't rebuild: %w", err), "")
	}

	// 4. Record the result, match or not.
	bsum := sha256.Sum256(bundleJSON)
	pred := rebuild.Predicate{
		Original: rebuild.Original{
			BuildID:      plan.BuildID,
			BuilderID:    plan.BuilderID,
			Bundle:       map[string]string{"sha256": hex.EncodeToString(bsum[:])},
			Signer:       rep.Signer,
			SourceURI:    plan.SourceURI,
			SourceRef:    plan.SourceRef,
			SourceCommit: plan.SourceCommit,
			Command:      plan.Command,
			WorkingDir:   plan.WorkingDir,
		},
		Rebuilder:          rebuild.Rebuilder{ID: f.rebuilderID, KeyID: signer.KeyID(sg.Public())},
		Matched:            res.Matched,
		Subjects:           res.Subjects,
		Toolchains:         res.Toolchains,
		Hermetic:           res.Sandbox != "",
		Sandbox:            res.Sandbox,
		RefusedEnvironment: res.RefusedEnvironment,
		StartedOn:          res.StartedOn,
		FinishedOn:         res.FinishedOn,
	}
	if err := pred.Validate(); err != nil {
		return usageErr(fmt.Errorf("couldn't build the rebuild predicate: %w", err), "")
	}
	sign := keySigner(sg)
	var cl *client.Client
	if f.server != "" {
		// Logged and timestamped by the server it is pushed to.
		if cl, err = newClient(serverURL(f.server)); err != nil {
			return err
		}
		sign = loggedKeySigner(sg, cl)
	}
	signed, err := signStatement(ctx, sign, plan.Subjects, rebuild.PredicateType, pred)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(out, signed, 0o644); err != nil {
		return usageErr(fmt.Errorf("couldn't write rebuild attestation: %w", err), "")
	}
	report := rebuildReport{Matched: res.Matched, Attestation: out, Subjects: res.Subjects, Toolchains: res.Toolchains, Original: pred.Original}
	if f.server != "" {
		id, _, err := cl.Push(ctx, signed)
		if err != nil {
			return remoteErr(err, "push rebuild attestation (kept in "+out+")")
		}
		report.EvidenceID = id
	}

	if f.jsonOut {
		if err := writeJSON(s.out, report); err != nil {
			return err
		}
	} else {
		printRebuild(s.out, &report)
	}
	if !res.Matched {
		var names []string
		for _, r := range res.Subjects {
			if r.Status != rebuild.StatusMatch {
				names = append(names, r.Name)
			}
		}
		return failErr(fmt.Errorf("rebuild did not reproduce %s (the failed rebuild is recorded in %s)", strings.Join(names, ", "), out),
			"outputs that embed times, paths or build IDs never match: build with -trimpath, SOURCE_DATE_EPOCH and no build ID")
	}
	return nil
}

// keyOpensUnattended reports whether opening the rebuilder key ref can
// never ask on the terminal, so that it may run beside the rebuild: a
// pkcs11: URI (its PIN comes from the URI, its pin-source or
// $CUSTODY_PKCS11_PIN, never a prompt), a KMS key (credentials from the
// environment), or a key file when $CUSTODY_PASSWORD is set, even to "".
// A key file without it may prompt, and is opened before the rebuild.
func keyOpensUnattended(ref string) bool {
	if signer.IsPKCS11URI(ref) || signer.IsKMSRef(ref) {
		return true
	}
	_, ok := os.LookupEnv(passwordEnv)
	return ok
}

// checkIndependent refuses a rebuilder key that signed the original
// (originalSigner is the verified bundle's key hint).
func checkIndependent(sg crypto.Signer, originalSigner string) error {
	kp, err := signer.NewKeypair(sg)
	if err != nil {
		return usageErr(fmt.Errorf("couldn't use rebuilder key: %w", err), "")
	}
	if originalSigner != "" && originalSigner == string(kp.GetHint()) {
		return failErr(errors.New("the rebuilder key is the key that signed the original provenance; a rebuild must be independent"),
			"rebuild with a key of your own: custody key generate --out rebuilder")
	}
	return nil
}

func printRebuild(w io.Writer, r *rebuildReport) {
	if r.Matched {
		fmt.Fprintf(w, "Rebuild MATCHED build %s (commit %s)\n", r.Original.BuildID, r.Original.SourceCommit)
	} else {
		fmt.Fprintf(w, "Rebuild DIFFERS from build %s (commit %s)\n", r.Original.BuildID, r.Original.SourceCommit)
	}
	for _, sr := range r.Subjects {
		switch sr.Status {
		case rebuild.StatusMatch:
			fmt.Fprintf(w, "  match     %s sha256:%s\n", sr.Name, sr.Expected["sha256"])
		case rebuild.StatusMismatch:
			fmt.Fprintf(w, "  MISMATCH  %s expected sha256:%s, got sha256:%s\n", sr.Name, sr.Expected["sha256"], sr.Got["sha256"])
		case rebuild.StatusMissing:
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

// firstSubjectDigest reads, unverified, the digests of the first subject of
// a DSSE bundle's statement: when only a bundle is given, the artifact is
// whatever it is about (the signature is still verified).
func firstSubjectDigest(bundleJSON []byte) (map[string]string, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return nil, fmt.Errorf("couldn't parse bundle: %w", err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, errors.New("the bundle carries no in-toto statement")
	}
	st, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return nil, err
	}
	return st.Subject[0].Digest, nil
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

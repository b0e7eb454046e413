package rebuild

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

// DefaultRebuilderID is recorded as the rebuilder's ID when
// AttestOptions.RebuilderID is empty.
const DefaultRebuilderID = "https://custody.dev/rebuilders/local@v1"

// AttestationSuffix ends the name of the rebuild attestation written
// beside an artifact.
const AttestationSuffix = ".rebuild" + build.BundleSuffix

// maxBundleBytes bounds the provenance bundle Attest reads.
const maxBundleBytes = 32 << 20

// Errors of Attest; check them with errors.Is.
var (
	// ErrAttestationExists means the attestation file is already there
	// and AttestOptions.Force is not set; nothing was read or rebuilt.
	ErrAttestationExists = errors.New("rebuild attestation already exists")
	// ErrOriginalUnverified means the original provenance does not verify
	// with the trust given; nothing was rebuilt.
	ErrOriginalUnverified = errors.New("the original provenance does not verify")
	// ErrNotIndependent means the rebuilder key signed the original; a
	// rebuild must be independent. Nothing was signed.
	ErrNotIndependent = errors.New("the rebuilder key is the key that signed the original provenance; a rebuild must be independent")
)

// AttestOptions configures Attest.
type AttestOptions struct {
	// Artifact is the artifact's path; "" when only Bundle is given, and
	// the artifact is then what the bundle's first subject names.
	Artifact string
	// Bundle is the path of the original's provenance bundle. Required.
	Bundle string
	// Out is where the attestation is written. Default
	// AttestationPath(Artifact, Bundle). An existing file is refused
	// (ErrAttestationExists) unless Force.
	Out   string
	Force bool
	// Trust and Requirements verify the original provenance. Trust is
	// required.
	Trust        root.TrustedMaterial
	Requirements verify.Requirements
	// OpenKey opens the rebuilder's signing key; the release function it
	// returns is called before Attest returns. Required.
	OpenKey func() (crypto.Signer, func(), error)
	// KeyUnattended says OpenKey never asks on a terminal: it then runs
	// beside the rebuild (decrypting a key or reaching a token takes a
	// noticeable part of a small rebuild), which its failure cancels.
	// Either way, a key that fails to open stops Attest before anything is
	// signed, with OpenKey's error.
	KeyUnattended bool
	// Sign makes the function that signs the attestation with the
	// rebuilder's key; nil signs with signer.SignStatement.
	Sign func(crypto.Signer) build.SignFunc
	// Push, when set, sends the signed attestation (to a server) once it
	// is written, and returns its evidence ID.
	Push func(ctx context.Context, bundle []byte) (int64, error)
	// RebuilderID is recorded as the rebuilder's ID. Default
	// DefaultRebuilderID.
	RebuilderID string
	// Rebuild configures the rebuild itself (Run). Its Originals are set
	// from Artifact when Diffoscope is.
	Rebuild Options
}

// Report is what Attest did. A rebuild that does not match is a Report
// with Matched false, not an error: the attestation records it.
type Report struct {
	Matched     bool                     `json:"matched"`
	Attestation string                   `json:"attestation,omitempty"`
	EvidenceID  int64                    `json:"evidenceId,omitempty"`
	Subjects    []attest.RebuildSubject  `json:"subjects"`
	Toolchains  attest.RebuildToolchains `json:"toolchains"`
	Original    attest.RebuildOriginal   `json:"original"`
}

// AttestationPath is where a rebuild attestation goes by default: beside
// the artifact, else beside the bundle (dist/app.sigstore.json ->
// dist/app.rebuild.sigstore.json).
func AttestationPath(artifact, bundlePath string) string {
	base := artifact
	if base == "" {
		base = strings.TrimSuffix(strings.TrimSuffix(bundlePath, ".json"), ".sigstore")
	}
	return base + AttestationSuffix
}

// Attest rebuilds an artifact independently and signs what came of it,
// match or not, with the rebuilder's key: it verifies the original's
// provenance, opens the key and refuses the one that signed the original,
// replays the build (NewPlan, Run), and writes (and pushes) the rebuild
// attestation (attest.PredicateRebuild).
//
// Errors: ErrAttestationExists, ErrOriginalUnverified, ErrNotIndependent,
// errors wrapping verify.ErrMalformed (the bundle) or ErrNotReplayable,
// Run's errors, and the errors of OpenKey, Sign and Push unchanged. When
// the rebuild did not match, the Report says so and the error is nil.
func Attest(ctx context.Context, opts AttestOptions) (*Report, error) {
	if opts.Out == "" {
		opts.Out = AttestationPath(opts.Artifact, opts.Bundle)
	}
	if !opts.Force {
		if _, err := os.Stat(opts.Out); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrAttestationExists, opts.Out)
		}
	}
	bundleJSON, rep, err := verifyOriginal(ctx, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	key := openKey(opts, rep.Signer, cancel)
	defer key.release()
	if !opts.KeyUnattended {
		if err := key.wait(); err != nil {
			return nil, err
		}
	}
	plan, res, err := replay(ctx, opts, rep)
	if kerr := key.wait(); kerr != nil {
		return nil, kerr
	}
	if err != nil {
		return nil, err
	}
	pred := predicate(opts, plan, res, rep.Signer, bundleJSON, key.sg)
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("couldn't build the rebuild predicate: %w", err)
	}
	return writeAttestation(ctx, opts, plan, res, pred, key.sg)
}

// verifyOriginal reads and verifies the original's provenance bundle.
func verifyOriginal(ctx context.Context, opts AttestOptions) ([]byte, *verify.Report, error) {
	bundleJSON, err := fsutil.ReadFileLimited(opts.Bundle, maxBundleBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read bundle: %w", err)
	}
	art := verify.Artifact{Path: opts.Artifact}
	if opts.Artifact == "" {
		d, err := firstSubjectDigest(bundleJSON)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", opts.Bundle, err)
		}
		art.Digests = d
	}
	rep, err := verify.Verify(ctx, bundleJSON, art, opts.Trust, opts.Requirements)
	if err != nil {
		if errors.Is(err, verify.ErrMalformed) {
			return nil, nil, fmt.Errorf("%s: %w", opts.Bundle, err)
		}
		return nil, nil, err
	}
	if !rep.Verified {
		return nil, nil, fmt.Errorf("%w: %s", ErrOriginalUnverified, firstFailure(rep))
	}
	return bundleJSON, rep, nil
}

func firstFailure(rep *verify.Report) string {
	for _, c := range rep.Checks {
		if !c.OK {
			return c.Name + ": " + c.Reason
		}
	}
	return "no check passed"
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

// rebuilderKey is the rebuilder's key, opened first or beside the rebuild.
type rebuilderKey struct {
	ch    chan rebuilderKey
	done  bool
	sg    crypto.Signer
	close func()
	err   error
}

// openKey opens the rebuilder key: beside the rebuild when it never
// prompts (cancelling the rebuild when it fails to open or is the key
// that signed the original), else before. wait returns its error.
func openKey(opts AttestOptions, originalSigner string, cancel context.CancelCauseFunc) *rebuilderKey {
	k := &rebuilderKey{ch: make(chan rebuilderKey, 1)}
	open := func() {
		sg, release, err := opts.OpenKey()
		if err == nil {
			err = checkIndependent(sg, originalSigner)
		}
		if err != nil {
			cancel(err)
		}
		k.ch <- rebuilderKey{sg: sg, close: release, err: err}
	}
	if opts.KeyUnattended {
		go open()
	} else {
		open()
	}
	return k
}

// wait waits for the key to open and returns the error it gave, if any.
func (k *rebuilderKey) wait() error {
	if !k.done {
		got := <-k.ch
		k.sg, k.close, k.err, k.done = got.sg, got.close, got.err, true
	}
	return k.err
}

func (k *rebuilderKey) release() {
	k.wait()
	if k.close != nil {
		k.close()
	}
}

// checkIndependent refuses a rebuilder key that signed the original
// (originalSigner is the verified bundle's key hint).
func checkIndependent(sg crypto.Signer, originalSigner string) error {
	kp, err := signer.NewKeypair(sg)
	if err != nil {
		return fmt.Errorf("couldn't use rebuilder key: %w", err)
	}
	if originalSigner != "" && originalSigner == string(kp.GetHint()) {
		return ErrNotIndependent
	}
	return nil
}

// replay plans and runs the rebuild of the verified statement.
func replay(ctx context.Context, opts AttestOptions, rep *verify.Report) (*Plan, *Result, error) {
	plan, err := NewPlan(rep.Statement)
	if err != nil {
		return nil, nil, err
	}
	ropts := opts.Rebuild
	if opts.Artifact != "" && ropts.Diffoscope != "" { // the original, for diffoscope on a mismatch
		if d, err := digest.File(opts.Artifact); err == nil {
			if sub, ok := rep.Statement.SubjectFor(d.Alg, d.Hex); ok {
				ropts.Originals = map[string]string{sub.Name: opts.Artifact}
			}
		}
	}
	res, err := Run(ctx, plan, ropts)
	return plan, res, err
}

// predicate records the rebuild of the original bundle by the key sg.
func predicate(opts AttestOptions, plan *Plan, res *Result, originalSigner string, bundleJSON []byte, sg crypto.Signer) *attest.RebuildPredicate {
	bsum := sha256.Sum256(bundleJSON)
	id := opts.RebuilderID
	if id == "" {
		id = DefaultRebuilderID
	}
	return &attest.RebuildPredicate{
		Original: attest.RebuildOriginal{
			BuildID:      plan.BuildID,
			BuilderID:    plan.BuilderID,
			Bundle:       map[string]string{"sha256": hex.EncodeToString(bsum[:])},
			Signer:       originalSigner,
			SourceURI:    plan.SourceURI,
			SourceRef:    plan.SourceRef,
			SourceCommit: plan.SourceCommit,
			Command:      plan.Command,
			WorkingDir:   plan.WorkingDir,
		},
		Rebuilder:          attest.Rebuilder{ID: id, KeyID: signer.KeyID(sg.Public())},
		Matched:            res.Matched,
		Subjects:           res.Subjects,
		Toolchains:         res.Toolchains,
		Hermetic:           res.Sandbox != "",
		Sandbox:            res.Sandbox,
		RefusedEnvironment: res.RefusedEnvironment,
		StartedOn:          res.StartedOn,
		FinishedOn:         res.FinishedOn,
	}
}

// writeAttestation signs pred about the plan's subjects, writes it to
// opts.Out and pushes it when opts.Push is set.
func writeAttestation(ctx context.Context, opts AttestOptions, plan *Plan, res *Result, pred *attest.RebuildPredicate, sg crypto.Signer) (*Report, error) {
	sign := func(ctx context.Context, payload []byte) ([]byte, error) {
		return signer.SignStatement(ctx, sg, payload)
	}
	if opts.Sign != nil {
		sign = opts.Sign(sg)
	}
	signed, err := build.SignStatement(ctx, sign, plan.Subjects, attest.PredicateRebuild, pred)
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(opts.Out, signed, 0o644); err != nil {
		return nil, fmt.Errorf("couldn't write rebuild attestation: %w", err)
	}
	report := &Report{Matched: res.Matched, Attestation: opts.Out, Subjects: res.Subjects, Toolchains: res.Toolchains, Original: pred.Original}
	if opts.Push != nil {
		if report.EvidenceID, err = opts.Push(ctx, signed); err != nil {
			return nil, err
		}
	}
	return report, nil
}

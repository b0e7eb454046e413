package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/osv"
)

// SignFunc signs an in-toto statement and returns its Sigstore bundle: with
// a local key (signer.SignStatement) or through a signing service. Its
// errors are returned unchanged by the functions it is given to.
type SignFunc func(ctx context.Context, statement []byte) ([]byte, error)

// SignOptions says how Release signs what a build produced.
type SignOptions struct {
	// Sign signs every statement. Required.
	Sign SignFunc
	// Bundle, when set, is the path of one bundle for all subjects.
	Bundle string
	// OneStatement signs all subjects in one bundle, OutDir/build-ID
	// .sigstore.json, unless the build has one subject that is its one
	// output file: a signing service signs one statement per build (a
	// build ID it has seen is a replay).
	OneStatement bool
	// SBOM also signs a CycloneDX SBOM of each provenance bundle's
	// dependencies beside it (NAME.sbom.sigstore.json).
	SBOM bool
	// OSVDB, when set, is a directory of OSV JSON files (DIR/Go/*.json,
	// DIR/npm/*.json, or all.zip): a vulnerability scan of the
	// dependencies is signed beside each provenance bundle
	// (NAME.vulns.sigstore.json). It is checked before the build runs.
	OSVDB string
}

// SignedBundle is one bundle written and the subjects it signs.
type SignedBundle struct {
	Bundle   string           `json:"bundle"`
	Subjects []attest.Subject `json:"subjects"`
}

// Released is what Release built and signed.
type Released struct {
	BuildID string `json:"buildId"`
	// Bundles are the provenance bundles.
	Bundles []SignedBundle `json:"bundles"`
	// SBOMs and Scans are the evidence bundles beside them.
	SBOMs []SignedBundle `json:"sboms,omitempty"`
	Scans []SignedBundle `json:"scans,omitempty"`
	// Findings are the vulnerabilities the scans found, each once.
	Findings []osv.Finding `json:"vulnerabilities,omitempty"`
	// Scanned says a vulnerability scan was signed (SignOptions.OSVDB).
	Scanned bool `json:"-"`
	// Build is what Run observed.
	Build *Result `json:"-"`
}

// OSVError is returned by Release when the OSV database cannot be used;
// nothing was built (a missing directory) or signed (a malformed file).
type OSVError struct{ Err error }

func (e *OSVError) Error() string { return e.Err.Error() }
func (e *OSVError) Unwrap() error { return e.Err }

// Release runs the build (Run) and signs its provenance, and the SBOM and
// vulnerability scan sopts asks for, writing every bundle. The SBOM and
// scan are prepared before anything is signed, so a bad OSV database
// leaves no provenance without its scan.
//
// Errors: those of Run, *OSVError, those of sopts.Sign unchanged, and I/O
// errors writing the bundles.
func Release(ctx context.Context, opts Options, sopts SignOptions) (*Released, error) {
	if sopts.Sign == nil {
		return nil, errors.New("no signer given")
	}
	if sopts.OSVDB != "" {
		if fi, err := os.Stat(sopts.OSVDB); err != nil || !fi.IsDir() {
			return nil, &OSVError{fmt.Errorf("OSV database %s is not a directory", sopts.OSVDB)}
		}
	}
	res, err := Run(ctx, opts)
	if err != nil {
		return nil, err
	}
	bundles := planBundles(res, opts, sopts)
	per, scanTargets, err := bundleComponents(res, bundles)
	if err != nil {
		return nil, err
	}
	var db *osv.DB
	if sopts.OSVDB != "" {
		if db, err = osv.LoadFor(ctx, sopts.OSVDB, scanTargets); err != nil {
			return nil, &OSVError{err}
		}
	}
	jobs := make([]EvidenceJob, len(bundles))
	for i, b := range bundles {
		jobs[i] = EvidenceJob{Bundle: b.Bundle, Subjects: b.Subjects, PredicateType: attest.PredicateSLSAv1, Predicate: res.Provenance}
	}
	if err := SignEvidence(ctx, sopts.Sign, jobs); err != nil {
		return nil, err
	}
	out := &Released{BuildID: res.BuildID, Bundles: bundles, Build: res, Scanned: db != nil}
	if err := signBuildEvidence(ctx, sopts, bundles, per, db, out); err != nil {
		return nil, err
	}
	return out, nil
}

// planBundles says which subjects each provenance bundle signs and where
// it goes: one bundle (sopts.Bundle or sopts.OneStatement), else one per
// subject, beside its file or, for a subject that is not a file, in the
// output directory.
func planBundles(res *Result, opts Options, sopts SignOptions) []SignedBundle {
	dir := opts.OutDir
	if dir == "" {
		dir = "."
	} else if !filepath.IsAbs(dir) && opts.Dir != "" {
		dir = filepath.Join(opts.Dir, dir)
	}
	switch {
	case sopts.Bundle != "":
		return []SignedBundle{{Bundle: sopts.Bundle, Subjects: res.Subjects}}
	case sopts.OneStatement && !(len(res.Subjects) == 1 && len(res.Outputs) == 1):
		return []SignedBundle{{Bundle: filepath.Join(dir, "build-"+res.BuildID+BundleSuffix), Subjects: res.Subjects}}
	}
	files := map[string]string{} // subject name -> file path
	for _, o := range res.Outputs {
		files[o.Name] = o.Path
	}
	var out []SignedBundle
	for _, sub := range res.Subjects {
		path, ok := files[sub.Name]
		if ok {
			path += BundleSuffix
		} else {
			path = filepath.Join(dir, SafeName(sub.Name)+BundleSuffix)
		}
		out = append(out, SignedBundle{Bundle: path, Subjects: []attest.Subject{sub}})
	}
	return out
}

// SafeName turns a subject name (possibly an image reference) into a file
// name.
func SafeName(name string) string {
	r := strings.NewReplacer("/", "_", ":", "_", "@", "_", "\\", "_")
	n := r.Replace(name)
	if n == "" || n == "." || n == ".." {
		n = "subject"
	}
	return n
}

// SignStatement wraps pred in an in-toto statement about subjects and
// signs it with sign.
func SignStatement(ctx context.Context, sign SignFunc, subjects []attest.Subject, predicateType string, pred any) ([]byte, error) {
	st, err := attest.NewStatement(subjects, predicateType, pred)
	if err != nil {
		return nil, fmt.Errorf("couldn't build statement: %w", err)
	}
	payload, err := st.Marshal()
	if err != nil {
		return nil, fmt.Errorf("couldn't encode statement: %w", err)
	}
	return sign(ctx, payload)
}

// EvidenceJob is one statement to sign and where its bundle goes.
type EvidenceJob struct {
	Bundle        string
	Subjects      []attest.Subject
	PredicateType string
	Predicate     any
}

// SignEvidence signs and writes each job's statement, spread over the
// cores: a build with thousands of outputs should not wait on one
// signature at a time. The first failure stops the rest.
func SignEvidence(ctx context.Context, sign SignFunc, jobs []EvidenceJob) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil { // canceled, or an earlier job failed
				return err
			}
			b, err := SignStatement(ctx, sign, j.Subjects, j.PredicateType, j.Predicate)
			if err != nil {
				return err
			}
			if err := fsutil.WriteFileAtomic(j.Bundle, b, 0o644); err != nil {
				return fmt.Errorf("couldn't write bundle: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

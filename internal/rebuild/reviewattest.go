package rebuild

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/signer"
)

// ErrReviewExists is returned by Review when its bundle is already there
// and ReviewOptions.Force is not set; nothing was signed.
var ErrReviewExists = errors.New("already exists")

// ReviewOptions configures Review.
type ReviewOptions struct {
	// Repo is the git repository's directory. Default ".".
	Repo string
	// Range is BASE..HEAD (ReviewedCommits) or, with FromRoot, the head
	// only (ReviewedFromRoot; default HEAD).
	Range    string
	FromRoot bool
	// Reviewers name who reviewed the range. Required, none empty.
	Reviewers []string
	// Bundle is where the bundle goes. Default review-HEAD12.sigstore.json.
	// An existing file is refused (ErrReviewExists) unless Force.
	Bundle string
	Force  bool
	// OpenKey opens the signing key of whoever vouches for the review,
	// once the range is read; release is called before Review returns.
	// Required.
	OpenKey func() (crypto.Signer, func(), error)
	// Sign makes the function that signs with that key; nil signs with
	// signer.SignStatement.
	Sign func(crypto.Signer) build.SignFunc
	// Push, when set, sends the signed bundle once it is written to path
	// and returns its evidence ID.
	Push func(ctx context.Context, path string, bundle []byte) (int64, error)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// ReviewReport is what Review signed.
type ReviewReport struct {
	Bundle     string                  `json:"bundle"`
	EvidenceID int64                   `json:"evidenceId,omitempty"`
	Predicate  *attest.ReviewPredicate `json:"predicate"`
}

// Review signs a source review attestation (attest.PredicateReview): the
// commits of the range, each a subject, reviewed by opts.Reviewers; it
// writes the bundle and pushes it when opts.Push is set.
//
// Errors: invalid options, git errors reading the range, ErrReviewExists,
// and the errors of OpenKey, Sign and Push unchanged.
func Review(ctx context.Context, opts ReviewOptions) (*ReviewReport, error) {
	if len(opts.Reviewers) == 0 {
		return nil, errors.New("no reviewer given")
	}
	for _, r := range opts.Reviewers {
		if strings.TrimSpace(r) == "" {
			return nil, errors.New("a reviewer is empty")
		}
	}
	pred, err := reviewPredicate(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := opts.Bundle
	if out == "" {
		out = "review-" + pred.Range.Head[:12] + build.BundleSuffix
	}
	if !opts.Force {
		if _, err := os.Stat(out); err == nil {
			return nil, fmt.Errorf("bundle %s %w", out, ErrReviewExists)
		}
	}
	subjects := make([]attest.Subject, len(pred.Commits))
	for i, c := range pred.Commits {
		subjects[i] = attest.Subject{Name: pred.Repo, Digest: map[string]string{"gitCommit": c.Commit}}
	}
	sg, release, err := opts.OpenKey()
	if err != nil {
		return nil, err
	}
	defer release()
	sign := func(ctx context.Context, payload []byte) ([]byte, error) {
		return signer.SignStatement(ctx, sg, payload)
	}
	if opts.Sign != nil {
		sign = opts.Sign(sg)
	}
	signed, err := build.SignStatement(ctx, sign, subjects, attest.PredicateReview, pred)
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(out, signed, 0o644); err != nil {
		return nil, fmt.Errorf("couldn't write bundle: %w", err)
	}
	report := &ReviewReport{Bundle: out, Predicate: pred}
	if opts.Push != nil {
		if report.EvidenceID, err = opts.Push(ctx, out, signed); err != nil {
			return nil, err
		}
	}
	return report, nil
}

// reviewPredicate reads the range's commits and records the review.
func reviewPredicate(ctx context.Context, opts ReviewOptions) (*attest.ReviewPredicate, error) {
	dir := opts.Repo
	if dir == "" {
		dir = "."
	}
	var (
		repo    string
		rng     attest.ReviewRange
		commits []attest.ReviewCommit
		err     error
	)
	if opts.FromRoot {
		head := opts.Range
		if head == "" {
			head = "HEAD"
		}
		repo, rng, commits, err = ReviewedFromRoot(ctx, dir, head)
	} else {
		repo, rng, commits, err = ReviewedCommits(ctx, dir, opts.Range)
	}
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	pred := &attest.ReviewPredicate{
		Repo:       repo,
		Range:      rng,
		Commits:    commits,
		Reviewers:  opts.Reviewers,
		ReviewedAt: now().UTC().Truncate(time.Second),
	}
	if err := pred.Validate(); err != nil {
		return nil, err
	}
	return pred, nil
}

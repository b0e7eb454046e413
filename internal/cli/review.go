package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/rebuild"
)

// withReview adds `attest review` to the attest command.
func withReview(attestCmd *cobra.Command, s *streams) *cobra.Command {
	attestCmd.AddCommand(newReviewCmd(s))
	return attestCmd
}

type reviewFlags struct {
	key, rangeSpec, repo, bundle, server string
	reviewers                            []string
	force, jsonOut, fromRoot             bool
}

func newReviewCmd(s *streams) *cobra.Command {
	var f reviewFlags
	c := &cobra.Command{
		Use:   "review --key KEY (--range BASE..HEAD | --from-root [--range HEAD]) --reviewer NAME... [--repo DIR] [--bundle OUT] [--server URL]",
		Short: "Attest that a range of commits was reviewed, and by whom",
		Long: "Lists the commits of BASE..HEAD with their authors and committers from git and signs a\n" +
			"statement (predicate " + attest.PredicateReview + ") whose subjects are those commits and\n" +
			"whose predicate names the reviewers. Writes review-HEAD.sigstore.json (or --bundle) and, with\n" +
			"--server, pushes it to custody serve.\n\n" +
			"For a first release, with no earlier tag: --from-root (or a BASE that is the root commit, given\n" +
			"as a commit) reviews every commit HEAD reaches, the root included, and records range.root.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, args []string) error {
			return runReview(c.Context(), s, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "signing key of whoever vouches for the review")
	fl.StringVar(&f.rangeSpec, "range", "", "reviewed commits, BASE..HEAD (BASE excluded); with --from-root the head only (default HEAD)")
	fl.BoolVar(&f.fromRoot, "from-root", false, "review every commit the head reaches, from the repository's root commit (a first release)")
	fl.StringArrayVar(&f.reviewers, "reviewer", nil, "who reviewed the range (repeatable)")
	fl.StringVar(&f.repo, "repo", ".", "the git repository")
	fl.StringVar(&f.bundle, "bundle", "", "where to write the bundle (default review-HEAD.sigstore.json)")
	fl.StringVar(&f.server, "server", "", "push the bundle to custody serve (token from $CUSTODY_TOKEN)")
	fl.BoolVar(&f.force, "force", false, "overwrite an existing bundle")
	fl.BoolVar(&f.jsonOut, "json", false, "print the predicate as JSON")
	return c
}

func runReview(ctx context.Context, s *streams, f *reviewFlags) error {
	switch {
	case f.key == "":
		return usageErr(errors.New("--key is required"), "")
	case f.fromRoot && strings.Contains(f.rangeSpec, ".."):
		return usageErr(errors.New("--from-root takes the head only, not a range"), "use --from-root --range HEAD, or --range BASE..HEAD without --from-root")
	case f.rangeSpec == "" && !f.fromRoot:
		return usageErr(errors.New("--range is required"), "use --range v1.2.0..HEAD, or --from-root for a first release")
	case len(f.reviewers) == 0:
		return usageErr(errors.New("no --reviewer given"), "name who reviewed the range: --reviewer alice@example.com")
	}
	for _, r := range f.reviewers {
		if strings.TrimSpace(r) == "" {
			return usageErr(errors.New("--reviewer is empty"), "")
		}
	}
	if f.fromRoot && f.rangeSpec == "" {
		f.rangeSpec = "HEAD"
	}
	opts := rebuild.ReviewOptions{Repo: f.repo, Range: f.rangeSpec, FromRoot: f.fromRoot, Reviewers: f.reviewers, Bundle: f.bundle, Force: f.force,
		OpenKey: func() (crypto.Signer, func(), error) { return loadSigner(s, f.key) }, Sign: keySigner}
	if f.server != "" {
		// Logged and timestamped by the server it is pushed to.
		cl, err := newClient(serverURL(f.server))
		if err != nil {
			return err
		}
		opts.Sign = func(sg crypto.Signer) signFunc { return loggedKeySigner(sg, cl) }
		opts.Push = func(ctx context.Context, path string, b []byte) (int64, error) {
			id, _, err := cl.Push(ctx, b)
			return id, remoteErr(err, "push review attestation (kept in "+path+")")
		}
	}
	report, err := rebuild.Review(ctx, opts)
	var ee *exitError
	switch {
	case errors.As(err, &ee): // opening the key, signing, pushing
		return err
	case errors.Is(err, rebuild.ErrReviewExists):
		return usageErr(err, "pass --force to replace it, or --bundle elsewhere")
	case err != nil:
		return usageErr(err, "")
	}
	if f.jsonOut {
		return writeJSON(s.out, report)
	}
	printReview(s.out, f, report)
	return nil
}

func printReview(w io.Writer, f *reviewFlags, report *rebuild.ReviewReport) {
	pred := report.Predicate
	from := ""
	if pred.Range.Root {
		from = " from the root commit"
		if !f.fromRoot {
			fmt.Fprintf(w, "BASE is the repository's root commit: the review starts at the root and includes it (range.root)\n")
		}
	}
	fmt.Fprintf(w, "review of %s%s (%d commit(s)) by %s written to %s\n", f.rangeSpec, from, len(pred.Commits), strings.Join(f.reviewers, ", "), report.Bundle)
	for _, c := range pred.Commits {
		fmt.Fprintf(w, "  %s %s <%s> %s\n", c.Commit[:12], c.Author.Name, c.Author.Email, c.Subject)
	}
	if report.EvidenceID != 0 {
		fmt.Fprintf(w, "pushed to the server as evidence %d\n", report.EvidenceID)
	}
}

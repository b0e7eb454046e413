package attest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// PredicateReview is the in-toto predicate type of a source review
// attestation, written by `custody attest review` (schema in REVIEW.md):
// the reviewers it names reviewed every commit of a range. Its statement's
// subjects are the commits ({"gitCommit": HEX}), not an artifact; the gate
// finds it by the source commit of the artifact's verified provenance.
const PredicateReview = "https://custody.dev/review/v1"

// MaxReviewCommits bounds the commits one review attestation lists.
const MaxReviewCommits = 10000

// ReviewPredicate records that a range of commits was reviewed, and by whom.
type ReviewPredicate struct {
	// Repo is the repository, as custody build records a source URI
	// (git+https://host/org/repo, or git+file:///path without a remote).
	Repo string `json:"repo"`
	// Range is the reviewed range: Base (excluded) to Head (included).
	Range ReviewRange `json:"range"`
	// Commits are the commits in the range, oldest first, with their
	// authors and committers as git records them.
	Commits []ReviewCommit `json:"commits"`
	// Reviewers are who reviewed the range (names, emails or identities).
	// The key that signed the attestation vouches for them.
	Reviewers []string `json:"reviewers"`
	// ReviewedAt is when the attestation was made.
	ReviewedAt time.Time `json:"reviewedAt"`
}

// ReviewRange is a commit range BASE..HEAD as full commits, or every commit
// HEAD reaches when Root is set.
type ReviewRange struct {
	// Spec is the range as the reviewer wrote it ("v1.2.0..HEAD").
	Spec string `json:"spec"`
	// Base is empty when Root is set.
	Base string `json:"base"`
	// BaseRef is the full ref BASE named when it was a tag or branch
	// (refs/tags/v1.2.0); policy finds the previous release by it. Empty
	// for a bare commit.
	BaseRef string `json:"baseRef,omitempty"`
	Head    string `json:"head"`
	// Root is true when the range starts at the repository's root
	// commit(s), which it includes: every commit HEAD reaches is listed
	// (a first release, with no earlier tag to start from).
	Root bool `json:"root,omitempty"`
}

// ReviewCommit is one reviewed commit.
type ReviewCommit struct {
	Commit string `json:"commit"`
	// Parents are the commit's parents, full commits, [] for a root
	// commit, nil when the attestation does not record them (custody
	// before it did): policy finds which listed commits a commit inside
	// the range descends from.
	Parents   []string  `json:"parents"`
	Author    GitPerson `json:"author"`
	Committer GitPerson `json:"committer"`
	Subject   string    `json:"subject,omitempty"`
	// Files are the paths the commit changed (against its first parent
	// for a merge; a rename as both paths), [] for none, nil when the
	// attestation does not record them (custody before it did).
	Files []string `json:"files"`
}

// GitPerson is a git author or committer.
type GitPerson struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// String renders the person as git does, or as much of it as is known.
func (g GitPerson) String() string {
	switch {
	case g.Name != "" && g.Email != "":
		return g.Name + " <" + g.Email + ">"
	case g.Email != "":
		return g.Email
	case g.Name != "":
		return g.Name
	}
	return "an unknown author"
}

// ParseReview parses a review predicate from untrusted bytes. Members it
// does not know are ignored. Besides what decodePredicate refuses (over
// MaxStatementBytes, a duplicate member, invalid UTF-8), it refuses what
// Validate refuses.
func ParseReview(b []byte) (*ReviewPredicate, error) {
	var p ReviewPredicate
	if err := decodePredicate("review", b, MaxStatementBytes, false, &p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the rules ParseReview applies: a repository and every
// reviewer non-empty and at most 1024 bytes, at least one and at most
// MaxReviewCommits commits, commits, parents and range ends full lowercase
// hex, a range head, no base on a root range, and a reviewedAt.
func (p *ReviewPredicate) Validate() error {
	switch {
	case p.Repo == "" || len(p.Repo) > maxNameLen:
		return errors.New("review predicate names no repository (or one over 1024 bytes)")
	case len(p.Reviewers) == 0:
		return errors.New("review predicate names no reviewer")
	case len(p.Commits) == 0:
		return errors.New("review predicate lists no commit")
	case len(p.Commits) > MaxReviewCommits:
		return fmt.Errorf("review predicate lists %d commits, more than the limit of %d", len(p.Commits), MaxReviewCommits)
	case !commitHex.MatchString(p.Range.Head):
		return fmt.Errorf("review range head %q is not a full lowercase hex commit", p.Range.Head)
	case p.Range.Base != "" && !commitHex.MatchString(p.Range.Base):
		return fmt.Errorf("review range base %q is not a full lowercase hex commit", p.Range.Base)
	case p.Range.Root && p.Range.Base != "":
		return errors.New("review range starts at the root but names a base commit")
	case p.ReviewedAt.IsZero():
		return errors.New("review predicate has no reviewedAt")
	}
	for i, r := range p.Reviewers {
		if strings.TrimSpace(r) == "" || len(r) > maxNameLen {
			return fmt.Errorf("reviewer %d is empty (or over 1024 bytes)", i)
		}
	}
	for i, c := range p.Commits {
		if !commitHex.MatchString(c.Commit) {
			return fmt.Errorf("review commit %d %q is not a full lowercase hex commit", i, c.Commit)
		}
		for _, pc := range c.Parents {
			if !commitHex.MatchString(pc) {
				return fmt.Errorf("review commit %d parent %q is not a full lowercase hex commit", i, pc)
			}
		}
	}
	return nil
}

package gate

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/verify"
)

// MaxDirBundles bounds how many bundles ReadDir reads.
const MaxDirBundles = 10000

// Bundle is a bundle and where it came from.
type Bundle struct {
	Name string // file path, or "server:ID"
	JSON []byte
}

// ReadDir reads every *.json file under dir (recursively) as a bundle,
// refusing files over verify.MaxBundleBytes and more than MaxDirBundles
// files. Files are returned sorted by path; nothing is verified here.
func ReadDir(dir string) ([]Bundle, error) {
	var out []Bundle
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		if len(out) >= MaxDirBundles {
			return fmt.Errorf("more than %d bundles under %s", MaxDirBundles, dir)
		}
		b, err := readLimited(p, verify.MaxBundleBytes)
		if err != nil {
			return err
		}
		out = append(out, Bundle{Name: p, JSON: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read evidence directory: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return b, nil
}

// Searcher pages through a server's evidence index: *client.Client. It is
// an interface so that gate (and the lean verifier built on it) does not
// link the HTTP client.
type Searcher interface {
	SearchAll(ctx context.Context, q api.Query) ([]*api.Evidence, error)
}

// MaxSourceCommits bounds how many distinct source commits FromServer and
// ForArtifact look up review attestations for.
const MaxSourceCommits = 16

// FromServer returns every bundle the server's index holds about
// artifactDigest ("sha256:HEX"), paging through Search, and the review
// attestations (attest.PredicateReview) whose subject is a source commit
// ("gitCommit:HEX") that the provenance among them records, or the base
// commit of such a review (at most MaxReviewLookups commits). The client
// checks log consistency; nothing else is verified here (Gather verifies
// the provenance before it lets a review count). Errors are the client's
// (client.ErrUnreachable for a server that cannot be reached).
func FromServer(ctx context.Context, cl Searcher, artifactDigest string) ([]Bundle, error) {
	// Decisions (VSAs) and audit entries about the artifact are outputs of
	// the gate, never its inputs; they accumulate with every decision, so
	// the index leaves them out rather than sending them to be skipped.
	out, err := search(ctx, cl, api.Query{Digest: artifactDigest,
		ExcludePredicateTypes: []string{attest.PredicateVSA, api.PredicateAudit}})
	if err != nil {
		return nil, err
	}
	// Reviews of the source commits, then of the commits those reviews
	// start from (earlier ranges that chain to them), as Gather takes them.
	queue := claimedCommits(out)
	asked := map[string]bool{}
	seen := map[string]bool{}
	for len(queue) > 0 && len(asked) < MaxReviewLookups {
		c := queue[0]
		queue = queue[1:]
		if asked[c] {
			continue
		}
		asked[c] = true
		rs, err := search(ctx, cl, api.Query{Digest: "gitCommit:" + c, PredicateType: attest.PredicateReview})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if seen[r.Name] {
				continue
			}
			seen[r.Name] = true
			out = append(out, r)
			if base := reviewBase(r.JSON); base != "" && !asked[base] {
				queue = append(queue, base)
			}
		}
	}
	return out, nil
}

// MaxReviewLookups bounds the commits FromServer asks the server for
// reviews of.
const MaxReviewLookups = 256

// reviewBase returns the base commit of a review bundle's range, read
// unverified, or "".
func reviewBase(b []byte) string {
	st, err := statementOf(b)
	if err != nil || st.PredicateType != attest.PredicateReview {
		return ""
	}
	p, err := attest.ParseReview(st.Predicate)
	if err != nil {
		return ""
	}
	return p.Range.Base
}

// ForArtifact keeps the bundles among bs that are evidence about
// artifactDigest: those whose statement names it as a subject, review
// attestations of a source commit that the provenance among those records
// or of the base commit of a review kept (an earlier range), and bundles
// that do not parse (so that Gather reports them). It reads
// statements unverified; Gather verifies what is kept.
func ForArtifact(bs []Bundle, artifactDigest string) []Bundle {
	var out []Bundle
	var reviews []Bundle
	for _, b := range bs {
		st, err := statementOf(b.JSON)
		if err != nil {
			out = append(out, b)
			continue
		}
		if st.PredicateType == attest.PredicateReview {
			reviews = append(reviews, b)
			continue
		}
		for _, s := range st.Subject {
			if h := s.Digest["sha256"]; h != "" && "sha256:"+strings.ToLower(h) == artifactDigest {
				out = append(out, b)
				break
			}
		}
	}
	wanted := map[string]bool{}
	for _, c := range claimedCommits(out) {
		wanted[c] = true
	}
	kept := make([]bool, len(reviews))
	for progress := true; progress; {
		progress = false
		for i, b := range reviews {
			if kept[i] {
				continue
			}
			st, _ := statementOf(b.JSON)
			if namedCommit(st, wanted) == "" {
				continue
			}
			kept[i] = true
			out = append(out, b)
			if base := reviewBase(b.JSON); base != "" && !wanted[base] {
				wanted[base] = true
				progress = true
			}
		}
	}
	return out
}

// claimedCommits returns the source commits that the SLSA provenance among
// bs records, read unverified, sorted, at most MaxSourceCommits.
func claimedCommits(bs []Bundle) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range bs {
		st, err := statementOf(b.JSON)
		if err != nil || (st.PredicateType != attest.PredicateSLSAv1 && st.PredicateType != attest.PredicateSLSAv02) {
			continue
		}
		f, err := attest.ParseProvenance(st.PredicateType, st.Predicate)
		if err != nil {
			continue
		}
		c := strings.ToLower(f.SourceCommit)
		if commitRe.MatchString(c) && !seen[c] && len(out) < MaxSourceCommits {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func search(ctx context.Context, cl Searcher, q api.Query) ([]Bundle, error) {
	found, err := cl.SearchAll(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]Bundle, 0, len(found))
	for _, e := range found {
		out = append(out, Bundle{Name: fmt.Sprintf("server:%d", e.ID), JSON: e.Bundle})
	}
	return out, nil
}

// ProvenanceOnServer returns every bundle of SLSA provenance (v1 and v0.2)
// on the server, for finding candidate artifacts.
func ProvenanceOnServer(ctx context.Context, cl Searcher) ([]Bundle, error) {
	var out []Bundle
	for _, pt := range []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02} {
		b, err := search(ctx, cl, api.Query{PredicateType: pt})
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// Candidates returns the sha256 digests ("sha256:HEX") of every subject of
// the SLSA provenance statements among bundles, sorted. It reads statements
// without verifying them: the result only says which artifacts to Gather
// evidence for.
func Candidates(bundles []Bundle) []string {
	seen := map[string]bool{}
	for _, b := range bundles {
		var bu bundle.Bundle
		if len(b.JSON) > verify.MaxBundleBytes || bu.UnmarshalJSON(b.JSON) != nil || bu.GetDsseEnvelope() == nil {
			continue
		}
		st, err := attest.ParseStatement(bu.GetDsseEnvelope().GetPayload())
		if err != nil || (st.PredicateType != attest.PredicateSLSAv1 && st.PredicateType != attest.PredicateSLSAv02) {
			continue
		}
		for _, s := range st.Subject {
			if h := s.Digest["sha256"]; h != "" {
				seen["sha256:"+h] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// JSONs returns the bundles' bytes, in order, for Gather.
func JSONs(bs []Bundle) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = b.JSON
	}
	return out
}

// Subjects returns the sha256 subjects ("sha256:HEX") of a bundle's DSSE
// statement, unverified; ok is false when the bundle or statement does not
// parse.
func Subjects(b []byte) (subjects []string, ok bool) {
	var bu bundle.Bundle
	if len(b) > verify.MaxBundleBytes || bu.UnmarshalJSON(b) != nil || bu.GetDsseEnvelope() == nil {
		return nil, false
	}
	st, err := attest.ParseStatement(bu.GetDsseEnvelope().GetPayload())
	if err != nil {
		return nil, false
	}
	for _, s := range st.Subject {
		if h := s.Digest["sha256"]; h != "" {
			subjects = append(subjects, "sha256:"+h)
		}
	}
	return subjects, true
}

// OfPredicateType keeps the bundles whose statement claims predicateType
// (read unverified: Gather verifies what is kept). A bundle that does not
// parse as an attestation is dropped: it claims no type.
func OfPredicateType(bs []Bundle, predicateType string) []Bundle {
	var out []Bundle
	for _, b := range bs {
		if st, err := statementOf(b.JSON); err == nil && st.PredicateType == predicateType {
			out = append(out, b)
		}
	}
	return out
}

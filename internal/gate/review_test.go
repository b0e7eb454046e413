package gate

import (
	"context"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/signer"
)

// signReview signs a review statement of release..commits[last] whose
// subjects are commits.
func signReview(t *testing.T, k crypto.Signer, commits ...string) []byte {
	t.Helper()
	return signRange(t, k, strings.Repeat("0", 40), commits...)
}

func signRange(t *testing.T, k crypto.Signer, base string, commits ...string) []byte {
	t.Helper()
	var subs []attest.Subject
	var rc []attest.ReviewCommit
	for _, c := range commits {
		subs = append(subs, attest.Subject{Name: "git+https://github.com/org/app", Digest: map[string]string{"gitCommit": c}})
		rc = append(rc, attest.ReviewCommit{Commit: c, Author: attest.GitPerson{Name: "Alice", Email: "alice@example.com"}, Files: []string{"main.go"}})
	}
	pred := attest.ReviewPredicate{
		Repo:       "git+https://github.com/org/app",
		Range:      attest.ReviewRange{Base: base, BaseRef: "refs/tags/v0", Head: commits[len(commits)-1]},
		Commits:    rc,
		Reviewers:  []string{"bob@example.com"},
		ReviewedAt: time.Now().UTC(),
	}
	st, err := attest.NewStatement(subs, attest.PredicateReview, pred)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := signer.SignStatement(context.Background(), k, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Reviews are about commits: Gather verifies one against the source commit
// of the verified provenance, and rejects reviews of other commits,
// reviews that fail verification, and every review when no provenance
// verified.
func TestGatherReviews(t *testing.T) {
	builder, _ := newKey(t)
	bob, bobID := newKey(t)
	stranger, _ := newKey(t)
	tm, err := KeyMaterial(builder.Public(), bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Repeat("1", 40) // provenance()'s commit
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	good := signReview(t, bob, strings.Repeat("2", 40), src)
	other := signReview(t, bob, strings.Repeat("3", 40))
	untrusted := signReview(t, stranger, src)
	tampered := tamper(t, good)

	// The review comes before the provenance: order does not matter.
	ev, rej, err := Gather(context.Background(), digest, [][]byte{good, other, untrusted, tampered, prov}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Reviews) != 1 || ev.Reviews[0].Signer.KeyID != bobID || len(ev.Reviews[0].Commits) != 2 || ev.Reviews[0].Range.BaseRef != "refs/tags/v0" {
		t.Fatalf("reviews %+v", ev.Reviews)
	}
	if len(ev.Attestations) != 0 {
		t.Errorf("a review landed among attestations: %+v", ev.Attestations)
	}
	want := map[int]string{1: "not about the artifact's source commit", 2: "does not verify", 3: "does not verify"}
	if len(rej) != len(want) {
		t.Fatalf("rejected %+v", rej)
	}
	for _, r := range rej {
		if !strings.Contains(r.Reason, want[r.Index]) {
			t.Errorf("bundle %d rejected for %q, want %q", r.Index, r.Reason, want[r.Index])
		}
	}

	// Without verified provenance no review counts.
	ev, rej, err = Gather(context.Background(), digest, [][]byte{good}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Reviews) != 0 || len(rej) != 1 || !strings.Contains(rej[0].Reason, "no verified provenance") {
		t.Errorf("reviews %+v, rejected %+v", ev.Reviews, rej)
	}
	// A provenance that does not verify names no commit either.
	untrustedProv := sign(t, stranger, attest.PredicateSLSAv1, provenance())
	ev, _, err = Gather(context.Background(), digest, [][]byte{untrustedProv, good}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Reviews) != 0 {
		t.Errorf("a review counted on unverified provenance: %+v", ev.Reviews)
	}
}

// A review of an earlier range counts when a verified review of the
// source commit starts where it ends, in any order; one that chains only to
// an unverified review does not.
func TestGatherChainedReviews(t *testing.T) {
	builder, _ := newKey(t)
	bob, _ := newKey(t)
	stranger, _ := newKey(t)
	tm, err := KeyMaterial(builder.Public(), bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	src, mid, early := strings.Repeat("1", 40), strings.Repeat("4", 40), strings.Repeat("5", 40)
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	first := signRange(t, bob, strings.Repeat("0", 40), mid)            // release..mid
	last := signRange(t, bob, mid, src)                                 // mid..src
	viaStranger := signRange(t, stranger, early, src)                   // early..src, untrusted
	beforeStranger := signRange(t, bob, strings.Repeat("0", 40), early) // release..early
	ev, rej, err := Gather(context.Background(), digest, [][]byte{first, beforeStranger, viaStranger, last, prov}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Reviews) != 2 {
		t.Fatalf("reviews %+v", ev.Reviews)
	}
	want := map[int]string{1: "or a commit a verified review of it starts from", 2: "does not verify"}
	if len(rej) != len(want) {
		t.Fatalf("rejected %+v", rej)
	}
	for _, r := range rej {
		if !strings.Contains(r.Reason, want[r.Index]) {
			t.Errorf("bundle %d rejected for %q, want %q", r.Index, r.Reason, want[r.Index])
		}
	}
	var names []string
	for _, b := range ForArtifact([]Bundle{{"first", first}, {"before", beforeStranger}, {"stranger", viaStranger}, {"last", last}, {"prov", prov}}, digest) {
		names = append(names, b.Name)
	}
	// Unverified, ForArtifact follows the stranger's range too: Gather
	// decides.
	if got := strings.Join(names, ","); got != "prov,stranger,last,first,before" {
		t.Errorf("kept %s", got)
	}
}

// ForArtifact keeps what is about the artifact and the reviews of the
// commits its provenance names.
func TestForArtifact(t *testing.T) {
	builder, _ := newKey(t)
	src := strings.Repeat("1", 40)
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	good := signReview(t, builder, src)
	other := signReview(t, builder, strings.Repeat("3", 40))
	sbom := sign(t, builder, attest.PredicateCycloneDX, map[string]any{})
	elsewhere := func() []byte {
		st, _ := attest.NewStatement([]attest.Subject{{Name: "x", Digest: map[string]string{"sha256": strings.Repeat("0", 64)}}}, attest.PredicateCycloneDX, map[string]any{})
		b, _ := st.Marshal()
		out, err := signer.SignStatement(context.Background(), builder, b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	in := []Bundle{{"prov", prov}, {"good", good}, {"other", other}, {"sbom", sbom}, {"elsewhere", elsewhere}, {"broken", []byte("{")}}
	var names []string
	for _, b := range ForArtifact(in, digest) {
		names = append(names, b.Name)
	}
	if got := strings.Join(names, ","); got != "prov,sbom,broken,good" {
		t.Errorf("kept %s, want prov,sbom,broken,good", got)
	}
}

// A review whose range includes the source commit but runs on past it is
// about the source commit too, and an earlier review whose range includes
// its base (without ending there) chains to it: both are gathered, locally
// and by ForArtifact; the policy decides which commits count.
func TestGatherReviewsBeyondSource(t *testing.T) {
	builder, _ := newKey(t)
	bob, _ := newKey(t)
	tm, err := KeyMaterial(builder.Public(), bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	src, after, mid, midAfter := strings.Repeat("1", 40), strings.Repeat("6", 40), strings.Repeat("4", 40), strings.Repeat("7", 40)
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	late := signRange(t, bob, mid, src, after)                         // mid..after, src inside
	early := signRange(t, bob, strings.Repeat("0", 40), mid, midAfter) // release..midAfter, mid inside
	ev, rej, err := Gather(context.Background(), digest, [][]byte{early, late, prov}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Reviews) != 2 || len(rej) != 0 {
		t.Fatalf("reviews %+v, rejected %+v", ev.Reviews, rej)
	}
	var names []string
	for _, b := range ForArtifact([]Bundle{{"early", early}, {"late", late}, {"prov", prov}}, digest) {
		names = append(names, b.Name)
	}
	if got := strings.Join(names, ","); got != "prov,late,early" {
		t.Errorf("kept %s", got)
	}
}

package rebuild

import (
	"context"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/verify"
)

func TestReview(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=Ann", "-c", "user.email=ann@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	for _, msg := range []string{"one", "two", "three", "four"} {
		git("commit", "-q", "--allow-empty", "-m", msg)
	}
	head := git("rev-parse", "HEAD")
	key := newKey(t)
	out := filepath.Join(t.TempDir(), "review.json")
	var pushedPath string
	opts := ReviewOptions{
		Repo: repo, Range: "HEAD~2..HEAD", Reviewers: []string{"bob@example.com"}, Bundle: out,
		OpenKey: func() (crypto.Signer, func(), error) { return key, func() {}, nil },
		Push: func(_ context.Context, path string, _ []byte) (int64, error) {
			pushedPath = path
			return 42, nil
		},
	}
	rep, err := Review(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bundle != out || rep.EvidenceID != 42 || pushedPath != out || rep.Predicate.Range.Head != head || len(rep.Predicate.Commits) != 2 {
		t.Fatalf("report = %+v %+v, pushed %q", rep, rep.Predicate, pushedPath)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := verify.PublicKeyMaterial(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	vr, err := verify.Verify(context.Background(), b, verify.Artifact{Digests: map[string]string{"gitCommit": head}}, tm,
		verify.Requirements{PredicateType: attest.PredicateReview})
	if err != nil || !vr.Verified || len(vr.Statement.Subject) != 2 {
		t.Fatalf("review bundle does not verify: %v %+v", err, vr)
	}

	// An existing bundle is refused before the key is opened.
	opened := false
	opts.OpenKey = func() (crypto.Signer, func(), error) { opened = true; return key, func() {}, nil }
	if _, err := Review(context.Background(), opts); !errors.Is(err, ErrReviewExists) || opened {
		t.Errorf("existing bundle: err = %v, key opened %v", err, opened)
	}
	// From the root: every commit, the root included.
	opts.Range, opts.FromRoot, opts.Force = "", true, true
	if rep, err = Review(context.Background(), opts); err != nil || !rep.Predicate.Range.Root || len(rep.Predicate.Commits) != 4 {
		t.Fatalf("from root: %v %+v", err, rep)
	}
	// No reviewer, or an empty one.
	for _, rs := range [][]string{nil, {" "}} {
		opts.Reviewers = rs
		if _, err := Review(context.Background(), opts); err == nil {
			t.Errorf("reviewers %q accepted", rs)
		}
	}
}

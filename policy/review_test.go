package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

const reviewPolicy = `
apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [https://custody.dev/builders/local@v1]
signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]
groups:
  developers:
    - {name: alice, keyIds: [aaaa000000000000000000000000000000000000000000000000000000000000], emails: [alice@example.com]}
    - {name: bob, keyIds: [bbbb000000000000000000000000000000000000000000000000000000000000], emails: [Bob@Example.com]}
    - {name: carol, identities: [{identity: carol@example.com, issuer: https://accounts.example.com}]}
  security:
    - {name: dave, keyIds: [dddd000000000000000000000000000000000000000000000000000000000000], emails: [dave@example.com]}
    - {name: erin, keyIds: [eeee000000000000000000000000000000000000000000000000000000000000]}
reviews:
  everyCommit: true
  signers: [{keyId: 9999999999999999999999999999999999999999999999999999999999999999}]
  protectedPaths:
    - {group: security, count: 1}
    - {group: developers, count: 2, paths: ["deploy/**/*.yaml"]}
`

var (
	release = strings.Repeat("0", 40)
	c1      = strings.Repeat("1", 40) // alice: main.go
	c2      = strings.Repeat("2", 40) // bob: .github/workflows/ci.yml
	c3      = strings.Repeat("3", 40) // dave: deploy/prod/app.yaml; the source commit
	bot     = Principal{KeyID: strings.Repeat("9", 64)}
	erin    = Principal{KeyID: "eeee" + strings.Repeat("0", 60)}

	commit1 = attest.ReviewCommit{Commit: c1, Author: attest.GitPerson{Name: "Alice", Email: "alice@example.com"}, Files: []string{"main.go"}}
	commit2 = attest.ReviewCommit{Commit: c2, Author: attest.GitPerson{Name: "Bob", Email: "bob@example.com"}, Files: []string{".github/workflows/ci.yml", "README.md"}}
	commit3 = attest.ReviewCommit{Commit: c3, Author: attest.GitPerson{Name: "Dave", Email: "dave@example.com"}, Files: []string{"deploy/prod/app.yaml"}}
)

func loadReviewPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse([]byte(reviewPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reviewEvidence is a build of c3 with no reviews.
func reviewEvidence() *Evidence {
	return &Evidence{
		Artifact: artifact,
		Provenance: []Provenance{{Signature: sig(builder), Facts: attest.ProvenanceFacts{
			BuilderID: "https://custody.dev/builders/local@v1", SourceURI: "git+https://github.com/org/app",
			SourceRef: "refs/heads/main", SourceCommit: c3, FinishedOn: now.Add(-time.Hour),
		}}},
	}
}

// review is a verified review of base..head signed by p.
func review(p Principal, base, baseRef, head string, commits ...attest.ReviewCommit) Review {
	return Review{Signature: sig(p), ReviewPredicate: attest.ReviewPredicate{
		Repo:       "git+https://github.com/org/app.git",
		Range:      attest.ReviewRange{Base: base, BaseRef: baseRef, Head: head},
		Commits:    commits,
		Reviewers:  []string{"someone"},
		ReviewedAt: now.Add(-time.Hour),
	}}
}

func all(p Principal) Review {
	return review(p, release, "refs/tags/v1.0.0", c3, commit1, commit2, commit3)
}

func TestEvaluateReviews(t *testing.T) {
	p := loadReviewPolicy(t)
	tests := []struct {
		name    string
		mutate  func(*Evidence)
		failReq []string
		msgs    []string // substrings of the failure messages, in order
		fix     string   // substring of the first failure's fix
	}{
		{name: "no review", mutate: func(*Evidence) {},
			failReq: []string{ReqReview, "review:security", "review:developers"},
			msgs:    []string{"no counting review attestation of git+https://github.com/org/app includes the artifact's source commit 333333333333"},
			fix:     "custody attest review --key KEY --range vPREV..333333333333"},
		{name: "reviewed by others, protected paths approved", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(alice), all(bob), all(dave)}
		}},
		{name: "authors reviewing their own commits do not count", mutate: func(e *Evidence) {
			e.Reviews = []Review{review(alice, release, "refs/tags/v1.0.0", c3, commit1, commit2, commit3)}
			e.Reviews[0].Commits = []attest.ReviewCommit{commit1, commit2, commit3}
			e.Reviews = append(e.Reviews, review(alice, release, "refs/tags/v1.0.0", c3, commit1))
			e.Reviews[0].Commits[2].Author = attest.GitPerson{Name: "Alice", Email: "ALICE@example.com"}
		},
			failReq: []string{ReqReview, ReqReview, "review:security", "review:developers"},
			msgs: []string{
				"commit 111111111111 by Alice <alice@example.com> has no review by someone other than its author (reviewed only by alice, its author)",
				"commit 333333333333 by Alice <ALICE@example.com> has no review",
				"changes to .github/workflows/ci.yml (commit 222222222222 by Bob <bob@example.com>) need 1 approval(s) from group security; got none",
				"changes to deploy/prod/app.yaml (commit 333333333333 by Alice <ALICE@example.com>) need 2 approval(s) from group developers; got none (alice authored the commit, which does not count)",
			},
			fix: "someone other than Alice <alice@example.com> reviews it"},
		{name: "workflow change without security", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(alice), all(bob)}
		}, failReq: []string{"review:security"},
			msgs: []string{"changes to .github/workflows/ci.yml (commit 222222222222 by Bob <bob@example.com>) need 1 approval(s) from group security; got none"},
			fix:  "1 more of dave, erin (group security) must review commit 222222222222"},
		{name: "a security member who is the author does not count", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(alice), all(bob), all(dave)}
			for i := range e.Reviews {
				e.Reviews[i].Commits[1].Author = attest.GitPerson{Name: "Dave", Email: "dave@example.com"}
			}
		}, failReq: []string{"review:security"},
			msgs: []string{"need 1 approval(s) from group security; got none (dave authored the commit, which does not count)"},
			fix:  "1 more of erin (group security)"},
		{name: "ranges chain back to the release", mutate: func(e *Evidence) {
			e.Reviews = []Review{
				review(bob, c2, "", c3, commit3), review(alice, c2, "", c3, commit3), review(erin, c2, "", c3, commit3),
				review(dave, c1, "", c2, commit2), review(alice, c1, "", c2, commit2),
				review(bob, release, "refs/tags/v1.0.0", c1, commit1),
			}
		}},
		{name: "a gap before the source commit", mutate: func(e *Evidence) {
			e.Reviews = []Review{review(bob, c2, "", c3, commit3), review(alice, c2, "", c3, commit3), review(dave, release, "refs/tags/v1.0.0", c1, commit1)}
		}, failReq: []string{ReqReview, "review:security", "review:developers"},
			msgs: []string{"reviews reach back from source commit 333333333333 only to 222222222222, not to a release (a range base given as a ref matching refs/tags/*) or the root commit"},
			fix:  "custody attest review --key KEY --range vPREV..222222222222"},
		{name: "a branch is not a release", mutate: func(e *Evidence) {
			e.Reviews = []Review{review(bob, release, "refs/heads/main", c3, commit1, commit2, commit3)}
		}, failReq: []string{ReqReview, "review:security", "review:developers"}, msgs: []string{"not to a release"}},
		{name: "a review bot vouches for the reviewers it lists", mutate: func(e *Evidence) {
			r := all(bot)
			r.Reviewers = []string{"bob@example.com", "Alice", "dave@example.com", "someone@else.example"}
			e.Reviews = []Review{r}
		}},
		{name: "anyone else only vouches for themselves", mutate: func(e *Evidence) {
			r := all(alice)
			r.Reviewers = []string{"bob@example.com", "dave@example.com"}
			e.Reviews = []Review{r}
		}, failReq: []string{ReqReview, "review:security", "review:developers"},
			msgs: []string{"commit 111111111111 by Alice <alice@example.com> has no review by someone other than its author"}},
		{name: "a keyless member", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(carol), all(bob), all(erin)}
		}},
		{name: "a signer who is not a member counts for no one", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(builder)}
		}, failReq: []string{ReqReview, "review:security", "review:developers"},
			msgs: []string{"review signed by key 1111111111111111… counts for no one"}},
		{name: "a review of another repository", mutate: func(e *Evidence) {
			r := all(bob)
			r.Repo = "git+https://github.com/evil/app"
			e.Reviews = []Review{r}
		}, failReq: []string{ReqReview, "review:security", "review:developers"},
			msgs: []string{"review by key bbbb000000000000… is of git+https://github.com/evil/app, not the artifact's source git+https://github.com/org/app"}},
		{name: "a review dated in the future", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(alice), all(bob), all(dave)}
			e.Reviews[1].ReviewedAt = now.Add(time.Hour)
			e.Reviews[2].ReviewedAt = now.Add(time.Hour)
		}, failReq: []string{ReqReview, "review:security", "review:developers"}},
		{name: "files not recorded", mutate: func(e *Evidence) {
			e.Reviews = []Review{all(alice), all(bob), all(dave)}
			for i := range e.Reviews {
				e.Reviews[i].Commits = append([]attest.ReviewCommit(nil), e.Reviews[i].Commits...)
				e.Reviews[i].Commits[0].Files = nil
			}
		}, failReq: []string{"review:security", "review:developers"},
			msgs: []string{"the review of commit 111111111111 records no changed files"}},
		{name: "provenance from an untrusted signer names no commit", mutate: func(e *Evidence) {
			e.Provenance[0].Signer = dave
			e.Reviews = []Review{all(alice), all(bob), all(dave)}
		}, failReq: []string{ReqSigner, ReqReview, "review:security", "review:developers"},
			msgs: []string{"", "no provenance from a trusted signer records the source commit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := reviewEvidence()
			tt.mutate(ev)
			d, err := p.Evaluate(context.Background(), ev, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range d.Failures {
				got = append(got, f.Requirement)
				if f.Message == "" || f.Fix == "" {
					t.Errorf("failure %+v lacks a message or fix", f)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.failReq, "|") {
				t.Fatalf("failures %q, want %q: %+v", got, tt.failReq, d.Failures)
			}
			if d.Allowed != (len(tt.failReq) == 0) {
				t.Errorf("Allowed = %v", d.Allowed)
			}
			for i, m := range tt.msgs {
				if !strings.Contains(d.Failures[i].Message, m) {
					t.Errorf("failure %d message %q does not contain %q", i, d.Failures[i].Message, m)
				}
			}
			if tt.fix != "" && !strings.Contains(d.Failures[0].Fix, tt.fix) {
				t.Errorf("fix %q does not contain %q", d.Failures[0].Fix, tt.fix)
			}
		})
	}
}

// requireLog applies to reviews: an unlogged review does not count.
func TestEvaluateReviewsRequireLog(t *testing.T) {
	p, err := Parse([]byte(reviewPolicy + "requireLog: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := reviewEvidence()
	ev.Reviews = []Review{all(alice), all(bob), all(dave)}
	for i := range ev.Reviews {
		ev.Reviews[i].LogVerified = false
	}
	d, err := p.Evaluate(context.Background(), ev, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || !strings.Contains(d.Failures[0].Message, "has no verified transparency log inclusion (requireLog)") {
		t.Errorf("failures %+v", d.Failures)
	}
}

// Many unreviewed commits give a bounded list of failures.
func TestEvaluateReviewsCapped(t *testing.T) {
	p := loadReviewPolicy(t)
	var commits []attest.ReviewCommit
	for i := range 50 {
		c := commit1
		c.Commit = strings.Repeat("0", 38) + string("0123456789"[i/10]) + string("0123456789"[i%10])
		commits = append(commits, c)
	}
	commits = append(commits, commit3)
	ev := reviewEvidence()
	ev.Reviews = []Review{review(alice, release, "refs/tags/v1.0.0", c3, commits...)}
	ev.Reviews[0].Commits[50].Author = attest.GitPerson{Name: "Alice", Email: "alice@example.com"}
	d, err := p.Evaluate(context.Background(), ev, now)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range d.Failures {
		if f.Requirement == ReqReview {
			n++
		}
	}
	if n != maxCommitFailures+1 || !strings.Contains(d.Failures[maxCommitFailures].Message, "and 31 more commit(s)") {
		t.Errorf("%d review failures: %+v", n, d.Failures)
	}
}

// Rego sees the verified reviews.
func TestRegoSeesReviews(t *testing.T) {
	p, err := Parse([]byte(reviewPolicy + `rego: |
  package custody
  deny contains "needs a review" if count(input.reviews) == 0
  deny contains sprintf("review of %s", [r.range.head]) if {
    some r in input.reviews
    some c in r.commits
    c.files[_] == "main.go"
  }
`))
	if err != nil {
		t.Fatal(err)
	}
	ev := reviewEvidence()
	ev.Reviews = []Review{all(alice), all(bob), all(dave)}
	d, err := p.Evaluate(context.Background(), ev, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Failures) != 1 || d.Failures[0].Message != "review of "+c3 {
		t.Errorf("failures %+v", d.Failures)
	}
}

func TestParseReviewsPolicy(t *testing.T) {
	base := strings.SplitN(reviewPolicy, "reviews:", 2)[0]
	for _, tt := range []struct{ name, reviews, err string }{
		{"nothing required", "reviews: {releaseRefs: [refs/tags/v*]}", "reviews requires nothing"},
		{"unknown group", "reviews: {protectedPaths: [{group: ops, count: 1}]}", `names group "ops", which is not in groups`},
		{"count over group size", "reviews: {protectedPaths: [{group: security, count: 3}]}", "needs 3 of group \"security\", which has only 2"},
		{"zero count", "reviews: {protectedPaths: [{group: security, count: 0}]}", "must be at least 1"},
		{"bad glob", "reviews: {protectedPaths: [{group: security, count: 1, paths: [\"a/[\"]}]}", "not a valid glob"},
		{"absolute path", "reviews: {protectedPaths: [{group: security, count: 1, paths: [/etc/x]}]}", "relative to the repository root"},
		{"too many stars", "reviews: {protectedPaths: [{group: security, count: 1, paths: [\"**/a/**/b/**/c/**/d/**\"]}]}", "more than 4"},
		{"bad release glob", "reviews: {everyCommit: true, releaseRefs: [\"refs/[\"]}", "not a valid glob"},
		{"bad signer", "reviews: {everyCommit: true, signers: [{keyId: xyz}]}", "is neither 64 hex digits nor the base64"},
		{"unknown field", "reviews: {everyCommit: true, colour: blue}", "colour"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(base + tt.reviews + "\n"))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
		})
	}
}

func TestMatchPath(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{".github/workflows/**", ".github/workflows/release.yml", true},
		{".github/workflows/**", ".github/workflows/sub/x.yml", true},
		{".github/workflows/**", ".github/workflows", true},
		{".github/workflows/**", ".github/workflowsx/a", false},
		{".github/workflows/**", "x/.github/workflows/a", false},
		{".gitlab-ci.yml", ".gitlab-ci.yml", true},
		{".gitlab-ci.yml", "sub/.gitlab-ci.yml", false},
		{"**/Dockerfile", "Dockerfile", true},
		{"**/Dockerfile", "a/b/Dockerfile", true},
		{"deploy/**/*.yaml", "deploy/prod/app.yaml", true},
		{"deploy/**/*.yaml", "deploy/app.yaml", true},
		{"deploy/**/*.yaml", "deploy/prod/app.json", false},
		{"*.sh", "a/b.sh", false},
	} {
		if got := matchPath(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchPath(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// withParents returns c with its parents recorded.
func withParents(c attest.ReviewCommit, parents ...string) attest.ReviewCommit {
	c.Parents = append([]string{}, parents...)
	return c
}

// A review whose range includes the source commit counts for the commits
// up to it; the commits after it are irrelevant. The chain may also
// continue through a review that lists a base without ending there.
func TestEvaluateReviewsRangeBeyondSource(t *testing.T) {
	p := loadReviewPolicy(t)
	c4 := strings.Repeat("4", 40) // after the source commit c2: alice, a workflow change
	p1, p2, p3 := withParents(commit1, release), withParents(commit2, c1), withParents(commit3, c2)
	p4 := withParents(attest.ReviewCommit{Commit: c4, Author: attest.GitPerson{Name: "Alice", Email: "alice@example.com"}, Files: []string{".github/workflows/x.yml"}}, c3)
	// a side branch: s1 is listed after the source commit but is its
	// ancestor (c2's second parent), so it counts
	s1 := withParents(attest.ReviewCommit{Commit: strings.Repeat("5", 40), Author: attest.GitPerson{Name: "Erin", Email: "erin@example.com"}, Files: []string{"deploy/x.yaml"}}, release)
	merge := withParents(commit2, c1, s1.Commit)
	atC2 := func(e *Evidence) { e.Provenance[0].Facts.SourceCommit = c2 }
	tests := []struct {
		name    string
		mutate  func(*Evidence)
		failReq []string
		msgs    []string
	}{
		{name: "reviewed beyond the source commit: counts up to it", mutate: func(e *Evidence) {
			atC2(e)
			// alice reviewed everything, dave too (security, for the
			// workflow); nobody but alice reviewed c4, which alice
			// wrote, and c3/c4 change protected paths nobody else
			// approved: irrelevant for a build of c2
			r := review(alice, release, "refs/tags/v1.0.0", c4, p1, p2, p3, p4)
			e.Reviews = []Review{r, review(bob, release, "refs/tags/v1.0.0", c4, p1, p2, p3, p4), review(dave, release, "refs/tags/v1.0.0", c2, p1, p2)}
		}},
		{name: "the commits up to the source still need reviews", mutate: func(e *Evidence) {
			atC2(e)
			// alice alone: her commit and the workflow change fail;
			// c3's deploy change (after the source) needs nobody
			e.Reviews = []Review{review(alice, release, "refs/tags/v1.0.0", c4, p1, p2, p3, p4)}
		}, failReq: []string{ReqReview, "review:security"},
			msgs: []string{"commit 111111111111 by Alice <alice@example.com> has no review by someone other than its author", "changes to .github/workflows/ci.yml (commit 222222222222"}},
		{name: "a review without parents counts for all its commits", mutate: func(e *Evidence) {
			atC2(e)
			noParents := review(alice, release, "refs/tags/v1.0.0", c4, p1, p2, p3, p4)
			noParents.Commits = []attest.ReviewCommit{commit1, commit2, commit3, p4}
			noParents.Commits[3].Parents = nil
			e.Reviews = []Review{noParents, review(bob, release, "refs/tags/v1.0.0", c2, p1, p2), review(dave, release, "refs/tags/v1.0.0", c2, p1, p2)}
		}, failReq: []string{ReqReview, "review:security", "review:developers"},
			msgs: []string{"commit 444444444444 by Alice <alice@example.com> has no review by someone other than its author (reviewed only by alice, its author)"}},
		{name: "an ancestor listed after the source commit counts", mutate: func(e *Evidence) {
			atC2(e)
			// s1 changes deploy/x.yaml: 2 developers needed; only alice
			// reviews; c4's workflow change is not an ancestor of c2
			e.Reviews = []Review{review(alice, release, "refs/tags/v1.0.0", c4, p1, merge, s1, p4), review(dave, release, "refs/tags/v1.0.0", c4, p1, merge, s1, p4)}
		}, failReq: []string{"review:developers"},
			msgs: []string{"changes to deploy/x.yaml (commit 555555555555 by Erin <erin@example.com>) need 2 approval(s) from group developers; got alice"}},
		{name: "parents that form a cycle still end", mutate: func(e *Evidence) {
			atC2(e)
			cyc := []attest.ReviewCommit{withParents(commit1, c2), withParents(commit2, c1)}
			e.Reviews = []Review{review(bob, release, "refs/tags/v1.0.0", c2, cyc...), review(alice, release, "refs/tags/v1.0.0", c2, cyc...), review(dave, release, "refs/tags/v1.0.0", c2, cyc...)}
		}},
		{name: "the chain continues through a review that lists the base", mutate: func(e *Evidence) {
			// c3 reviewed alone (base c2); c1..c2 within a review from
			// the release that runs on to c4
			for _, k := range []Principal{bob, alice, erin} {
				e.Reviews = append(e.Reviews, review(k, c2, "", c3, p3))
			}
			e.Reviews = append(e.Reviews,
				review(dave, release, "refs/tags/v1.0.0", c4, p1, p2, p3, p4),
				review(bob, release, "refs/tags/v1.0.0", c4, p1, p2, p3, p4))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := reviewEvidence()
			tt.mutate(ev)
			d, err := p.Evaluate(context.Background(), ev, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range d.Failures {
				got = append(got, f.Requirement)
			}
			if strings.Join(got, "|") != strings.Join(tt.failReq, "|") {
				t.Fatalf("failures %q, want %q: %+v", got, tt.failReq, d.Failures)
			}
			for i, m := range tt.msgs {
				if !strings.Contains(d.Failures[i].Message, m) {
					t.Errorf("failure %d message %q does not contain %q", i, d.Failures[i].Message, m)
				}
			}
		})
	}
}

// A first release: a review from the root commit (range.root) ends the
// chain as a release would; a range without a base that is not marked as
// the root does not.
func TestEvaluateReviewsFromRoot(t *testing.T) {
	p := loadReviewPolicy(t)
	root := func(k Principal) Review {
		r := review(k, "", "", c3, withParents(commit1), withParents(commit2, c1), withParents(commit3, c2))
		r.Range.Root = true
		return r
	}
	ev := reviewEvidence()
	ev.Reviews = []Review{root(alice), root(bob), root(dave)}
	d, err := p.Evaluate(context.Background(), ev, now)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed {
		t.Fatalf("denied: %+v", d.Failures)
	}
	found := false
	for _, c := range d.Passed {
		found = found || strings.Contains(c, "every one of 3 commit(s) from the root commit to source commit 333333333333")
	}
	if !found {
		t.Errorf("passed %q", d.Passed)
	}
	for i := range ev.Reviews {
		ev.Reviews[i].Range.Root = false
	}
	if d, err = p.Evaluate(context.Background(), ev, now); err != nil {
		t.Fatal(err)
	}
	if d.Allowed || !strings.Contains(d.Failures[0].Message, "not to a release") {
		t.Errorf("a base-less range that is not the root: %+v", d.Failures)
	}
}

// Separation of duties: a member who authored a commit the verified
// reviews list up to the source commit never counts toward the artifact's
// approvals; one who authored only a commit after it still does.
func TestApprovalsExcludeReviewedAuthors(t *testing.T) {
	p, err := Parse([]byte(reviewPolicy + "approvals: [{group: developers, count: 2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c4 := strings.Repeat("4", 40)
	commit4 := withParents(attest.ReviewCommit{Commit: c4, Author: attest.GitPerson{Name: "Bob", Email: "bob@example.com"}, Files: []string{"x"}}, c3)
	reviews := func(k Principal) Review {
		return review(k, release, "refs/tags/v1.0.0", c4, withParents(commit1, release), withParents(commit2, c1), withParents(commit3, c2), commit4)
	}
	for _, tt := range []struct {
		name    string
		mutate  func(*Evidence)
		allowed bool
		msg     string
	}{
		{name: "alice authored commit 1: her approval does not count", mutate: func(*Evidence) {},
			msg: "alice's approval does not count: alice authored commit 111111111111 by Alice <alice@example.com>, in the reviewed source (separation of duties)"},
		{name: "matched by a member's email, case ignored", mutate: func(e *Evidence) {
			for i := range e.Reviews {
				e.Reviews[i].Commits[0].Author = attest.GitPerson{Name: "A. Liddell", Email: "ALICE@example.com"}
			}
		}, msg: "alice authored commit 111111111111 by A. Liddell <ALICE@example.com>"},
		{name: "a commit after the source commit does not count against its author", mutate: func(e *Evidence) {
			e.Provenance[0].Facts.SourceCommit = c3
			for i := range e.Reviews {
				e.Reviews[i].Commits[0].Author = attest.GitPerson{Name: "Erin", Email: "erin@example.com"}
			}
		}, allowed: true},
		{name: "a review of another repository says nothing", mutate: func(e *Evidence) {
			for i := range e.Reviews {
				e.Reviews[i].Repo = "git+https://github.com/evil/app"
			}
		}, allowed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := reviewEvidence()
			ev.Reviews = []Review{reviews(alice), reviews(bob), reviews(dave), reviews(erin)}
			ev.Approvals = []Approval{approval(alice, "prod"), approval(bob, "prod"), approval(carol, "prod")}
			tt.mutate(ev)
			d, err := p.Evaluate(context.Background(), ev, now)
			if err != nil {
				t.Fatal(err)
			}
			var approvals []Failure
			for _, f := range d.Failures {
				if f.Requirement == "approval:developers" {
					approvals = append(approvals, f)
				}
			}
			if tt.allowed {
				if len(approvals) != 0 {
					t.Errorf("approvals denied: %+v", approvals)
				}
				return
			}
			if len(approvals) != 1 || !strings.Contains(approvals[0].Message, tt.msg) {
				t.Fatalf("approval failures %+v, want one containing %q", approvals, tt.msg)
			}
			if !strings.Contains(approvals[0].Fix, "group developers has too few members who did not build or author") &&
				strings.Contains(approvals[0].Fix, "alice") {
				t.Errorf("fix %q names alice", approvals[0].Fix)
			}
		})
	}
}

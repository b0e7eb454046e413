package policy

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/verify/match"
)

// commitHex is a full lowercase hex commit (SHA-1 or SHA-256 object format).
var commitHex = lazyre.New(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// Requirement names of review failures: ReqReview for everyCommit,
// "review:" + the group for a protectedPaths rule.
const (
	ReqReview       = "review"
	reqReviewPrefix = "review:"
)

// maxCommitFailures bounds the per-commit failures one requirement lists;
// the rest are summed up in one more.
const maxCommitFailures = 20

// reviewer is a person whose review counts: a group member (by name) or a
// name a reviews signer vouched for.
type reviewer struct {
	who    string          // how messages name them
	member string          // the group member's name, or ""
	ids    map[string]bool // lowercase names, emails and identities
}

// sourceCommit is a commit the artifact was built from, per a trusted
// provenance.
type sourceCommit struct {
	commit, repo string
}

// reviewState is what the usable reviews say about one repository.
type reviewState struct {
	containing map[string][]int // commit -> indexes into usable of the reviews that list it
	usable     []*Review
	reviewers  map[string]map[string]*reviewer // commit -> person -> reviewer
	authors    map[string][]attest.GitPerson   // commit -> authors as recorded
	files      map[string][]string             // commit -> changed paths (nil: not recorded)
	notes      []string
}

// link is one review of a chain and the commit it is used up to: the
// review counts for that commit and the commits of its range it descends
// from.
type link struct {
	review int // index into usable
	upTo   string
}

func newReviewState() *reviewState {
	return &reviewState{
		containing: map[string][]int{},
		reviewers:  map[string]map[string]*reviewer{},
		authors:    map[string][]attest.GitPerson{},
		files:      map[string][]string{},
	}
}

// add makes rv usable, counting for people.
func (st *reviewState) add(rv *Review, people []*reviewer) {
	idx := len(st.usable)
	st.usable = append(st.usable, rv)
	for _, c := range rv.Commits {
		if n := len(st.containing[c.Commit]); n == 0 || st.containing[c.Commit][n-1] != idx {
			st.containing[c.Commit] = append(st.containing[c.Commit], idx)
		}
		if st.reviewers[c.Commit] == nil {
			st.reviewers[c.Commit] = map[string]*reviewer{}
		}
		for _, pe := range people {
			st.reviewers[c.Commit][pe.key()] = pe
		}
		if !containsPerson(st.authors[c.Commit], c.Author) {
			st.authors[c.Commit] = append(st.authors[c.Commit], c.Author)
		}
		if c.Files != nil {
			st.files[c.Commit] = unionStrings(st.files[c.Commit], c.Files)
		}
	}
}

// checkReviews applies p.Reviews to every source commit that a provenance
// from a trusted signer records.
func (p *Policy) checkReviews(d *Decision, ev *Evidence, now time.Time) {
	r := p.Reviews
	if r == nil {
		return
	}
	srcs := p.sourceCommits(ev)
	if len(srcs) == 0 {
		msg := "no provenance from a trusted signer records the source commit, so its review can't be checked"
		fix := "build from a git checkout with a builder that records the source commit (custody build does), signed by a trusted signer"
		if r.EveryCommit {
			d.fail(ReqReview, msg, fix)
		}
		for _, pr := range r.ProtectedPaths {
			d.fail(reqReviewPrefix+pr.Group, msg, fix)
		}
		return
	}
	for _, s := range srcs {
		p.checkReviewsOf(d, ev, s, now)
	}
}

// sourceCommits returns the source commits that provenance from a trusted
// signer records, sorted, each once.
func (p *Policy) sourceCommits(ev *Evidence) []sourceCommit {
	var srcs []sourceCommit
	seen := map[sourceCommit]bool{}
	for _, pv := range ev.Provenance {
		s := sourceCommit{commit: strings.ToLower(pv.Facts.SourceCommit), repo: pv.Facts.SourceURI}
		if !p.trustedSigner(pv.Signature) || !commitHex.MatchString(s.commit) || seen[s] {
			continue
		}
		seen[s] = true
		srcs = append(srcs, s)
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].commit < srcs[j].commit })
	return srcs
}

func (p *Policy) checkReviewsOf(d *Decision, ev *Evidence, src sourceCommit, now time.Time) {
	r := p.Reviews
	st := p.reviewState(ev, src, now)
	chain, reached := st.chain(src.commit, r.releaseRefs())
	if chain == nil {
		msg, fix := st.gapMessage(src, reached, r.releaseRefs())
		if r.EveryCommit {
			d.fail(ReqReview, msg, fix)
		}
		for _, pr := range r.ProtectedPaths {
			d.fail(reqReviewPrefix+pr.Group, fmt.Sprintf("can't tell which changes need approval from group %s: %s", pr.Group, msg), fix)
		}
		return
	}
	commits := st.commitsOf(chain)
	first := st.usable[chain[len(chain)-1].review].Range
	from := fmt.Sprintf("release %s (%s)", first.BaseRef, short12(first.Base))
	if first.Root {
		from = "the root commit"
	}
	if r.EveryCommit {
		var fails []Failure
		for _, c := range commits {
			authors := st.authors[c]
			var others, selves []string
			for _, rv := range sortedReviewers(st.reviewers[c]) {
				if rv.authored(authors) {
					selves = append(selves, rv.who)
				} else {
					others = append(others, rv.who)
				}
			}
			if len(others) > 0 {
				continue
			}
			msg := fmt.Sprintf("commit %s by %s has no review by someone other than its author", short12(c), people(authors))
			if len(selves) > 0 {
				msg += fmt.Sprintf(" (reviewed only by %s, its author)", strings.Join(selves, ", "))
			}
			fails = append(fails, Failure{Requirement: ReqReview, Message: msg,
				Fix: fmt.Sprintf("someone other than %s reviews it and signs a review attestation: custody attest review --key KEY --range BASE..%s --reviewer NAME (signed by a group member, or by one of reviews.signers)", people(authors), short12(src.commit))})
		}
		if len(fails) == 0 {
			d.pass("every one of %d commit(s) from %s to source commit %s reviewed by someone other than its author", len(commits), from, short12(src.commit))
		}
		d.failCapped(fails)
	}
	for _, pr := range r.ProtectedPaths {
		p.checkPathRule(d, st, pr, commits, src)
	}
}

func (p *Policy) checkPathRule(d *Decision, st *reviewState, pr PathRule, commits []string, src sourceCommit) {
	req := reqReviewPrefix + pr.Group
	var fails []Failure
	touched := 0
	for _, c := range commits {
		files := st.files[c]
		if files == nil {
			fails = append(fails, Failure{Requirement: req,
				Message: fmt.Sprintf("the review of commit %s records no changed files, so changes to protected paths can't be ruled out", short12(c)),
				Fix:     "attest the review again with a custody that records each commit's files (custody attest review)"})
			continue
		}
		var hit []string
		for _, f := range files {
			for _, g := range pr.paths() {
				if matchPath(g, f) {
					hit = append(hit, f)
					break
				}
			}
		}
		if len(hit) == 0 {
			continue
		}
		touched++
		authors := st.authors[c]
		got := map[string]bool{}
		var authorsToo []string
		for _, rv := range sortedReviewers(st.reviewers[c]) {
			if rv.member == "" || p.members[pr.Group][rv.member] == nil {
				continue
			}
			if rv.authored(authors) {
				authorsToo = append(authorsToo, rv.member)
				continue
			}
			got[rv.member] = true
		}
		if len(got) >= pr.Count {
			continue
		}
		have := "none"
		if len(got) > 0 {
			have = strings.Join(sortedKeys(got), ", ")
		}
		msg := fmt.Sprintf("changes to %s (commit %s by %s) need %d approval(s) from group %s; got %s",
			shortList(hit, 5), short12(c), people(authors), pr.Count, pr.Group, have)
		if len(authorsToo) > 0 {
			msg += fmt.Sprintf(" (%s authored the commit, which does not count)", strings.Join(authorsToo, ", "))
		}
		var can []string
		for _, name := range sortedMemberNames(p.members[pr.Group]) {
			if !got[name] && !p.memberAuthored(name, authors) {
				can = append(can, name)
			}
		}
		fix := fmt.Sprintf("%d more of %s (group %s) must review commit %s and sign the review attestation themselves (or be named in one a reviews signer signed)",
			pr.Count-len(got), orNone(strings.Join(can, ", ")), pr.Group, short12(c))
		if len(can) < pr.Count-len(got) {
			fix = fmt.Sprintf("group %s has too few members who did not author commit %s; add reviewers to the group", pr.Group, short12(c))
		}
		fails = append(fails, Failure{Requirement: req, Message: msg, Fix: fix})
	}
	if len(fails) == 0 {
		if touched == 0 {
			d.pass("no reviewed commit up to %s changes paths protected for group %s", short12(src.commit), pr.Group)
		} else {
			d.pass("%d commit(s) up to %s change paths protected for group %s, each approved by %d of its members", touched, short12(src.commit), pr.Group, pr.Count)
		}
	}
	d.failCapped(fails)
}

// failCapped adds fails, at most maxCommitFailures of them and then one
// that counts the rest.
func (d *Decision) failCapped(fails []Failure) {
	if len(fails) <= maxCommitFailures {
		d.Failures = append(d.Failures, fails...)
		return
	}
	d.Failures = append(d.Failures, fails[:maxCommitFailures]...)
	last := fails[len(fails)-1]
	d.fail(last.Requirement, fmt.Sprintf("and %d more commit(s) like the above", len(fails)-maxCommitFailures), last.Fix)
}

// reviewState keeps the reviews that count for src: about its repository,
// not dated in the future, meeting the log and timestamp requirements and
// with at least one reviewer who counts.
func (p *Policy) reviewState(ev *Evidence, src sourceCommit, now time.Time) *reviewState {
	st := newReviewState()
	noted := map[string]bool{}
	note := func(s string) {
		if !noted[s] {
			noted[s] = true
			st.notes = append(st.notes, s)
		}
	}
	for i := range ev.Reviews {
		rv := &ev.Reviews[i]
		switch {
		case src.repo == "" || !match.Source(rv.Repo, src.repo):
			note(fmt.Sprintf("review by %s is of %s, not the artifact's source %s", rv.Signer, rv.Repo, orNone(src.repo)))
			continue
		case rv.ReviewedAt.After(now.Add(clockSkew)):
			note(fmt.Sprintf("review by %s is dated in the future (%s)", rv.Signer, rv.ReviewedAt.UTC().Format(time.RFC3339)))
			continue
		case p.RequireLog && !rv.LogVerified:
			note(fmt.Sprintf("review by %s has no verified transparency log inclusion (requireLog)", rv.Signer))
			continue
		case p.RequireTimestamp && (!rv.TimestampVerified || rv.SignedAt.IsZero()):
			note(fmt.Sprintf("review by %s has no verified signing time (requireTimestamp)", rv.Signer))
			continue
		}
		people := p.reviewersOf(rv)
		if len(people) == 0 {
			note(fmt.Sprintf("review signed by %s counts for no one: the signer is neither a member of a group nor one of reviews.signers", rv.Signer))
			continue
		}
		st.add(rv, people)
	}
	return st
}

// chain finds the shortest sequence of usable reviews that links head
// to a range starting at a release ref or at the root, newest first: the
// first review lists head, each next one lists the base of the one before
// (a review counts up to that commit; commits of its range after it are
// irrelevant). When there is none it returns the commits the reviews
// reach back to.
func (st *reviewState) chain(head string, releases []string) (chain []link, reached []string) {
	type step struct {
		commit string
		via    link // the review that led here; review -1 at head
		prev   int  // index into steps
	}
	steps := []step{{commit: head, via: link{review: -1}, prev: -1}}
	visited := map[string]bool{head: true}
	for i := 0; i < len(steps); i++ {
		cur := steps[i]
		rs := st.containing[cur.commit]
		if len(rs) == 0 && i > 0 {
			reached = append(reached, cur.commit)
		}
		for _, ri := range rs {
			rg := st.usable[ri].Range
			if rg.Root || (isRelease(rg.BaseRef, releases) && rg.Base != "") {
				chain = []link{{review: ri, upTo: cur.commit}}
				for s := i; steps[s].via.review >= 0; s = steps[s].prev {
					chain = append([]link{steps[s].via}, chain...)
				}
				return chain, nil
			}
			if rg.Base == "" || visited[rg.Base] {
				continue
			}
			visited[rg.Base] = true
			steps = append(steps, step{commit: rg.Base, via: link{review: ri, upTo: cur.commit}, prev: i})
		}
	}
	sort.Strings(reached)
	return nil, reached
}

// upTo returns the commits of review ri that count for commit c, in the
// review's order: c and the commits of the range it descends from. A
// review that does not record every commit's parents counts for all its
// commits (more to check, never fewer).
func (st *reviewState) upTo(ri int, c string) []string {
	keep := map[string]bool{}
	st.walk(ri, st.parentsOf(ri), c, keep)
	var out []string
	for _, rc := range st.usable[ri].Commits {
		if keep[rc.Commit] {
			out = append(out, rc.Commit)
			delete(keep, rc.Commit)
		}
	}
	return out
}

// parentsOf returns the parents review ri records for each of its
// commits, or nil when it does not record them all.
func (st *reviewState) parentsOf(ri int) map[string][]string {
	parents := map[string][]string{}
	for _, rc := range st.usable[ri].Commits {
		if rc.Parents == nil {
			return nil
		}
		parents[rc.Commit] = rc.Parents
	}
	return parents
}

// walk adds to keep the commits of review ri that c is or descends from
// (every commit when parents is nil), not walking again from commits
// already in keep, and returns the ones it added.
func (st *reviewState) walk(ri int, parents map[string][]string, c string, keep map[string]bool) (added []string) {
	if parents == nil {
		for _, rc := range st.usable[ri].Commits {
			if !keep[rc.Commit] {
				keep[rc.Commit] = true
				added = append(added, rc.Commit)
			}
		}
		return added
	}
	// A parent outside the list is reachable from the range's base.
	for todo := []string{c}; len(todo) > 0; {
		x := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if _, listed := parents[x]; !listed || keep[x] {
			continue
		}
		keep[x] = true
		added = append(added, x)
		todo = append(todo, parents[x]...)
	}
	return added
}

func isRelease(ref string, globs []string) bool {
	if ref == "" {
		return false
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, ref); ok {
			return true
		}
	}
	return false
}

func (st *reviewState) gapMessage(src sourceCommit, reached []string, releases []string) (msg, fix string) {
	rel := strings.Join(releases, ", ")
	if len(st.containing[src.commit]) == 0 {
		msg = fmt.Sprintf("no counting review attestation of %s includes the artifact's source commit %s", orNone(src.repo), short12(src.commit))
		fix = fmt.Sprintf("review the commits from the previous release to %s and attest it: custody attest review --key KEY --range vPREV..%s --reviewer NAME, then supply the bundle (or push it with --server)", short12(src.commit), short12(src.commit))
	} else {
		var ends []string
		for _, c := range reached {
			ends = append(ends, short12(c))
		}
		if len(ends) == 0 {
			ends = []string{"a range whose base is not a release"}
		}
		msg = fmt.Sprintf("reviews reach back from source commit %s only to %s, not to a release (a range base given as a ref matching %s) or the root commit", short12(src.commit), strings.Join(ends, ", "), rel)
		fix = fmt.Sprintf("attest a review of the commits from the previous release tag to %s: custody attest review --key KEY --range vPREV..%s --reviewer NAME (--from-root --range %s for a first release)", ends[0], ends[0], ends[0])
	}
	if len(st.notes) > 0 {
		msg += "; " + strings.Join(st.notes, "; ")
	}
	return msg, fix
}

// commitsOf returns the commits the chain's reviews count for, oldest
// range first, each once.
func (st *reviewState) commitsOf(chain []link) []string {
	var out []string
	seen := map[string]bool{}
	for i := len(chain) - 1; i >= 0; i-- {
		for _, c := range st.upTo(chain[i].review, chain[i].upTo) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// reviewersOf returns who a review counts for: the group member who signed
// it, and, when a reviews signer signed it, every reviewer it lists.
func (p *Policy) reviewersOf(rv *Review) []*reviewer {
	var out []*reviewer
	seen := map[string]bool{}
	add := func(r *reviewer) {
		if !seen[r.key()] {
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	for _, g := range sortedGroupNames(p.members) {
		for _, name := range sortedMemberNames(p.members[g]) {
			if p.members[g][name].holds(rv.Signer) {
				add(p.memberReviewer(name))
			}
		}
	}
	vouched := false
	for _, s := range p.Reviews.Signers {
		vouched = vouched || (s == rv.Signer && (s.KeyID != "" || s.Identity != ""))
	}
	if vouched {
		for _, name := range rv.Reviewers {
			if m := p.memberNamed(name); m != "" {
				add(p.memberReviewer(m))
				continue
			}
			add(&reviewer{who: name, ids: map[string]bool{strings.ToLower(strings.TrimSpace(name)): true}})
		}
	}
	return out
}

func (r *reviewer) key() string {
	if r.member != "" {
		return "member:" + r.member
	}
	return "name:" + strings.ToLower(strings.TrimSpace(r.who))
}

// authored reports whether the reviewer is one of the commit's authors, by
// name or email (case-insensitive).
func (r *reviewer) authored(authors []attest.GitPerson) bool {
	for _, a := range authors {
		for _, v := range []string{a.Email, a.Name} {
			if v = strings.ToLower(strings.TrimSpace(v)); v != "" && r.ids[v] {
				return true
			}
		}
	}
	return false
}

func (p *Policy) memberAuthored(name string, authors []attest.GitPerson) bool {
	return p.memberReviewer(name).authored(authors)
}

// memberReviewer is the group member called name, known by their name,
// emails and certificate identities in every group.
func (p *Policy) memberReviewer(name string) *reviewer {
	r := &reviewer{who: name, member: name, ids: map[string]bool{strings.ToLower(name): true}}
	for _, ms := range p.members {
		m := ms[name]
		if m == nil {
			continue
		}
		for _, e := range m.Emails {
			r.ids[strings.ToLower(strings.TrimSpace(e))] = true
		}
		for _, id := range m.Identities {
			r.ids[strings.ToLower(id.Identity)] = true
		}
	}
	return r
}

// memberNamed returns the member a reviewer name denotes: by member name,
// email or certificate identity, case-insensitive; "" for none.
func (p *Policy) memberNamed(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, g := range sortedGroupNames(p.members) {
		for _, name := range sortedMemberNames(p.members[g]) {
			if p.memberReviewer(name).ids[s] {
				return name
			}
		}
	}
	return ""
}

func sortedGroupNames(m map[string]map[string]*Member) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedReviewers(m map[string]*reviewer) []*reviewer {
	out := make([]*reviewer, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

func containsPerson(ps []attest.GitPerson, p attest.GitPerson) bool {
	for _, x := range ps {
		if strings.EqualFold(x.Email, p.Email) && x.Name == p.Name {
			return true
		}
	}
	return false
}

func unionStrings(a, b []string) []string {
	if a == nil {
		a = []string{}
	}
	seen := map[string]bool{}
	for _, s := range a {
		seen[s] = true
	}
	for _, s := range b {
		if !seen[s] {
			seen[s] = true
			a = append(a, s)
		}
	}
	return a
}

func people(ps []attest.GitPerson) string {
	if len(ps) == 0 {
		return "an unknown author"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, " and ")
}

func short12(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func shortList(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(s[:n], ", "), len(s)-n)
}

// covered returns every commit that the reviews count for when followed
// back from head through the bases of their ranges, without choosing one
// chain: each review that lists a commit reached counts up to it, and a
// range that starts at a release or the root is not followed further. Each
// review's commits are walked at most once, however often it is reached.
func (st *reviewState) covered(head string, releases []string) []string {
	var out []string
	seen := map[string]bool{}
	keep := map[int]map[string]bool{}
	parents := map[int]map[string][]string{}
	visited := map[string]bool{head: true}
	for todo := []string{head}; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		for _, ri := range st.containing[c] {
			if keep[ri] == nil {
				keep[ri], parents[ri] = map[string]bool{}, st.parentsOf(ri)
			}
			for _, x := range st.walk(ri, parents[ri], c, keep[ri]) {
				if !seen[x] {
					seen[x] = true
					out = append(out, x)
				}
			}
			rg := st.usable[ri].Range
			if rg.Root || rg.Base == "" || isRelease(rg.BaseRef, releases) || visited[rg.Base] {
				continue
			}
			visited[rg.Base] = true
			todo = append(todo, rg.Base)
		}
	}
	return out
}

// reviewedAuthors returns who authored the source change per the verified
// reviews: for each source commit of trusted provenance, the authors of
// the commits that reviews of its repository (any verified review, not
// dated in the future: a review can only take approvals away here) count
// for, from the source commit back to a release or the root. Keys are
// lowercase author names and emails, values the first such commit
// ("commit 3f1c0a9e2b7d by Alice <alice@example.com>").
func (p *Policy) reviewedAuthors(ev *Evidence, now time.Time) map[string]string {
	if len(ev.Reviews) == 0 {
		return nil
	}
	releases := (&Reviews{}).releaseRefs()
	if p.Reviews != nil {
		releases = p.Reviews.releaseRefs()
	}
	out := map[string]string{}
	for _, src := range p.sourceCommits(ev) {
		st := newReviewState()
		for i := range ev.Reviews {
			rv := &ev.Reviews[i]
			if src.repo == "" || !match.Source(rv.Repo, src.repo) || rv.ReviewedAt.After(now.Add(clockSkew)) {
				continue
			}
			st.add(rv, nil)
		}
		for _, c := range st.covered(src.commit, releases) {
			for _, a := range st.authors[c] {
				for _, v := range []string{a.Email, a.Name} {
					if v = strings.ToLower(strings.TrimSpace(v)); v != "" && out[v] == "" {
						out[v] = fmt.Sprintf("commit %s by %s", short12(c), a)
					}
				}
			}
		}
	}
	return out
}

// authoredReviewed returns the commit of reviewed (from reviewedAuthors)
// that the member called name authored, by their name, one of their emails
// or certificate identities, or "".
func (p *Policy) authoredReviewed(name string, reviewed map[string]string) string {
	if len(reviewed) == 0 {
		return ""
	}
	ids := p.memberReviewer(name).ids
	for _, id := range sortedKeys(ids) {
		if c := reviewed[id]; c != "" {
			return c
		}
	}
	return ""
}

package dashboard_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// chromium returns Debian's chromium, or skips the test when it is absent
// (scripts/test installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("chromium is not installed (scripts/test installs Debian's chromium)")
	return ""
}

// artifactsDir is where screenshots are kept: $CUSTODY_ARTIFACTS_DIR, or a
// test temporary directory.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("CUSTODY_ARTIFACTS_DIR"); d != "" {
		d = filepath.Join(d, "dashboard")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func TestBrowser(t *testing.T) {
	exe := chromium(t)
	s := seed(t)
	shots := artifactsDir(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	value := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	count := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return n
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".jpg"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		return value("text of "+sel, chromedp.Text(sel))
	}
	// noInjection asserts that no injected element exists in the DOM and
	// that the injected markup is visible as text.
	noInjection := func(page string) {
		t.Helper()
		if n := count(`document.querySelectorAll('[id^="inj-"], script, img, main svg[onload]').length`); n != 0 {
			t.Errorf("%s: %d injected elements in the DOM", page, n)
		}
		if value("title", chromedp.Title()) == "pwned" {
			t.Errorf("%s: injected script ran", page)
		}
	}

	// headersWhole asserts that no one-word table header is broken inside
	// the word ("B y", "Decisio n"): its text lies on a single line.
	headersWhole := func(page string) {
		t.Helper()
		broken := value("broken headers", chromedp.Evaluate[string](`[...document.querySelectorAll('th')].filter(th => {
			const t = th.textContent.trim();
			if (t === '' || /\s/.test(t)) return false;
			const r = document.createRange(); r.selectNodeContents(th);
			return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size > 1;
		}).map(th => th.textContent.trim()).join(', ')`))
		if broken != "" {
			t.Errorf("%s: table headers broken inside a word: %s", page, broken)
		}
	}

	// Not signed in: the login form; an auditor token signs in.
	run("login", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible("#token"))
	shot("login")
	run("sign in", chromedp.SendKeys("#token", s.auditor), chromedp.Submit("#token"),
		chromedp.WaitVisible("#env-prod"))

	// Environments: what runs, since when, by whom, status, history with
	// the rollback marked.
	prod := text("#env-prod")
	// Green: prod's evidence (signed, logged and timestamped by the server)
	// verifies now and passes its policy.
	for _, w := range []string{"release-bot", "rolled back", "healthy", "verified", evilActor, evilMessage} {
		if !strings.Contains(prod, w) {
			t.Errorf("prod environment: missing %q in\n%s", w, prod)
		}
	}
	if st := text("#env-staging h2"); !strings.Contains(st, "not checked") {
		t.Errorf("staging without a policy shows %q, want not checked", st)
	}
	// prod's artifact has a red flag the server's audit key signed, which
	// an approval by a release manager cleared.
	if rf := text("#env-prod dl.redflags"); !strings.Contains(rf, "new-dependency") || !strings.Contains(rf, evilFlag) {
		t.Errorf("prod red flags: %q", rf)
	}
	noInjection("environments")
	shot("environments")

	// Click environment → artifact → evidence.
	run("open artifact", chromedp.Click("#env-prod a.artifact-link"), chromedp.WaitVisible("ol.chain"))
	chain := text("ol.chain")
	for _, w := range []string{commit, builderID, "example.com/org/app", "approval", "rolled back", "signature", evilApprover} {
		if !strings.Contains(chain, w) {
			t.Errorf("artifact chain: missing %q", w)
		}
	}
	if h := text("main h1"); !strings.Contains(h, s.good[:19]) {
		t.Errorf("artifact page for %q, want %s", h, s.good)
	}
	// Red flags: the audit key's statement counts, with its flag and the
	// dependency diff since the last release; the approver's does not.
	if n := count(`document.querySelectorAll('section.redflags[data-counted="true"] li.flag[data-kind="new-dependency"]').length`); n != 1 {
		t.Errorf("artifact: %d counted new-dependency flags, want 1", n)
	}
	if n := count(`document.querySelectorAll('section.redflags[data-counted="false"]').length`); n != 1 {
		t.Errorf("artifact: %d red flags statements not counted, want 1 (the approver's)", n)
	}
	diff := text(`section.redflags[data-counted="true"] pre.diff`)
	for _, w := range []string{"+ " + evilDep + " v1.0.0", "~ golang.org/x/mod v0.20.0 → v0.21.0", "- example.com/old v0.1.0"} {
		if !strings.Contains(diff, w) {
			t.Errorf("red flags diff: missing %q in\n%s", w, diff)
		}
	}
	if n := count(`document.querySelectorAll('pre.diff .diff-add, pre.diff .diff-del, pre.diff .diff-chg').length`); n != 6 {
		t.Errorf("red flags diff: %d classed lines, want 6 (3 per statement)", n)
	}
	if c := text("section.decision li.cleared"); !strings.Contains(c, "redflag:new-dependency by approval") {
		t.Errorf("prod decision: the cleared red flag is not shown: %q", c)
	}
	noInjection("artifact")
	shot("artifact")
	run("open evidence", chromedp.Click("a.evidence-link"), chromedp.WaitVisible("ul.checks"))
	ev := text("main")
	for _, w := range []string{"Predicate type", "Bundle SHA-256", "signature", "Statement"} {
		if !strings.Contains(ev, w) {
			t.Errorf("evidence page: missing %q", w)
		}
	}
	noInjection("evidence")
	shot("evidence")

	// Search by commit finds both builds.
	run("search", chromedp.Navigate(s.url+"/ui/search"), chromedp.WaitVisible("#q"),
		chromedp.SendKeys("#q", commit), chromedp.Submit("#q"),
		chromedp.WaitVisible("table.results"))
	if rows := count(`document.querySelectorAll('table.results tbody tr').length`); rows != 2 {
		t.Errorf("search by commit: %d results, want 2", rows)
	}
	noInjection("search")
	shot("search")

	// Incidents: click there from the navigation; the open incident first,
	// with what was compromised since when, found, quarantined and rolled
	// back, with times; the closed one after it.
	run("open incidents", chromedp.Click(`nav a[href="/ui/incidents"]`), chromedp.WaitVisible("section.incident"))
	if first := value("first incident", chromedp.Evaluate[string](`document.querySelector('section.incident').id`)); first != s.open {
		t.Errorf("first incident is %q, want the open one %s", first, s.open)
	}
	open := text("#" + s.open)
	for _, w := range []string{"open", "builder " + builderID + " since", evilResponder, evilDetail,
		"Time to detect", openDetect.String(), "Time to contain", openContain.String(),
		"1 affected artifact(s)", s.bad[:19], "Quarantined (blocked)", "rolled back", s.good[:19], "staging",
		"not-attempted", "canary", "still open"} {
		if !strings.Contains(open, w) {
			t.Errorf("open incident: missing %q in\n%s", w, open)
		}
	}
	if st := text("#" + s.closed + " h2 .status"); st != "closed" {
		t.Errorf("earlier incident shows %q, want closed", st)
	}
	if n := count(`document.querySelectorAll('table.rollbacks tbody tr').length`); n != 2 {
		t.Errorf("rollbacks table: %d rows, want 2 (staging rolled back, canary not attempted)", n)
	}
	if figs := text("#incident-figures"); !strings.Contains(figs, ((openDetect+closedDetect)/2).String()) || !strings.Contains(figs, openContain.String()) {
		t.Errorf("incident figures: %s", figs)
	}
	noInjection("incidents")
	shot("incidents")
	// The quarantined artifact links to its page, which says so.
	run("open quarantined artifact", chromedp.Click("#"+s.open+" table.quarantined a.artifact-link"), chromedp.WaitVisible("p.quarantine"))
	if b := text("p.quarantine"); !strings.Contains(b, "Quarantined by incident "+s.open) || !strings.Contains(b, evilDetail) {
		t.Errorf("quarantine banner: %q", b)
	}
	// Its names are the names its evidence gives it, not the incident ID
	// the server's quarantine audit entry names its subject by.
	if names := text("dd.names"); !strings.Contains(names, "dist/app") || strings.Contains(names, s.open) {
		t.Errorf("artifact names: %q; want dist/app and not the incident %s", names, s.open)
	}
	// Every deployment row says who: the actor, else the token that
	// recorded it.
	if n := count(`[...document.querySelectorAll('table.history tbody tr')].filter(r => r.cells.length > 4 && r.cells[4].textContent.trim() === '').length`); n != 0 {
		t.Errorf("artifact deployments: %d rows with an empty By column", n)
	}
	headersWhole("quarantined artifact")
	noInjection("quarantined artifact")
	shot("artifact-quarantined")

	for _, p := range []struct{ path, sel, want string }{
		{"/ui/log", "main", "Consistency with history"},
		{"/ui/metrics", "main", "Mean time to contain"},
	} {
		run("open "+p.path, chromedp.Navigate(s.url+p.path), chromedp.WaitVisible(p.sel))
		if got := text(p.sel); !strings.Contains(got, p.want) {
			t.Errorf("%s: missing %q", p.path, p.want)
		}
		noInjection(p.path)
		shot(strings.TrimPrefix(p.path, "/ui/"))
	}
	run("back to metrics", chromedp.Navigate(s.url+"/ui/metrics"), chromedp.WaitVisible("main"))
	if svgs := count(`document.querySelectorAll('figure.chart svg').length`); svgs == 0 {
		t.Error("metrics: no chart drawn")
	}

	// A phone-sized viewport: the page must not scroll sideways.
	run("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible("#env-prod"))
	if count(`document.documentElement.scrollWidth > window.innerWidth + 1 ? 1 : 0`) != 0 {
		t.Error("environments page scrolls sideways on a phone")
	}
	headersWhole("environments on a phone")
	if n := count(`[...document.querySelectorAll('table.history tbody tr')].filter(r => r.cells[4].textContent.trim() === '').length`); n != 0 {
		t.Errorf("environments: %d history rows with an empty By column", n)
	}
	shot("environments-phone")
	run("phone incidents", chromedp.Navigate(s.url+"/ui/incidents"), chromedp.WaitVisible("section.incident"))
	if count(`document.documentElement.scrollWidth > window.innerWidth + 1 ? 1 : 0`) != 0 {
		t.Error("incidents page scrolls sideways on a phone")
	}
	shot("incidents-phone")

	// Sign out: back at the form, and the dashboard needs a new sign-in.
	run("sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#token"))
	run("signed out", chromedp.Navigate(s.url+"/ui/incidents"), chromedp.WaitVisible("#token"))
	if n := count(`document.querySelectorAll('section.incident').length`); n != 0 {
		t.Error("incidents shown after signing out")
	}
	t.Logf("screenshots in %s", shots)
}

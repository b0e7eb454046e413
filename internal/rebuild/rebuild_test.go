package rebuild

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
)

func TestCloneURL(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "git+https://github.com/org/repo", want: "https://github.com/org/repo"},
		{in: "git+file:///srv/git/repo", want: "file:///srv/git/repo"},
		{in: "file:///srv/git/repo", want: "file:///srv/git/repo"},
		{in: "/srv/git/repo", want: "/srv/git/repo"},
		{in: "git+ssh://git@host/org/repo", want: "ssh://git@host/org/repo"},
		{in: "", err: "no source URI"},
		{in: "git+ext::sh -c evil", err: "scheme \"ext\""},
		{in: "git+ftp://host/repo", err: "scheme \"ftp\""},
		{in: "git+https://user:pw@host/repo", err: "credentials"},
		{in: "git+file://evil.example/repo", err: "remote host"},
		{in: "relative/path", err: "scheme \"\""},
		{in: "-uhttps://x", err: "not a URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CloneURL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("CloneURL(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CloneURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func provenance(t *testing.T, ext attest.CustodyExternalParameters, in attest.CustodyInternalParameters) *attest.Statement {
	t.Helper()
	st, err := attest.NewStatement([]attest.Subject{{Name: "out.txt", Digest: map[string]string{"sha256": strings.Repeat("a", 64)}}},
		attest.PredicateSLSAv1, attest.ProvenanceV1{
			BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody, ExternalParameters: ext, InternalParameters: in},
			RunDetails:      attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/local@v1"}, Metadata: &attest.BuildMetadata{InvocationID: "id-1"}},
		})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestNewPlanRefuses(t *testing.T) {
	commit := strings.Repeat("c", 40)
	ok := attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: "sub", Source: attest.CustodySource{URI: "git+file:///r", Commit: commit}}
	for _, tc := range []struct {
		name   string
		mutate func(*attest.CustodyExternalParameters)
		want   string
	}{
		{"dirty", func(e *attest.CustodyExternalParameters) { e.Source.Dirty = true }, "uncommitted"},
		{"no commit", func(e *attest.CustodyExternalParameters) { e.Source.Commit = "" }, "no source commit"},
		{"no command", func(e *attest.CustodyExternalParameters) { e.Command = nil }, "no command"},
		{"escaping dir", func(e *attest.CustodyExternalParameters) { e.WorkingDir = "../x" }, "not inside"},
		{"absolute dir", func(e *attest.CustodyExternalParameters) { e.WorkingDir = "/tmp/x" }, "not inside"},
		{"redacted argument", func(e *attest.CustodyExternalParameters) {
			e.Command = []string{"curl", "-H", "Authorization: Bearer " + attest.Redacted}
		}, "argument 2 of the recorded command was redacted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := ok
			tc.mutate(&ext)
			_, err := NewPlan(provenance(t, ext, attest.CustodyInternalParameters{}))
			if !errors.Is(err, ErrNotReplayable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewPlan: %v, want ErrNotReplayable containing %q", err, tc.want)
			}
		})
	}
	p, err := NewPlan(provenance(t, ok, attest.CustodyInternalParameters{Toolchains: map[string]string{"go": "go version x"}}))
	if err != nil {
		t.Fatal(err)
	}
	if p.WorkingDir != "sub" || p.SourceCommit != commit || p.BuildID != "id-1" || p.Toolchains["go"] != "go version x" {
		t.Fatalf("plan %+v", p)
	}
}

func TestReplayCommand(t *testing.T) {
	recorded := map[string]string{
		"PATH": "/x", "HOME": "/h", "API_TOKEN": attest.Redacted, "GOOS": "linux", "SOURCE_DATE_EPOCH": "1",
		// the builder's cache locations are not replayed: a rebuild
		// uses no cache unless the rebuilder passes its own (--env GOCACHE)
		"GOCACHE": "/builder/.cache/go-build", "GOMODCACHE": "/builder/go/pkg/mod", "GOPATH": "/builder/go", "XDG_CACHE_HOME": "/builder/.cache",
	}
	assign, refused := replayEnv(recorded, nil, func(string) bool { return false })
	got, err := replayCommand([]string{"make", "all"}, assign)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(got[1:], " "); s != "GOOS=linux SOURCE_DATE_EPOCH=1 make all" || len(refused) != 0 {
		t.Fatalf("replayCommand = %q, refused %q", got, refused)
	}
	got, _ = replayCommand([]string{"make"}, nil)
	if len(got) != 1 || got[0] != "make" {
		t.Fatalf("replayCommand without environment = %q", got)
	}
}

// TestReplayEnvRefuses: issue 18 item 6. A recorded variable off the
// replay allow-list, or an allow-listed one whose value makes a tool run
// another program, is refused and named (never its value), unless the
// rebuilder names it with --env.
func TestReplayEnvRefuses(t *testing.T) {
	recorded := map[string]string{
		"LD_PRELOAD": "/tmp/evil.so", "BASH_ENV": "/tmp/evil.sh", "NODE_OPTIONS": "--require /tmp/evil.js",
		"GIT_CONFIG_GLOBAL": "/tmp/evil.gitconfig", "GIT_CONFIG_COUNT": "1", "PYTHONPATH": "/tmp",
		"GOFLAGS": "-trimpath -toolexec=/tmp/evil", "CC": "/tmp/evil-cc", "CGO_LDFLAGS": "-B/tmp/evil",
		"RUSTFLAGS": "-C linker=/tmp/evil", "GOTOOLCHAIN": "go1.99.0+auto; rm -rf /", "SOURCE_DATE_EPOCH": "1\nX=1",
		"GOARCH": "amd64", "CGO_ENABLED": "0", "LANG": "C.UTF-8",
		// custody build redacted a secret inside it: not replayable
		"GOEXPERIMENT": "x,token=" + attest.Redacted,
	}
	assign, refused := replayEnv(recorded, nil, func(string) bool { return false })
	if want := []string{"CGO_ENABLED=0", "GOARCH=amd64", "LANG=C.UTF-8"}; !slices.Equal(assign, want) {
		t.Errorf("replayed %q, want %q", assign, want)
	}
	var names []string
	for _, r := range refused {
		name, _, _ := strings.Cut(r, ":")
		names = append(names, name)
		if strings.Contains(r, "/tmp/evil") {
			t.Errorf("refusal quotes the value: %s", r)
		}
	}
	want := []string{"BASH_ENV", "CC", "CGO_LDFLAGS", "GIT_CONFIG_COUNT", "GIT_CONFIG_GLOBAL", "GOEXPERIMENT", "GOFLAGS", "GOTOOLCHAIN",
		"LD_PRELOAD", "NODE_OPTIONS", "PYTHONPATH", "RUSTFLAGS", "SOURCE_DATE_EPOCH"}
	if !slices.Equal(names, want) {
		t.Errorf("refused %q, want %q", names, want)
	}
	// --env NAME: the rebuilder's own value when it has one (not the
	// recorded one), else the recorded value, by the rebuilder's choice.
	assign, refused = replayEnv(map[string]string{"NODE_OPTIONS": "--max-old-space-size=4096", "GOFLAGS": "-toolexec=x"},
		[]string{"NODE_OPTIONS", "GOFLAGS"}, func(k string) bool { return k == "GOFLAGS" })
	if !slices.Equal(assign, []string{"NODE_OPTIONS=--max-old-space-size=4096"}) || len(refused) != 0 {
		t.Errorf("with --env: replayed %q, refused %q", assign, refused)
	}
	// --env NAME of a partly redacted recorded value, without one of the
	// rebuilder's own: refused, never replayed with the marker in it
	assign, refused = replayEnv(map[string]string{"GOFLAGS": "-ldflags=-X=main.token=" + attest.Redacted},
		[]string{"GOFLAGS"}, func(string) bool { return false })
	if len(assign) != 0 || len(refused) != 1 || !strings.HasPrefix(refused[0], "GOFLAGS: partly redacted") {
		t.Errorf("partly redacted with --env: replayed %q, refused %q", assign, refused)
	}
	for _, ok := range []string{"-trimpath -buildvcs=false -ldflags=-buildid= -mod=readonly", "-tags=netgo,osusergo"} {
		if err := checkGoFlags(ok); err != nil {
			t.Errorf("GOFLAGS %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"-exec=x", "--overlay=o.json", "-modfile=../x", "-C=/", "-ldflags=-extld=/tmp/x", "trimpath"} {
		if checkGoFlags(bad) == nil {
			t.Errorf("GOFLAGS %q allowed", bad)
		}
	}
}

func TestSubjectPatterns(t *testing.T) {
	if got := subjectPatterns("../etc/passwd", ""); got != nil {
		t.Errorf("escaping name: %q", got)
	}
	if got := subjectPatterns("a*b", ""); got[0] != `a\*b` {
		t.Errorf("glob characters not escaped: %q", got)
	}
	if got := subjectPatterns("app", "dist"); len(got) != 1 || got[0] != filepath.Join("dist", "app") {
		t.Errorf("with out dir: %q", got)
	}
}

// TestRun rebuilds a shell "build" from a local repository: one output
// that reproduces, one that does not, one that is never produced.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	ctx := context.Background()
	repo := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("build.sh", "mkdir -p out\necho same > out/same.txt\ndate +%s%N > out/time.txt\n")
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@e"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	run("add", ".")
	run("commit", "-q", "-m", "init")
	commit := run("rev-parse", "HEAD")
	sha := func(s string) map[string]string {
		return map[string]string{"sha256": s}
	}
	plan := &Plan{
		Subjects: []attest.Subject{
			{Name: "same.txt", Digest: sha(strings.Repeat("2", 64))},
			{Name: "time.txt", Digest: sha(strings.Repeat("0", 64))},
			{Name: "never.txt", Digest: sha(strings.Repeat("1", 64))},
		},
		SourceURI: "git+file://" + repo, SourceCommit: commit,
		Command: []string{"sh", "build.sh"}, WorkingDir: ".",
	}
	var stages []string
	res, err := Run(ctx, plan, Options{Progress: func(stage, _ string) { stages = append(stages, stage) }})
	if errors.Is(err, build.ErrHermeticUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched {
		t.Fatal("matched with a time-stamped output")
	}
	got := map[string]attest.RebuildSubject{}
	for _, r := range res.Subjects {
		got[r.Name] = r
	}
	if r := got["time.txt"]; r.Status != attest.RebuildMismatch || r.Path != "out/time.txt" || len(r.Got["sha256"]) != 64 {
		t.Errorf("time.txt: %+v", r)
	}
	if r := got["never.txt"]; r.Status != attest.RebuildMissing || r.Got != nil {
		t.Errorf("never.txt: %+v", r)
	}
	if got, want := strings.Join(stages, ","), "fetch,toolchains,build,compare"; got != want {
		t.Errorf("stages %s, want %s", got, want)
	}
	// Now with the right digest for same.txt only.
	plan.Subjects = plan.Subjects[:1]
	plan.Subjects[0].Digest = sha(got["same.txt"].Got["sha256"])
	res, err = Run(ctx, plan, Options{OutDir: "out"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Matched || res.Subjects[0].Status != attest.RebuildMatch {
		t.Fatalf("same.txt did not match: %+v", res.Subjects)
	}
	// A recorded toolchain this machine does not have refuses the rebuild,
	// or, when allowed, is recorded as differing.
	plan.Toolchains = map[string]string{"go": "go version go1.0 plan9/386"}
	var te *ToolchainError
	if _, err := Run(ctx, plan, Options{OutDir: "out"}); !errors.As(err, &te) || len(te.Diffs) != 1 || te.Diffs[0].Name != "go" {
		t.Fatalf("go toolchain mismatch: %v", err)
	}
	res, err = Run(ctx, plan, Options{OutDir: "out", AllowToolchainMismatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Matched || len(res.Toolchains.Differs) != 1 || res.Toolchains.Differs[0] != "go" {
		t.Fatalf("allowed go toolchain mismatch: %+v", res)
	}
	plan.Toolchains = nil
	// A commit that is not in the repository.
	plan.SourceCommit = strings.Repeat("d", 40)
	if _, err := Run(ctx, plan, Options{}); err == nil || !strings.Contains(err.Error(), "not in") {
		t.Fatalf("missing commit: %v", err)
	}
}

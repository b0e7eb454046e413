package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

// Environment variables that turn the test binary into a build command.
const (
	childDialEnv = "CUSTODY_BUILD_TEST_DIAL" // dial this address; exit 7 if it fails
	childEnvEnv  = "CUSTODY_BUILD_TEST_ENV"  // print the environment, one KEY=VALUE a line
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(childDialEnv); addr != "" {
		if os.Getenv(childEnvEnv) != "" {
			for _, kv := range os.Environ() {
				fmt.Println(kv)
			}
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(7)
		}
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a git repository with one commit holding files, and
// returns its directory and the commit.
func newRepo(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	gitT(t, dir, "init", "-q", "-b", "main")
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitT(t, dir, "add", "-A")
	gitT(t, dir, "commit", "-q", "-m", "initial")
	return dir, gitT(t, dir, "rev-parse", "HEAD")
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func fixedClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

func TestRunRecordsProvenance(t *testing.T) {
	goSum, err := os.ReadFile("testdata/lock/go.sum")
	if err != nil {
		t.Fatal(err)
	}
	dir, commit := newRepo(t, map[string]string{"main.go": "package main\n", "go.sum": string(goSum)})
	gitT(t, dir, "remote", "add", "origin", "https://builder:ghp_remotesecret@github.com/org/repo.git")
	const secret = "s3cr3t-value-that-must-not-leak"
	t.Setenv("GITHUB_TOKEN", secret)
	t.Setenv("DEPLOY_PASSWORD", secret)
	t.Setenv("GOFLAGS", "-trimpath")

	var stdout bytes.Buffer
	res, err := Run(context.Background(), Options{
		Command:  sh("mkdir -p dist/sub && printf hi > dist/app && printf lib > dist/sub/lib.so && echo built"),
		Dir:      dir,
		OutDir:   "dist",
		EnvAllow: []string{"DEPLOY_PASSWORD"},
		Stdout:   &stdout,
		Now:      fixedClock(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "built\n" {
		t.Errorf("stdout = %q", stdout.String())
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(res.BuildID) {
		t.Errorf("BuildID %q is not a UUIDv4", res.BuildID)
	}
	wantOut := []struct{ name, body string }{{"app", "hi"}, {"sub/lib.so", "lib"}}
	if len(res.Outputs) != len(wantOut) || len(res.Subjects) != len(wantOut) {
		t.Fatalf("outputs = %+v, subjects = %+v", res.Outputs, res.Subjects)
	}
	for i, w := range wantOut {
		o := res.Outputs[i]
		if o.Name != w.name || o.Digest.Hex != sha256Hex(w.body) || o.Path != filepath.Join(dir, "dist", filepath.FromSlash(w.name)) {
			t.Errorf("output %d = %+v, want %s with sha256 of %q", i, o, w.name, w.body)
		}
		if s := res.Subjects[i]; s.Name != w.name || s.Digest["sha256"] != sha256Hex(w.body) {
			t.Errorf("subject %d = %+v", i, s)
		}
	}

	p := res.Provenance
	if p.BuildDefinition.BuildType != attest.BuildTypeCustody {
		t.Errorf("buildType = %q", p.BuildDefinition.BuildType)
	}
	ext := p.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters)
	wantSrc := attest.CustodySource{URI: "git+https://github.com/org/repo", Ref: "refs/heads/main", Commit: commit}
	if ext.Source != wantSrc {
		t.Errorf("source = %+v, want %+v", ext.Source, wantSrc)
	}
	if ext.WorkingDir != "." || !slices.Equal(ext.Command, sh("")[:2]) && ext.Command[0] != "/bin/sh" || ext.Hermetic {
		t.Errorf("external parameters = %+v", ext)
	}
	in := p.BuildDefinition.InternalParameters.(InternalParameters)
	if in.Environment["GOFLAGS"] != "-trimpath" || in.Environment["GITHUB_TOKEN"] != attest.Redacted || in.Environment["DEPLOY_PASSWORD"] != attest.Redacted {
		t.Errorf("environment = %v", in.Environment)
	}
	if _, err := exec.LookPath("go"); err == nil && !strings.HasPrefix(in.Toolchains["go"], "go version go") {
		t.Errorf("toolchains = %v, want go", in.Toolchains)
	}
	if p.RunDetails.Builder.ID != DefaultBuilderID {
		t.Errorf("builder = %q", p.RunDetails.Builder.ID)
	}
	md := p.RunDetails.Metadata
	if md.InvocationID != res.BuildID || !md.StartedOn.Equal(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)) || !md.FinishedOn.After(*md.StartedOn) {
		t.Errorf("metadata = %+v", md)
	}
	deps := make(map[string]attest.ResourceDescriptor)
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		deps[d.URI+d.Name] = d
	}
	if d := deps["git+https://github.com/org/repo"]; d.Digest["gitCommit"] != commit {
		t.Errorf("git dependency = %+v", d)
	}
	if d := deps["go.sum"]; d.Digest["sha256"] != sha256Hex(string(goSum)) {
		t.Errorf("go.sum dependency = %+v", d)
	}
	if d := deps["pkg:golang/github.com/spf13/cobra@v1.10.2"]; len(d.Digest["dirHash"]) != 64 {
		t.Errorf("cobra dependency = %+v", d)
	}

	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{secret, "ghp_remotesecret"} {
		if bytes.Contains(b, []byte(leak)) {
			t.Errorf("provenance contains secret %q: %s", leak, b)
		}
	}
}

func TestRunSource(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, dir string)
		opts        Options
		wantErr     error
		wantRef     string
		wantDirty   bool
		wantFinding string
	}{
		{name: "branch", wantRef: "refs/heads/main"},
		{name: "tag", setup: func(t *testing.T, dir string) {
			gitT(t, dir, "tag", "v1.0.0")
			gitT(t, dir, "tag", "v1.2.0")
		}, wantRef: "refs/tags/v1.2.0"},
		{name: "detached", setup: func(t *testing.T, dir string) {
			gitT(t, dir, "checkout", "-q", "--detach")
		}, wantRef: ""},
		{name: "untracked file is dirty", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "stray.txt"), []byte("x"), 0o644)
		}, wantErr: ErrDirty},
		{name: "modified file is dirty", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "README"), []byte("changed"), 0o644)
		}, wantErr: ErrDirty},
		{name: "allow dirty", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "README"), []byte("changed"), 0o644)
		}, opts: Options{AllowDirty: true}, wantRef: "refs/heads/main", wantDirty: true, wantFinding: "dirty tree"},
		{name: "files under out dir are not dirty", setup: func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "dist", "old"), 0o755)
			os.WriteFile(filepath.Join(dir, "dist", "old", "stale"), []byte("x"), 0o644)
		}, wantRef: "refs/heads/main", wantFinding: "existed before the build"},
		{name: "files matching artifacts are not dirty", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "app.bin"), []byte("old"), 0o644)
		}, opts: Options{Artifacts: []string{"*.bin"}}, wantRef: "refs/heads/main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, commit := newRepo(t, map[string]string{"README": "hello\n"})
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			opts := tt.opts
			opts.Dir = dir
			opts.OutDir = "dist"
			opts.Command = sh("mkdir -p dist && printf new > dist/app && printf bin > app.bin")
			res, err := Run(context.Background(), opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ext := res.Provenance.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters)
			if ext.Source.Commit != commit || ext.Source.Ref != tt.wantRef || ext.Source.Dirty != tt.wantDirty {
				t.Errorf("source = %+v, want commit %s ref %q dirty %v", ext.Source, commit, tt.wantRef, tt.wantDirty)
			}
			if want := "git+file://" + filepath.ToSlash(dir); ext.Source.URI != want {
				t.Errorf("source URI = %q, want %q", ext.Source.URI, want)
			}
			in := res.Provenance.BuildDefinition.InternalParameters.(InternalParameters)
			if tt.wantFinding != "" && !slices.ContainsFunc(in.Findings, func(f string) bool { return strings.Contains(f, tt.wantFinding) }) {
				t.Errorf("findings = %q, want one containing %q", in.Findings, tt.wantFinding)
			}
		})
	}
}

func TestRunNotAGitRepo(t *testing.T) {
	dir := t.TempDir()
	res, err := Run(context.Background(), Options{Command: sh("printf x > out.txt"), Dir: dir, Artifacts: []string{"*.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	ext := res.Provenance.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters)
	if ext.Source.URI != "file://"+filepath.ToSlash(dir) || ext.Source.Commit != "" || ext.WorkingDir != dir {
		t.Errorf("external parameters = %+v", ext)
	}
	in := res.Provenance.BuildDefinition.InternalParameters.(InternalParameters)
	if len(in.Findings) == 0 || !strings.Contains(in.Findings[0], "not a git repository") {
		t.Errorf("findings = %q", in.Findings)
	}
	if len(res.Subjects) != 1 || res.Subjects[0].Name != "out.txt" {
		t.Errorf("subjects = %+v", res.Subjects)
	}
}

func TestRunOutputsAndErrors(t *testing.T) {
	explicit := attest.Subject{Name: "ghcr.io/org/app", Digest: map[string]string{"sha256": hexA}}
	tests := []struct {
		name         string
		opts         Options
		wantSubjects []string
		wantErr      error
		wantExit     int
	}{
		{name: "no outputs", opts: Options{Command: sh("true"), OutDir: "dist"}, wantErr: ErrNoOutputs},
		{name: "glob matches nothing", opts: Options{Command: sh("true"), Artifacts: []string{"*.tar"}}, wantErr: ErrNoOutputs},
		{name: "explicit subject only", opts: Options{Command: sh("true"), Subjects: []attest.Subject{explicit}}, wantSubjects: []string{"ghcr.io/org/app"}},
		{name: "glob and out dir and subject", opts: Options{
			Command:   sh("mkdir -p dist && printf a > dist/a && printf b > b.tar && mkdir -p sub && printf c > sub/c.tar && ln -s a dist/link"),
			OutDir:    "dist",
			Artifacts: []string{"*.tar", "sub/*.tar"},
			Subjects:  []attest.Subject{explicit},
		}, wantSubjects: []string{"a", "b.tar", "ghcr.io/org/app", "sub/c.tar"}},
		{name: "command fails", opts: Options{Command: sh("exit 3"), Subjects: []attest.Subject{explicit}}, wantExit: 3},
		{name: "stdin is empty", opts: Options{Command: sh("cat > in.txt"), Artifacts: []string{"in.txt"}}, wantSubjects: []string{"in.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Dir = t.TempDir()
			res, err := Run(context.Background(), opts)
			if tt.wantExit != 0 {
				var ce *CommandError
				if !errors.As(err, &ce) || ce.ExitCode != tt.wantExit {
					t.Fatalf("err = %v, want exit %d", err, tt.wantExit)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range res.Subjects {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, tt.wantSubjects) {
				t.Fatalf("subjects = %q, want %q", names, tt.wantSubjects)
			}
			if tt.name == "stdin is empty" && res.Outputs[0].Digest.Hex != sha256Hex("") {
				t.Errorf("stdin was not empty")
			}
		})
	}
}

func TestRunRejectsOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no command", Options{}},
		{"bad pattern", Options{Command: sh("true"), Artifacts: []string{"["}}},
		{"bad subject", Options{Command: sh("true"), Subjects: []attest.Subject{{Name: "x", Digest: map[string]string{"sha256": "zz"}}}}},
		{"missing dir", Options{Command: sh("true"), Dir: "/nonexistent/custody"}},
		{"missing command", Options{Command: []string{"/nonexistent/custody-cmd"}, Subjects: []attest.Subject{{Name: "x", Digest: map[string]string{"sha256": hexA}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Dir == "" {
				tt.opts.Dir = t.TempDir()
			}
			if _, err := Run(context.Background(), tt.opts); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// TestRunHermeticNetwork checks that a hermetic build cannot reach a
// listener on the host's loopback while a normal build can, and that the
// hermetic environment is minimal.
func TestRunHermeticNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Setenv(childDialEnv, ln.Addr().String())
	t.Setenv(childEnvEnv, "1")
	t.Setenv("CUSTODY_TEST_UNRELATED", "leak")
	subject := []attest.Subject{{Name: "x", Digest: map[string]string{"sha256": hexA}}}

	tests := []struct {
		name     string
		hermetic bool
		wantExit int
	}{
		{"normal build reaches the listener", false, 0},
		{"hermetic build cannot", true, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			res, err := Run(context.Background(), Options{
				Command:  []string{os.Args[0]},
				Dir:      t.TempDir(),
				Subjects: subject,
				Hermetic: tt.hermetic,
				// The sandbox shows only declared paths: the test binary is one.
				ReadOnly: []string{os.Args[0]},
				EnvAllow: []string{childDialEnv, childEnvEnv},
				Stdout:   &stdout,
			})
			if errors.Is(err, ErrHermeticUnavailable) {
				t.Skipf("hermetic builds unavailable here: %v", err)
			}
			if tt.wantExit == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(stdout.String(), "CUSTODY_TEST_UNRELATED=leak") {
					t.Errorf("normal build did not get the environment")
				}
				ext := res.Provenance.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters)
				if ext.Hermetic {
					t.Errorf("hermetic recorded for a normal build")
				}
				return
			}
			var ce *CommandError
			if !errors.As(err, &ce) || ce.ExitCode != tt.wantExit {
				t.Fatalf("err = %v, want exit %d (dial should fail)", err, tt.wantExit)
			}
			env := stdout.String()
			if strings.Contains(env, "CUSTODY_TEST_UNRELATED") {
				t.Errorf("hermetic environment has a variable not allowed: %s", env)
			}
			for _, want := range []string{"LANG=C\n", "HOME=", "PATH=", childDialEnv + "="} {
				if !strings.Contains(env, want) {
					t.Errorf("hermetic environment lacks %q: %s", want, env)
				}
			}
		})
	}
}

func TestRunHermeticRecorded(t *testing.T) {
	res, err := Run(context.Background(), Options{
		Command:   sh("printf x > out"),
		Dir:       t.TempDir(),
		Hermetic:  true,
		Artifacts: []string{"out"},
	})
	if errors.Is(err, ErrHermeticUnavailable) {
		t.Skipf("hermetic builds unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !res.Provenance.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters).Hermetic {
		t.Fatal("hermetic not recorded")
	}
}

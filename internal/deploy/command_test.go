package deploy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// evilName is the builder-chosen file name of issue 18 item 7.
const evilName = "app;env>HEALTH-ENV;true;#"

// TestShellArtifactQuoting runs each rewritten script with sh and checks
// that the artifact's path, however hostile, arrives as exactly the word
// the script meant, in every quote context.
func TestShellArtifactQuoting(t *testing.T) {
	path := "/tmp/a b;env>X;true;#'\"$(touch PWNED)`touch PWNED`\\"
	tests := []struct{ script, want string }{
		{`printf '%s\n' {artifact}`, path},
		{`printf '%s\n' "{artifact}"`, path},
		{`printf '%s\n' '{artifact}'`, path},
		{`printf '%s\n' "x{artifact}y"`, "x" + path + "y"},
		{`printf '%s\n' 'x {artifact} y'`, "x " + path + " y"},
		{`printf '%s\n' x\'{artifact}`, "x'" + path},
		{`printf '%s\n' "a\"{artifact}"`, `a"` + path},
		{`printf '%s|%s\n' {artifact} {artifact}`, path + "|" + path},
		// A command substitution inside double quotes is a new unquoted
		// context: $1 there would be split and globbed.
		{`printf '%s\n' "$(printf '%s' {artifact})"`, path},
		{"printf '%s\\n' \"`printf '%s' {artifact}`\"", path},
		{`printf '%s\n' "$(printf '%s' "$(printf '%s' {artifact})")"`, path},
		{`printf '%s\n' "$( (printf '%s' {artifact}) )"`, path},
		{`printf '%s\n' "$(($# + 0))" "{artifact}"`, "1\n" + path},
		// Quotes in a comment open nothing.
		{"# say \"hi, don't\nprintf '%s\\n' {artifact}", path},
		{"printf '%s\\n' {artifact} # it's {artifact}", path},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		cmd := exec.Command("sh", "-c", shellArtifact(tt.script), "custody-health", path)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s -> %s: %v", tt.script, shellArtifact(tt.script), err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != tt.want {
			t.Errorf("%s -> %s printed %q, want %q", tt.script, shellArtifact(tt.script), got, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
		t.Errorf("the path ran a command")
	}
}

func TestCommandArgv(t *testing.T) {
	a := Artifact{Path: "/d/" + evilName, Digest: "sha256:" + strings.Repeat("ab", 32)}
	tests := []struct {
		argv, want []string
	}{
		{[]string{"./deploy.sh", "{artifact}", "{digest}", "{env}"}, []string{"./deploy.sh", a.Path, a.Digest, "prod"}},
		{[]string{"cp", "--target={artifact}"}, []string{"cp", "--target=" + a.Path}},
		{[]string{"sh", "-c", "cp {artifact} /srv"}, []string{"sh", "-c", `cp "$1" /srv`, "custody-deploy", a.Path}},
		{[]string{"/bin/bash", "-ec", "cp '{artifact}' /srv/{env}"}, []string{"/bin/bash", "-ec", `cp ''"$1"'' /srv/prod`, "custody-deploy", a.Path}},
		{[]string{"sh", "-c", `cp "$1" /srv`, "sh", "{artifact}"}, []string{"sh", "-c", `cp "$1" /srv`, "sh", a.Path}},
		{[]string{"sh", "deploy.sh", "{artifact}"}, []string{"sh", "deploy.sh", a.Path}},
	}
	for _, tt := range tests {
		got, err := commandArgv(tt.argv, a, "prod")
		if err != nil || strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
			t.Errorf("commandArgv(%q) = %q, %v; want %q", tt.argv, got, err, tt.want)
		}
	}
	if _, err := commandArgv([]string{"sh", "-c", "cp {artifact} $1", "sh", "x"}, a, "prod"); !errors.Is(err, errShellArtifact) {
		t.Errorf("a shell script with {artifact} and its own arguments: err = %v, want errShellArtifact", err)
	}
	g := &Gate{Environment: "prod", History: FileHistory{Dir: t.TempDir()}, Decide: (&fakePolicy{}).decide,
		Command: []string{"bash", "-c", "cp {artifact} /srv", "bash", "more"}}
	if _, err := g.Deploy(context.Background(), a); !errors.Is(err, errShellArtifact) {
		t.Errorf("Deploy with such a command = %v, want errShellArtifact before anything runs", err)
	}
}

// TestHealthCheckInjection is issue 18 item 7: a builder names its file
// "app;env>HEALTH-ENV;true;#". Pasted into sh -c, the health check dumped
// custody's environment (the verifier key's password, the deployer token)
// into HEALTH-ENV and turned a failing check into "passed", on the deploy
// and again on a later rollback to that artifact. Now the path is "$1".
func TestHealthCheckInjection(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("CUSTODY_PASSWORD", "verifier-key-password")
	evil := writeArtifact(t, dir, evilName, "broken")
	pol := &fakePolicy{env: "prod", allowed: map[string]bool{evil.Digest: true}}
	g, log := newGate(t, pol, "grep -q healthy {artifact}")

	// The deploy: its health check must fail, and nothing else may run.
	_, err := g.Deploy(ctx, evil)
	if !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("Deploy(%q) = %v, want ErrUnhealthy (the check must not be turned into a pass)", evilName, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "HEALTH-ENV")); err == nil {
		t.Fatalf("the file name ran a command in the health check")
	}
	checkDeployLog(t, log, evil.Path)

	// The rollback: the evil artifact was healthy once (a health check that
	// passes it); a later artifact fails and the rollback goes back to it.
	os.Remove(log)
	if err := os.WriteFile(evil.Path, []byte("healthy"), 0o644); err != nil {
		t.Fatal(err)
	}
	evil = writeArtifact(t, dir, evilName, "healthy")
	bad := writeArtifact(t, dir, "v2", "broken")
	pol.allowed[evil.Digest], pol.allowed[bad.Digest] = true, true
	if _, err := g.Deploy(ctx, evil); err != nil {
		t.Fatalf("Deploy(evil, healthy): %v", err)
	}
	res, err := g.Deploy(ctx, bad)
	if !errors.Is(err, ErrUnhealthy) || res.RolledBackTo == nil || res.RolledBackTo.Artifact != evil.Digest {
		t.Fatalf("Deploy(bad) = %v, rolled back to %+v; want a rollback to the evil-named artifact", err, res.RolledBackTo)
	}
	if _, err := os.Stat(filepath.Join(dir, "HEALTH-ENV")); err == nil {
		t.Fatalf("the file name ran a command on the rollback")
	}
	checkDeployLog(t, log, evil.Path, bad.Path, evil.Path)
}

// checkDeployLog checks the deploy command of newGate got each path, in
// order, as one word.
func checkDeployLog(t *testing.T, log string, paths ...string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("deploy command never ran: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(paths) {
		t.Fatalf("deploy log = %q, want %d lines", lines, len(paths))
	}
	for i, p := range paths {
		if _, path, _ := strings.Cut(lines[i], " "); path != p {
			t.Errorf("deploy command %d got path %q, want %q", i, path, p)
		}
	}
}

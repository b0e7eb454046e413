package build

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/attest"
)

// Issue 12, item 12: --out-dir is created for the command when missing.
func TestRunCreatesOutDir(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"main.go": "package main\n", ".gitignore": "dist/\n"})
	res, err := Run(context.Background(), Options{Command: sh("printf hi > dist/app"), Dir: dir, OutDir: "dist"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Subjects) != 1 || res.Subjects[0].Name != "app" {
		t.Fatalf("subjects = %+v", res.Subjects)
	}
}

// Issue 12, item 12: the bundles an earlier build wrote beside its
// artifacts (provenance, SBOM, scan, rebuild attestation) do not make the
// tree dirty for the next build; other untracked files still do.
func TestRunIgnoresEarlierCustodyOutputs(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"main.go": "package main\n"})
	opts := Options{Command: sh("printf hi > app"), Dir: dir, Artifacts: []string{"app"}}
	var ss statementSigner
	if _, err := Release(context.Background(), opts, SignOptions{Sign: ss.sign, SBOM: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.rebuild"+BundleSuffix), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	if res.Provenance.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters).Source.Dirty {
		t.Error("second build recorded as dirty")
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), opts); !errors.Is(err, ErrDirty) {
		t.Errorf("untracked notes.txt: err = %v, want ErrDirty", err)
	}
}

// Issue 12, item 12: a hermetic build leaves nothing in the temporary
// directory, even when the command runs go (whose telemetry writes after
// the command is done).
func TestHermeticLeavesNoTempFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	command := sh("printf x > out")
	if _, err := exec.LookPath("go"); err == nil {
		command = sh("go env GOTELEMETRY >/dev/null 2>&1; go version >/dev/null 2>&1; printf x > out")
	}
	_, err := Run(context.Background(), Options{Command: command, Dir: t.TempDir(), Hermetic: true, Artifacts: []string{"out"}})
	if errors.Is(err, ErrHermeticUnavailable) {
		t.Skipf("hermetic builds unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}

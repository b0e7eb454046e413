//go:build custody_norego

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/pack/packtest"
)

// TestRegoRefused: built without the Rego engine, a pack whose policy has
// custom Rego rules is refused (exit 2) naming the full binary, never
// decided without them.
func TestRegoRefused(t *testing.T) {
	f := packtest.New(t)
	sp := f.SignedPolicy(t, "prod", "rego: |\n  package custody\n  deny contains \"no\" if { true }\n")
	c := f.Contents(t)
	c.SignedPolicy, _ = sp.Marshal()
	c.PolicyDigest = sp.Digest()
	dir := t.TempDir()
	rootJSON, _ := f.Root.Marshal()
	os.WriteFile(filepath.Join(dir, "root.json"), rootJSON, 0o644)
	os.WriteFile(filepath.Join(dir, "app.custody"), f.Build(t, c, f.Packer), 0o644)
	code, _, errOut := runCmd(t, "--pack", filepath.Join(dir, "app.custody"), "--trust-root", filepath.Join(dir, "root.json"),
		"--state", filepath.Join(dir, "state.json"), "--env", "prod", "--digest", f.Artifact)
	if code != 2 || !strings.Contains(errOut, "custom Rego rules") || !strings.Contains(errOut, "full custody binary") {
		t.Fatalf("exit %d %s", code, errOut)
	}
}

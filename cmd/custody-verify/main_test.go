package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/pack/packtest"
)

const corpus = "../../testdata/corpus/"

// runCmd runs custody-verify in process and returns its exit code and
// output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCorpusBundle: the real SLSA generator bundle the benchmark uses
// verifies with custody verify's flags; the wrong identity fails.
func TestCorpusBundle(t *testing.T) {
	args := []string{"--bundle", corpus + "delegator-v1.10.0-push-v13.0.30.sigstore.json", "--trusted-root", corpus + "public-good-trusted_root.json",
		"--certificate-identity", "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v1.10.0",
		"--certificate-oidc-issuer", "https://token.actions.githubusercontent.com", "--source-uri", "github.com/slsa-framework/example-package"}
	code, out, errOut := runCmd(t, append(args, corpus+"delegator-v1.10.0-push-v13.0.30.bin")...)
	if code != 0 || !strings.HasPrefix(out, "Verified OK") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	args[7] = "https://accounts.google.com"
	if code, out, _ := runCmd(t, append(args, corpus+"delegator-v1.10.0-push-v13.0.30.bin")...); code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("wrong issuer: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCmd(t, "--server", "http://127.0.0.1:1", corpus+"delegator-v1.10.0-push-v13.0.30.bin"); code != 2 || !strings.Contains(errOut, "does not reach servers") {
		t.Fatalf("--server: exit %d %s", code, errOut)
	}
}

// TestPackFlags: custody-verify --pack decides, refuses a tampered
// artifact (the pack is about another digest) and a wrong environment.
func TestPackFlags(t *testing.T) {
	f := packtest.New(t)
	dir := t.TempDir()
	art := filepath.Join(dir, "app")
	os.WriteFile(art, []byte("the artifact"), 0o644)
	rootJSON, err := f.Root.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "root.json"), rootJSON, 0o644)
	os.WriteFile(filepath.Join(dir, "app.custody"), f.Build(t, f.Contents(t), f.Packer), 0o644)
	base := []string{"--pack", filepath.Join(dir, "app.custody"), "--trust-root", filepath.Join(dir, "root.json"), "--state", filepath.Join(dir, "state.json")}
	code, out, errOut := runCmd(t, append(base, "--env", "prod", art)...)
	if code != 1 || !strings.Contains(out, "DENIED: "+f.Artifact+" in environment prod") || !strings.Contains(out, "IGNORED bundle/0000") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(art, []byte("the artifact, changed"), 0o644)
	if code, _, errOut := runCmd(t, append(base, "--env", "prod", art)...); code != 1 || !strings.Contains(errOut, "not about this artifact") {
		t.Fatalf("tampered artifact: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, append(base, "--env", "staging", "--digest", f.Artifact)...); code != 1 || !strings.Contains(errOut, `for environment "prod"`) {
		t.Fatalf("other environment: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, append(base, "--digest", f.Artifact)...); code != 2 || !strings.Contains(errOut, "--env") {
		t.Fatalf("no --env: exit %d %s", code, errOut)
	}
}

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/pack/packtest"
)

// leanTags are the build tags the lean verifier is built with
// (docs/edge.md): no Rego engine, no gRPC trace pages (whose template
// executor, through reflect.Value.MethodByName, makes the linker keep
// every exported method), no HTTP/2 in net/http.
const leanTags = "custody_norego,grpcnotrace,nethttpomithttp2"

// leanBuild are the go build flags of the lean verifier, as docs/edge.md,
// bench/edge and pack_serve.txtar build it, always with CGO_ENABLED=0
// (one set of flags: one build cache entry per package).
var leanBuild = []string{"build", "-tags", leanTags, "-trimpath", "-ldflags=-s -w"}

// maxLeanBytes is the size goal of issue 17.
const maxLeanBytes = 15_000_000

// TestLeanDependencies guards what custody-verify links (like
// TestClientDoesNotLinkServer): of custody's packages only the public
// verification packages and the pure helpers under them; none of the
// Rego engine, databases, Kubernetes, the log engine, the CLI framework,
// the signing backends or the server and its client.
func TestLeanDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list dependencies")
	}
	out, err := exec.Command("go", "list", "-tags", leanTags, "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/custody-dev/custody/"
	allowed := map[string]bool{}
	for _, p := range []string{"attest", "keyid", "pack", "policy", "trust", "verify", "verify/match",
		"internal/api", "internal/digest", "internal/envelope", "internal/fsutil", "internal/gate", "internal/gcpolicy", "internal/jsonstrict", "internal/lazyre"} {
		allowed[mod+p] = true
	}
	forbidden := []string{"github.com/open-policy-agent/", "k8s.io/api/", "k8s.io/apimachinery/", "modernc.org/sqlite",
		"github.com/jackc/pgx", "github.com/transparency-dev/tessera", "github.com/spf13/cobra", "github.com/prometheus/",
		"github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11", "net/http/httptest", "github.com/chromedp/",
		"golang.org/x/net/trace"}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, mod) && !allowed[dep] && dep != mod+"cmd/custody-verify" {
			t.Errorf("custody-verify links %s", dep)
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("custody-verify links %s", dep)
			}
		}
	}
}

// TestLeanLinksNoMoreThanSigstore: of other modules, custody-verify links
// only what sigstore-go's verifier (pkg/verify, pkg/bundle, pkg/root)
// links anyway, and transparency-dev/formats/note (checkpoint witness
// cosignatures, with the ML-DSA it imports). Most of the lean verifier's
// package initialisation (govalidator, go-openapi, gob, gRPC, loglist3,
// x/crypto/ssh, sigstore-go/pkg/tuf) comes with sigstore-go: a dependency
// custody's own packages add is one more paid at every start.
func TestLeanLinksNoMoreThanSigstore(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list dependencies")
	}
	deps := func(pkgs ...string) map[string]bool {
		out, err := exec.Command("go", append([]string{"list", "-tags", leanTags, "-deps"}, pkgs...)...).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkgs, err)
		}
		m := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			m[p] = true
		}
		return m
	}
	sigstore := deps("github.com/sigstore/sigstore-go/pkg/verify", "github.com/sigstore/sigstore-go/pkg/bundle", "github.com/sigstore/sigstore-go/pkg/root")
	for dep := range deps(".") {
		first, _, _ := strings.Cut(dep, "/")
		if sigstore[dep] || !strings.Contains(first, ".") || strings.HasPrefix(dep, "github.com/custody-dev/custody/") ||
			dep == "github.com/transparency-dev/formats/note" || strings.HasPrefix(dep, "filippo.io/mldsa") {
			continue
		}
		t.Errorf("custody-verify links %s, which sigstore-go's verifier does not: its package initialisation runs at every start", dep)
	}
}

// buildLean builds the lean verifier with leanBuild for linux/goarch
// ("" for this machine) and returns the binary. The compiler runs with
// GOGC=400: the same binary and the same build cache entries (the go
// command does not key them on GOGC), for about an eighth less CPU on a
// cold cache: each architecture compiles ~560 packages; the 362 that gRPC
// and rekor's models import took 75 s of CPU for linux/arm at GOGC=100,
// 65 s at 400 (63 s with GOGC=off, but up to 630 MB per compile, against
// 395 MB).
func buildLean(t *testing.T, goarch string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the lean verifier")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "custody-verify")
	cmd := exec.Command("go", append(leanBuild, "-o", bin, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOGC=400")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+goarch, "GOARM=7")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOARCH=%s go %s: %v\n%s", goarch, strings.Join(leanBuild, " "), err, out)
	}
	return bin
}

// TestLeanBinary: the lean verifier built as documented is at most 15 MB
// (issue 17's goal; a size, not a timing); it verifies the corpus bundle
// without a GC cycle (gcpolicy: collection off under a memory limit), and
// runs one when GOGC asks for it; built without the Rego engine, it
// refuses a pack whose policy has custom Rego rules (exit 2) naming the
// full binary: it never decides without them.
func TestLeanBinary(t *testing.T) {
	bin := buildLean(t, "")
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxLeanBytes {
		t.Errorf("custody-verify is %d bytes, more than the goal of %d: go tool nm -size -sort size shows what grew", fi.Size(), maxLeanBytes)
	}
	for _, gogc := range []string{"", "GOGC=1"} {
		cmd := exec.Command(bin, "--bundle", corpus+"delegator-v1.10.0-push-v13.0.30.sigstore.json", "--trusted-root", corpus+"public-good-trusted_root.json",
			"--certificate-identity", "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v1.10.0",
			"--certificate-oidc-issuer", "https://token.actions.githubusercontent.com", corpus+"delegator-v1.10.0-push-v13.0.30.bin")
		cmd.Env = append(withoutGCEnv(os.Environ()), "GODEBUG=gctrace=1", gogc)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s custody-verify: %v\n%s", gogc, err, stderr.String())
		}
		if ran := strings.Contains(stderr.String(), "gc 1 @"); ran != (gogc != "") {
			t.Errorf("%s: a GC cycle ran: %t, want %t\n%s", gogc, ran, gogc != "", stderr.String())
		}
	}
	f := packtest.New(t)
	sp := f.SignedPolicy(t, "prod", "rego: |\n  package custody\n  deny contains \"no\" if { true }\n")
	c := f.Contents(t)
	c.SignedPolicy, _ = sp.Marshal()
	c.PolicyDigest = sp.Digest()
	dir := t.TempDir()
	rootJSON, _ := f.Root.Marshal()
	os.WriteFile(filepath.Join(dir, "root.json"), rootJSON, 0o644)
	os.WriteFile(filepath.Join(dir, "app.custody"), f.Build(t, c, f.Packer), 0o644)
	cmd := exec.Command(bin, "--pack", filepath.Join(dir, "app.custody"), "--trust-root", filepath.Join(dir, "root.json"),
		"--state", filepath.Join(dir, "state.json"), "--env", "prod", "--digest", f.Artifact)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "custom Rego rules") || !strings.Contains(string(out), "full custody binary") {
		t.Fatalf("Rego policy: %v\n%s", err, out)
	}
}

// withoutGCEnv is env without GOGC, GOMEMLIMIT and GODEBUG.
func withoutGCEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != "GOGC" && k != "GOMEMLIMIT" && k != "GODEBUG" {
			out = append(out, kv)
		}
	}
	return out
}

// TestCrossCompiles: the lean verifier builds for 64- and 32-bit ARM
// devices, compiled and linked as docs/edge.md builds it (not run). Each
// architecture compiles every dependency once (the build cache keeps them
// for the next run); the two run one after the other, since running them
// at once would spend the same CPU.
func TestCrossCompiles(t *testing.T) {
	for _, arch := range []string{"arm64", "arm"} {
		t.Run(arch, func(t *testing.T) { buildLean(t, arch) })
	}
}

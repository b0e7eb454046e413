package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// leanTags are the build tags the lean verifier is built with.
const leanTags = "custody_norego"

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
		"internal/api", "internal/digest", "internal/envelope", "internal/fsutil", "internal/gate", "internal/jsonstrict", "internal/lazyre"} {
		allowed[mod+p] = true
	}
	forbidden := []string{"github.com/open-policy-agent/", "k8s.io/api/", "k8s.io/apimachinery/", "modernc.org/sqlite",
		"github.com/jackc/pgx", "github.com/transparency-dev/tessera", "github.com/spf13/cobra", "github.com/prometheus/",
		"github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11", "net/http/httptest", "github.com/chromedp/"}
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

// TestCrossCompiles: the lean verifier builds for 64- and 32-bit ARM
// devices (built, not run).
func TestCrossCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, arch := range []string{"arm64", "arm"} {
		t.Run(arch, func(t *testing.T) {
			cmd := exec.Command("go", "build", "-tags", leanTags, "-trimpath", "-o", filepath.Join(t.TempDir(), "custody-verify"), ".")
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0", "GOARM=7")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=linux GOARCH=%s go build: %v\n%s", arch, err, out)
			}
		})
	}
}

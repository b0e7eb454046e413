// Package sandboxtest helps tests of the sandbox's users run as an
// unprivileged user: RerunAsNobody runs tests of the calling test binary
// again as nobody (setpriv), so one test body covers custody run by root and
// by an ordinary user.
package sandboxtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/childenv"
)

// RerunAsNobody runs the tests matching run (a -test.run pattern) of the
// current test binary as uid/gid 65534 with CUSTODY_TEST_SANDBOX=1, TMPDIR
// and HOME in a directory nobody owns, and fails t unless each test
// named in want passed and none skipped. It skips when not root, or
// without setpriv or bwrap (unless CUSTODY_TEST_SANDBOX=1).
func RerunAsNobody(t *testing.T, run string, want ...string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	if _, err := exec.LookPath("bwrap"); err != nil && os.Getenv("CUSTODY_TEST_SANDBOX") != "1" {
		t.Skip("bwrap not installed")
	}
	// nobody needs a copy of the test binary and a TMPDIR it owns.
	dir, err := os.MkdirTemp("", "custody-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(dir, filepath.Base(exe))
	if err := os.WriteFile(copyExe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := childenv.Command(context.Background(), setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", copyExe, "-test.run="+run, "-test.v")
	cmd.Env = childenv.Filter([]string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "HOME=" + tmp, "CUSTODY_TEST_SANDBOX=1"})
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "--- SKIP") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	for _, name := range want {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Fatalf("as nobody, %s did not pass:\n%s", name, out)
		}
	}
}

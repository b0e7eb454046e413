package build

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRunVersionProbe: the one reading of a version probe that build and
// rebuild share (a rebuild compares its probe with what build recorded).
func TestRunVersionProbe(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for _, tc := range []struct{ script, want string }{
		{`printf '\r\n  go version go1.26 linux/amd64 \nmore\n'`, "go version go1.26 linux/amd64"},
		{`printf 'openjdk 21\n' >&2`, "openjdk 21"},
		{`printf '%0300d\n' 0`, strings.Repeat("0", 200)},
		{`printf 'a\377b\n'`, "ab"},
		{`echo v1; exit 3`, ""},
	} {
		if got := RunVersionProbe(exec.Command("sh", "-c", tc.script)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.script, got, tc.want)
		}
	}
	for _, name := range []string{"go", "node", "gcc", "rustc", "cargo", "python3", "java"} {
		if _, ok := VersionArgs(name); !ok {
			t.Errorf("VersionArgs(%q) not found", name)
		}
	}
	if _, ok := VersionArgs("make"); ok {
		t.Error("VersionArgs(make) found")
	}
}

package cli

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/custody-dev/custody", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "d8fd9bd3f81579a64808700343b258240789c5bf"},
			{Key: "vcs.time", Value: "2026-12-07T02:09:23Z"}, {Key: "vcs.modified", Value: "true"},
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want []string
	}{
		{"stamped and dirty", stamped, true, []string{"custody v1.4.0\n", "module:  github.com/custody-dev/custody\n",
			"commit:  d8fd9bd3f81579a64808700343b258240789c5bf (dirty: uncommitted changes)\n",
			"time:    2026-12-07T02:09:23Z\n", "go:      go1.26.8 linux/amd64\n"}},
		{"clean", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/custody-dev/custody", Version: "v1.4.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, true,
			[]string{"commit:  abc\n", "go:      go1.26.8\n"}},
		{"no vcs", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true,
			[]string{"custody (devel)\n", "commit:  unknown (not built from a git checkout)\n"}},
		{"no build info", nil, false, []string{"custody unknown\n", "go:      unknown\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			readBuildVersion(func() (*debug.BuildInfo, bool) { return tc.info, tc.ok }).write(&b)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output does not contain %q:\n%s", w, b.String())
				}
			}
			if tc.name == "clean" && strings.Contains(b.String(), "dirty") {
				t.Errorf("clean build reported dirty:\n%s", b.String())
			}
		})
	}
}

// "custody version" and "custody --version" print the same thing: the
// running binary's module, version and Go version.
func TestVersionCommand(t *testing.T) {
	var a, b, errs bytes.Buffer
	if code := Main([]string{"version"}, nil, &a, &errs); code != 0 {
		t.Fatalf("custody version: exit %d: %s", code, errs.String())
	}
	if code := Main([]string{"--version"}, nil, &b, &errs); code != 0 {
		t.Fatalf("custody --version: exit %d: %s", code, errs.String())
	}
	if a.String() != b.String() {
		t.Errorf("custody version:\n%s\ncustody --version:\n%s", a.String(), b.String())
	}
	bi, _ := debug.ReadBuildInfo()
	for _, w := range []string{"custody ", "commit:  ", "go:      " + bi.GoVersion} {
		if !strings.Contains(a.String(), w) {
			t.Errorf("custody version does not say %q:\n%s", w, a.String())
		}
	}
}

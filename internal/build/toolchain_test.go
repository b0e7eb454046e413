package build

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRelevantToolchains(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string // relative to the repository root
		wd      string
		command []string
		env     []string
		want    []string // nil: cannot tell, everything on PATH is recorded
	}{
		{"go project, cgo off in the script", map[string]string{"go.mod": "module x\n", "build.sh": "CGO_ENABLED=0 go build -o dist/app .\n"},
			".", []string{"sh", "build.sh"}, nil, []string{"go"}},
		{"go project, cgo off in the environment", map[string]string{"go.mod": "module x\n"},
			".", []string{"go", "build", "."}, []string{"CGO_ENABLED=0"}, []string{"go"}},
		{"go project may use cgo", map[string]string{"go.mod": "module x\n"},
			".", []string{"go", "build", "."}, nil, []string{"gcc", "go"}},
		{"go.mod above the working directory", map[string]string{"go.mod": "module x\n", "cmd/app/main.go": "package main\n"},
			"cmd/app", []string{"true"}, []string{"CGO_ENABLED=0"}, []string{"go"}},
		{"helper script followed", map[string]string{"build.sh": "sh scripts/gen.sh\n", "scripts/gen.sh": "python3.12 gen.py\n"},
			".", []string{"sh", "build.sh"}, nil, []string{"gcc", "python3"}},
		{"pyenv version file", map[string]string{".python-version": "3.12\n"},
			".", []string{"./build"}, nil, []string{"gcc", "python3"}},
		{"npm through sh -c", nil,
			".", []string{"/bin/sh", "-c", "npm ci && npm run build"}, nil, []string{"gcc", "node"}},
		{"cargo by absolute path", map[string]string{"Cargo.toml": "[package]\n"},
			".", []string{"/root/.cargo/bin/cargo", "build"}, nil, []string{"cargo", "gcc", "rustc"}},
		{"gradle wrapper", map[string]string{"build.gradle": ""},
			".", []string{"./gradlew", "assemble"}, nil, []string{"java"}},
		{"nothing recognised", map[string]string{"build.sh": "mkdir -p dist && printf x > dist/app\n"},
			".", []string{"sh", "build.sh"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tc.files {
				p := filepath.Join(root, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := relevantToolchains(filepath.Join(root, filepath.FromSlash(tc.wd)), root, tc.command, tc.env)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("relevant = %v, want nil (record everything)", slices.Sorted(maps.Keys(got)))
				}
				return
			}
			if g := slices.Sorted(maps.Keys(got)); !slices.Equal(g, tc.want) {
				t.Fatalf("relevant = %v, want %v", g, tc.want)
			}
		})
	}
}

// A Go build records the go toolchain and not the unrelated ones on PATH;
// a command custody cannot read records every toolchain it finds.
func TestRunRecordsRelevantToolchains(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not installed")
	}
	dir, _ := newRepo(t, map[string]string{
		"go.mod":   "module example.com/x\n",
		"build.sh": "CGO_ENABLED=0 go version >/dev/null\nmkdir -p dist && printf x > dist/app\n",
	})
	res, err := Run(context.Background(), Options{Command: []string{"sh", "build.sh"}, Dir: dir, OutDir: "dist"})
	if err != nil {
		t.Fatal(err)
	}
	in := res.Provenance.BuildDefinition.InternalParameters.(InternalParameters)
	if got := slices.Sorted(maps.Keys(in.Toolchains)); !slices.Equal(got, []string{"go"}) || !strings.HasPrefix(in.Toolchains["go"], "go version go") {
		t.Errorf("toolchains = %v, want only go", in.Toolchains)
	}

	dir, _ = newRepo(t, map[string]string{"build.sh": "mkdir -p dist && printf x > dist/app\n"})
	res, err = Run(context.Background(), Options{Command: []string{"sh", "build.sh"}, Dir: dir, OutDir: "dist"})
	if err != nil {
		t.Fatal(err)
	}
	in = res.Provenance.BuildDefinition.InternalParameters.(InternalParameters)
	if !strings.HasPrefix(in.Toolchains["go"], "go version go") {
		t.Errorf("toolchains = %v, want every toolchain on PATH, go among them", in.Toolchains)
	}
}

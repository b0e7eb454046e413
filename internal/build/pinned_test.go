package build

import (
	"os"
	"path/filepath"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestFindUnpinned(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []Pinning // kind and file only
	}{
		{"go.mod without go.sum", map[string]string{"go.mod": "module x\n\nrequire golang.org/x/text v0.3.6\n"},
			[]Pinning{{Kind: PinGoSum, File: "go.mod"}}},
		{"go.mod block without go.sum", map[string]string{"sub/go.mod": "module x\nrequire (\n\t// c\n\ta v1.0.0\n)\n"},
			[]Pinning{{Kind: PinGoSum, File: "sub/go.mod"}}},
		{"go.mod with go.sum", map[string]string{"go.mod": "module x\nrequire a v1.0.0\n", "go.sum": ""}, nil},
		{"go.mod without requirements", map[string]string{"go.mod": "module x\n\ngo 1.26\n"}, nil},
		{"package.json without lock", map[string]string{"package.json": `{"dependencies":{"left-pad":"^1.0.0"}}`},
			[]Pinning{{Kind: PinNPMLock, File: "package.json"}}},
		{"package.json with lock", map[string]string{"package.json": `{"dependencies":{"a":"1"}}`, "package-lock.json": "{}"}, nil},
		{"package.json without dependencies", map[string]string{"package.json": `{"name":"x"}`}, nil},
		{"workspace member", map[string]string{"package-lock.json": "{}", "packages/a/package.json": `{"dependencies":{"a":"1"}}`}, nil},
		{"node_modules skipped", map[string]string{"package-lock.json": "{}", "node_modules/a/package.json": `{"dependencies":{"b":"1"}}`, "node_modules/a/go.mod": "module a\nrequire b v1.0.0\n"}, nil},
		{"requirements without hashes", map[string]string{"requirements.txt": "requests==2.31.0\nflask\n"},
			[]Pinning{{Kind: PinPipHash, File: "requirements.txt"}}},
		{"requirements with hashes", map[string]string{"requirements-dev.txt": "requests==2.31.0 --hash=sha256:" + sha + "\n"}, nil},
		{"requirements range with hash", map[string]string{"requirements.txt": "requests>=2 --hash=sha256:" + sha + "\n"},
			[]Pinning{{Kind: PinPipHash, File: "requirements.txt"}}},
		{"dockerfile", map[string]string{"Dockerfile": "FROM --platform=$BUILDPLATFORM golang:1.26 AS build\nRUN go build\nFROM build AS test\nFROM scratch\nFROM gcr.io/distroless/static@sha256:" + sha + "\nFROM \\\n  alpine:3\n"},
			[]Pinning{{Kind: PinDockerFrom, File: "Dockerfile"}, {Kind: PinDockerFrom, File: "Dockerfile"}}},
		{"workflow", map[string]string{".github/workflows/ci.yml": "jobs:\n  b:\n    steps:\n      - uses: actions/checkout@v4\n      - uses: actions/setup-go@0aaccfd150d50ccaeb58ebd88d36e91967a5f35b # v5\n      - uses: ./local\n      - name: x\n        uses: \"docker://alpine:3\"\n      - uses: org/repo/path@main\n"},
			[]Pinning{{Kind: PinActionRef, File: ".github/workflows/ci.yml"}, {Kind: PinActionRef, File: ".github/workflows/ci.yml"}, {Kind: PinActionRef, File: ".github/workflows/ci.yml"}}},
		{"not a workflow", map[string]string{"docs/ci.yml": "uses: actions/checkout@v4\n"}, nil},
		{"bad package.json", map[string]string{"package.json": "{"}, []Pinning{{Kind: PinUnreadable, File: "package.json"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			got := findUnpinned(dir, "")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d findings %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i].Kind != tt.want[i].Kind || got[i].File != tt.want[i].File || got[i].Detail == "" {
					t.Errorf("finding %d = %+v, want kind %s file %s", i, got[i], tt.want[i].Kind, tt.want[i].File)
				}
			}
		})
	}
}

func TestFindUnpinnedDetails(t *testing.T) {
	dir := writeTree(t, map[string]string{
		".github/workflows/release.yaml": "steps:\n  - uses: actions/checkout@v4\n",
		"Dockerfile":                     "FROM golang:1.26\n",
	})
	got := findUnpinned(dir, "")
	want := []Pinning{
		{Kind: PinActionRef, File: ".github/workflows/release.yaml", Detail: `line 2: uses actions/checkout@v4 is pinned to "v4", not a 40-hex commit`},
		{Kind: PinDockerFrom, File: "Dockerfile", Detail: "line 1: FROM golang:1.26 has no @sha256: digest"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
}

// FuzzCheckDockerfile and FuzzCheckWorkflow: the parsers of untrusted
// source files never panic and always say which file.
func FuzzCheckDockerfile(f *testing.F) {
	f.Add([]byte("FROM golang:1.26 AS b\nFROM b\nFROM scratch\nFROM x@sha256:" + sha + "\n"))
	f.Add([]byte("FROM \\\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range checkDockerfile("Dockerfile", b, "") {
			if p.File != "Dockerfile" || p.Kind != PinDockerFrom {
				t.Fatalf("bad finding %+v", p)
			}
		}
	})
}

func FuzzCheckWorkflow(f *testing.F) {
	f.Add([]byte("- uses: actions/checkout@v4\n- uses: docker://x\n- uses: a/b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range checkWorkflow("w.yml", b, "") {
			if p.File != "w.yml" || p.Kind != PinActionRef {
				t.Fatalf("bad finding %+v", p)
			}
		}
		goModRequires(b)
	})
}

package build

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/childenv"
)

// toolchainTimeout bounds each version probe.
const toolchainTimeout = 5 * time.Second

// toolchainProbes are the toolchains custody knows how to record: name,
// then the arguments that print its version on the first line.
var toolchainProbes = []struct {
	name string
	args []string
}{
	{"go", []string{"version"}},
	{"node", []string{"--version"}},
	{"gcc", []string{"--version"}},
	{"rustc", []string{"--version"}},
	{"cargo", []string{"--version"}},
	{"python3", []string{"--version"}},
	{"java", []string{"-version"}}, // prints on stderr
}

// toolchainWords are the command words (program names, as the command or
// a script it runs spells them) that say a build uses a toolchain.
var toolchainWords = map[string][]string{
	"go": {"go"}, "gofmt": {"go"},
	"node": {"node"}, "nodejs": {"node"}, "npm": {"node"}, "npx": {"node"},
	"yarn": {"node"}, "pnpm": {"node"}, "corepack": {"node"},
	"gcc": {"gcc"}, "cc": {"gcc"}, "g++": {"gcc"}, "c++": {"gcc"}, "cpp": {"gcc"},
	"make": {"gcc"}, "cmake": {"gcc"}, "ninja": {"gcc"}, "meson": {"gcc"}, "ld": {"gcc"},
	"rustc": {"rustc", "cargo"}, "cargo": {"rustc", "cargo"}, "rustup": {"rustc", "cargo"},
	"maturin": {"rustc", "cargo", "python3"},
	"python":  {"python3"}, "python3": {"python3"}, "pip": {"python3"}, "pip3": {"python3"},
	"poetry": {"python3"}, "pipenv": {"python3"}, "uv": {"python3"}, "hatch": {"python3"},
	"tox": {"python3"}, "pytest": {"python3"},
	"java": {"java"}, "javac": {"java"}, "jar": {"java"}, "mvn": {"java"}, "mvnw": {"java"},
	"gradle": {"java"}, "gradlew": {"java"}, "ant": {"java"}, "kotlinc": {"java"},
}

// toolchainMarkers are files whose presence in the working directory (or
// a directory above it inside the repository) says a build uses a
// toolchain: the project files each ecosystem's tools read.
var toolchainMarkers = map[string][]string{
	"go.mod": {"go"}, "go.work": {"go"}, "go.sum": {"go"},
	"package.json": {"node"}, ".nvmrc": {"node"}, ".node-version": {"node"},
	"Cargo.toml": {"rustc", "cargo"}, "rust-toolchain": {"rustc", "cargo"}, "rust-toolchain.toml": {"rustc", "cargo"},
	"pyproject.toml": {"python3"}, "setup.py": {"python3"}, "setup.cfg": {"python3"},
	"requirements.txt": {"python3"}, "Pipfile": {"python3"}, ".python-version": {"python3"},
	"pom.xml": {"java"}, "build.gradle": {"java"}, "build.gradle.kts": {"java"},
	"settings.gradle": {"java"}, "settings.gradle.kts": {"java"}, "build.xml": {"java"}, ".java-version": {"java"},
	"CMakeLists.txt": {"gcc"}, "meson.build": {"gcc"}, "configure": {"gcc"},
}

// Limits on the scripts read for command words: a build script calling a
// helper script is followed, a tree of scripts is not.
const (
	maxScripts     = 8
	maxScriptBytes = 1 << 20
)

// relevantToolchains returns the names of the toolchains command could
// use when run in dir (inside the repository at root, "" when not a
// repository), or nil when it cannot tell, in which case every toolchain
// on PATH is recorded, as before.
//
// A toolchain is relevant when its program (or a tool that drives it, e.g.
// npm for node) is a word of the command or of a script the command names
// (a file below dir, e.g. build.sh, followed a few levels), or when one of
// its project files (go.mod, package.json, Cargo.toml, pyproject.toml,
// pom.xml, …) is in dir or above it inside the repository. gcc is also
// relevant to go (cgo) unless CGO_ENABLED=0 is in env or in the command's
// words, and to rustc, node and python3 (linker, native extensions).
//
// What is recorded is what a rebuild checks before replaying; the outputs'
// digests are compared whatever is recorded, so a toolchain left out here
// costs a rebuild an early, named diagnosis, not a check.
func relevantToolchains(dir, root string, command, env []string) map[string]bool {
	got := map[string]bool{}
	words := commandWords(dir, command)
	for w := range words {
		name := filepath.Base(w)
		if _, ok := toolchainWords[name]; !ok && strings.HasPrefix(name, "python3.") {
			name = "python3"
		}
		for _, t := range toolchainWords[name] {
			got[t] = true
		}
	}
	for d := dir; ; {
		for marker, ts := range toolchainMarkers {
			if fi, err := os.Stat(filepath.Join(d, marker)); err == nil && fi.Mode().IsRegular() {
				for _, t := range ts {
					got[t] = true
				}
			}
		}
		if root == "" || d == root {
			break
		}
		parent := filepath.Dir(d)
		if rel, err := filepath.Rel(root, parent); err != nil || !filepath.IsLocal(rel) && rel != "." {
			break
		}
		d = parent
	}
	if len(got) == 0 {
		return nil
	}
	noCgo := words["CGO_ENABLED=0"]
	for _, kv := range env {
		if kv == "CGO_ENABLED=0" {
			noCgo = true
		}
	}
	if got["go"] && !noCgo || got["rustc"] || got["node"] || got["python3"] {
		got["gcc"] = true
	}
	return got
}

// commandWords splits the command's arguments, and the scripts below dir
// they name (and those scripts name, up to maxScripts), into words.
func commandWords(dir string, command []string) map[string]bool {
	words := map[string]bool{}
	var queue []string
	add := func(s string) {
		for _, w := range strings.FieldsFunc(s, isWordSep) {
			if words[w] {
				continue
			}
			words[w] = true
			if filepath.IsLocal(w) {
				queue = append(queue, w)
			}
		}
	}
	for _, a := range command {
		add(a)
	}
	for read := 0; len(queue) > 0 && read < maxScripts; {
		name := queue[0]
		queue = queue[1:]
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			continue
		}
		read++
		b, _ := io.ReadAll(io.LimitReader(f, maxScriptBytes))
		f.Close()
		add(string(b))
	}
	return words
}

// isWordSep separates command words: anything but letters, digits and the
// punctuation of file names, paths and KEY=VALUE assignments.
func isWordSep(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("._-+/=", r)
}

// toolchainDetection is a running detection; wait returns its result.
type toolchainDetection struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	got map[string]string
}

// toolchainNames are the names of relevant (relevantToolchains's
// result), all known toolchains when it is nil.
func toolchainNames(relevant map[string]bool) []string {
	var out []string
	for _, p := range toolchainProbes {
		if relevant == nil || relevant[p.name] {
			out = append(out, p.name)
		}
	}
	return out
}

// startToolchainDetection probes, concurrently and in dir with env while
// the build runs, the toolchains on PATH that the command could use
// (relevant, from relevantToolchains; all of them when nil).
func startToolchainDetection(ctx context.Context, dir string, relevant map[string]bool, env []string) *toolchainDetection {
	d := &toolchainDetection{}
	for _, p := range toolchainProbes {
		if relevant != nil && !relevant[p.name] {
			continue
		}
		path, err := exec.LookPath(p.name)
		if err != nil {
			continue
		}
		d.wg.Go(func() {
			v := probeVersion(ctx, path, p.args, dir, env)
			if v == "" {
				return
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.got == nil {
				d.got = make(map[string]string)
			}
			d.got[p.name] = v
		})
	}
	return d
}

func (d *toolchainDetection) wait() map[string]string {
	d.wg.Wait()
	return d.got
}

// probeVersion returns the first line the tool prints, or "" on failure.
func probeVersion(ctx context.Context, path string, args []string, dir string, env []string) string {
	ctx, cancel := context.WithTimeout(ctx, toolchainTimeout)
	defer cancel()
	cmd := childenv.Command(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = childenv.Filter(env)
	return RunVersionProbe(cmd)
}

// VersionArgs are the arguments that make toolchain name print its version
// on the first line, as build records it; ok is false for a toolchain
// custody does not probe.
func VersionArgs(name string) (args []string, ok bool) {
	for _, p := range toolchainProbes {
		if p.name == name {
			return p.args, true
		}
	}
	return nil, false
}

// RunVersionProbe runs cmd (a toolchain with its VersionArgs, bound by a
// context with a deadline) and returns its version as build records it:
// the first non-empty line of the combined output, trimmed, at most 200
// bytes, valid UTF-8. It returns "" when the command fails. A rebuild
// probes through this too, so both sides compare the same string.
func RunVersionProbe(cmd *exec.Cmd) string {
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return ""
	}
	line := firstLine(string(out))
	const max = 200
	if len(line) > max {
		line = line[:max]
	}
	return strings.ToValidUTF8(line, "")
}

package sandbox

import (
	"os"
	"path/filepath"
	"strings"
)

// ToolPaths returns the host paths a sandbox must show, read-only, for the
// programs names (toolchains: go, node, gcc …) found on path (a PATH
// value) to run: for a program in DIR/bin (/usr/local/go/bin/go,
// /opt/node/bin/node) the whole installation DIR, else the directory
// holding it; the same for the target when the program is a symlink.
// Inside a home directory only the program's own directory is shown:
// toolchain managers that live there (pyenv, rustup) need their root
// passed explicitly (custody rebuild --env PYENV_ROOT). Programs not
// found are skipped: the sandboxed command will not find them either.
func ToolPaths(names []string, path string) []string {
	var out []string
	for _, name := range names {
		p := lookPath(name, path)
		if p == "" {
			continue
		}
		out = append(out, installDir(p))
		if t, err := filepath.EvalSymlinks(p); err == nil && t != p {
			out = append(out, installDir(t))
		}
	}
	return out
}

// lookPath finds name in the absolute directories of path, as
// exec.LookPath does with $PATH.
func lookPath(name, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue // a relative PATH entry would name the sandbox's own directory
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// installDir is the directory to show for the program at p: its
// installation (DIR for DIR/bin/NAME) outside home directories; inside
// one, only the directory holding it (a home's ~/.cargo holds registry
// credentials beside bin/, and whatever the sandbox can read, its outputs
// can carry away).
func installDir(p string) string {
	dir := filepath.Dir(p)
	if filepath.Base(dir) != "bin" || inHome(dir) {
		return dir
	}
	root := filepath.Dir(dir)
	if strings.Count(root, "/") < 2 {
		return dir // /opt/bin: not one installation
	}
	return root
}

// inHome reports whether p is in a home directory: $HOME, /root, /home/*.
func inHome(p string) bool {
	home, _ := os.UserHomeDir()
	return home != "" && home != "/" && within(p, home) || within(p, "/root") || within(p, "/home")
}

// PathValues returns the absolute paths named by the values of the
// variables of env (KEY=VALUE) whose names are in names: a cache the user
// passed explicitly (GOCACHE=/home/u/.cache/go-build). A value may be a
// list (GOPATH=/a:/b).
func PathValues(env []string, names func(string) bool) []string {
	var out []string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !names(k) {
			continue
		}
		for _, p := range filepath.SplitList(v) {
			if filepath.IsAbs(p) {
				out = append(out, filepath.Clean(p))
			}
		}
	}
	return out
}

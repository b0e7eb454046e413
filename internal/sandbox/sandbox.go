// Package sandbox runs untrusted commands (a recorded build replayed by
// `custody rebuild`, `custody build --hermetic`, the toolchain version
// probes and diffoscope) inside bubblewrap
// (https://github.com/containers/bubblewrap, Debian package bubblewrap).
//
// A sandboxed command gets new user, mount, PID, network, IPC, UTS and
// cgroup namespaces, no capabilities (also when custody runs as root),
// no_new_privs, a seccomp filter (seccomp.go), a fresh /proc and a minimal
// /dev, an empty /tmp and HOME, a read-only view of the base system (Base)
// and of the paths the caller declares, and read-write access to one
// directory only. Nothing of the host's /proc, /home, /root, /run, /var,
// sockets or custody's own files is visible, and every process in the
// sandbox is killed when the command ends, when the context is cancelled or
// when custody exits. Why bubblewrap and not an OCI runtime:
// docs/sandbox.md.
//
// There is no fallback: when bwrap is missing or the kernel refuses its
// namespaces, Command and Check return an error wrapping ErrUnavailable.
package sandbox

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnavailable is wrapped by the errors of Check and Command when the
// machine cannot provide the sandbox: bwrap is not installed, the kernel
// refuses user namespaces, or the CPU architecture has no seccomp filter.
// The error's text says which.
var ErrUnavailable = errors.New("sandbox unavailable")

// HomeDir is HOME inside the sandbox: an empty directory on the sandbox's
// own tmpfs /tmp.
const HomeDir = "/tmp/home"

// Config says what a sandboxed command sees.
type Config struct {
	// Dir is the one directory the command may write (for a rebuild, the
	// fresh clone). Absolute; it appears at the same path inside.
	// Required.
	Dir string
	// WorkDir is the command's working directory, inside Dir (Dir when
	// empty).
	WorkDir string
	// ReadOnly are further absolute paths (files or directories) the
	// command sees read-only at the same path: the declared toolchains,
	// caches the user passed explicitly. Paths the base system already
	// shows, and paths that do not exist, are skipped; "/" and the host's
	// kernel and runtime trees (/proc, /sys, /dev, /run) are refused.
	ReadOnly []string
	// ReadWrite are further absolute paths the command may write, checked
	// as ReadOnly: a cache the user passed for its own build.
	ReadWrite []string
	// Env is the command's whole environment (KEY=VALUE). Nothing of
	// custody's own environment is added. HOME defaults to HomeDir.
	Env []string
}

// Base are the host paths every sandbox shows read-only: what programs and
// the dynamic loader need. A top-level directory that is a symlink on the
// host (/bin -> usr/bin on merged-/usr systems) is recreated as the same
// symlink. Missing ones are skipped.
var Base = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
}

// hiddenConfig are trees under /usr that Base would show but the sandbox
// covers with an empty read-only tmpfs: configuration of software
// installed under /usr (npm's global npmrc, pip.conf …, which can hold
// registry tokens), as the host's /etc is not shown; and all of
// /usr/local, where a rebuilder's locally installed programs live — a
// shipped artifact installed there could otherwise be found and copied
// into place, faking an independent rebuild. Declared toolchains under
// them (/usr/local/go) are shown again, read-only, on top.
var hiddenConfig = []string{"/usr/etc", "/usr/local"}

// shownByBase reports whether p is visible through Base: under it and not
// under a hidden tree.
func shownByBase(p string) bool {
	for _, h := range hiddenConfig {
		if within(p, h) {
			return false
		}
	}
	return underBase(p)
}

// forbidden are host trees never shown, even when declared.
var forbidden = []string{"/proc", "/sys", "/dev", "/run", "/var/run"}

// underBase reports whether p is shown by Base already.
func underBase(p string) bool {
	for _, b := range Base {
		if within(p, b) {
			return true
		}
	}
	return false
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// bind is a host path (source, symlinks resolved) shown at dest.
type bind struct{ src, dest string }

// checkReadOnly returns the binds the paths of ro need, de-duplicated and
// sorted by destination, or an error for a path that may never be shown.
// Symlinks are resolved on the host, so a declared path cannot lead the
// sandbox to a tree it must not see.
func checkReadOnly(ro []string) ([]bind, error) {
	var out []bind
	for _, p := range ro {
		if !filepath.IsAbs(p) {
			return nil, errors.New("read-only path " + p + " is not absolute")
		}
		p = filepath.Clean(p)
		src, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue // missing: nothing to show
		}
		for _, q := range []string{p, src} {
			if q == "/" {
				return nil, errors.New("the host's root directory cannot be shown in the sandbox")
			}
			for _, f := range forbidden {
				if within(q, f) {
					return nil, errors.New("the host's " + f + " cannot be shown in the sandbox (" + p + ")")
				}
			}
		}
		if shownByBase(p) && shownByBase(src) {
			continue
		}
		out = append(out, bind{src: src, dest: p})
	}
	slices.SortFunc(out, func(a, b bind) int { return strings.Compare(a.dest, b.dest) })
	return slices.CompactFunc(out, func(a, b bind) bool { return a.dest == b.dest }), nil
}

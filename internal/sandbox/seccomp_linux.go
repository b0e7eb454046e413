package sandbox

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter bwrap installs (--seccomp) before it runs the
// command, a classic BPF program over struct seccomp_data
// (https://docs.kernel.org/userspace-api/seccomp_filter.html):
//
//   - a system call of another ABI (the 32-bit one, and x32 on amd64) fails
//     with EPERM: the filter, like the kernel's own checks, is written for
//     the native ABI only;
//   - clone with any CLONE_NEW* namespace flag fails with EPERM, and clone3,
//     whose flags the filter cannot read, with ENOSYS, so that the C
//     library falls back to clone;
//   - personality is allowed only to read the persona (0xffffffff) or set
//     the default one (PER_LINUX): no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC;
//   - a call that would give a file the set-user-ID or set-group-ID bit
//     (chmod, fchmod, fchmodat, fchmodat2, open, openat, creat, mknod,
//     mknodat with S_ISUID or S_ISGID in its mode) fails with EPERM:
//     when custody runs as root the sandbox's user is root on the host's
//     files, and such a file left in the writable directory would run as
//     root for any local user; openat2, whose mode the filter cannot read,
//     fails with ENOSYS, so that the C library falls back to openat;
//   - the calls of deniedSyscalls (and archDenied) fail with EPERM;
//   - everything else is allowed.
const (
	seccompRetAllow = 0x7fff0000
	seccompRetErrno = 0x00050000

	offNr   = 0  // seccomp_data.nr
	offArch = 4  // seccomp_data.arch
	offArg0 = 16 // low 32 bits of seccomp_data.args[0] (little-endian); args[i] is 8*i further

	setIDBits = unix.S_ISUID | unix.S_ISGID

	personaQuery = 0xffffffff
	perLinux     = 0 // PER_LINUX

	cloneNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
		unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
)

// deniedSyscalls fail with EPERM in the sandbox: tracing and reading other
// processes, mounts, namespaces, kernel keyrings, eBPF, modules, kexec,
// perf, userfaultfd, io_uring (which bypasses the filter), clocks,
// swap and reboot, file handles that can name files outside the mount
// namespace.
var deniedSyscalls = []uint32{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP, unix.SYS_PIDFD_GETFD,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD, unix.SYS_FANOTIFY_INIT,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_ADJTIMEX, unix.SYS_CLOCK_ADJTIME,
	unix.SYS_SYSLOG, unix.SYS_VHANGUP, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
}

// modeSyscall is a call that sets a file's mode, and which argument holds it.
type modeSyscall struct{ nr, arg uint32 }

// modeSyscalls are the calls of every architecture that set a file's mode
// (archModeSyscalls has the older ones some still have).
var modeSyscalls = []modeSyscall{
	{unix.SYS_FCHMOD, 1}, {unix.SYS_FCHMODAT, 2}, {unix.SYS_FCHMODAT2, 2},
	{unix.SYS_OPENAT, 3}, {unix.SYS_MKNODAT, 2},
}

// asm is a small assembler: jumps name labels, resolved to skips at the end.
type asm struct {
	ins    []bpf.Instruction
	jumps  map[int][2]string // instruction index -> labels of the true and false branches ("" = next)
	labels map[string]int
}

func (a *asm) add(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *asm) label(name string) { a.labels[name] = len(a.ins) }

func (a *asm) jump(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	a.jumps[len(a.ins)] = [2]string{ifTrue, ifFalse}
	a.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	skip := func(from int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := a.labels[label]
		if !ok || to <= from || to-from-1 > 255 {
			return 0, fmt.Errorf("seccomp filter: bad jump from %d to %q", from, label)
		}
		return uint8(to - from - 1), nil
	}
	for i, l := range a.jumps {
		j := a.ins[i].(bpf.JumpIf)
		var err error
		if j.SkipTrue, err = skip(i, l[0]); err != nil {
			return nil, err
		}
		if j.SkipFalse, err = skip(i, l[1]); err != nil {
			return nil, err
		}
		a.ins[i] = j
	}
	return a.ins, nil
}

// filter returns the filter's instructions for the native ABI.
func filter() ([]bpf.Instruction, error) {
	if nativeArch == 0 {
		return nil, fmt.Errorf("%w: no seccomp filter for this CPU architecture", ErrUnavailable)
	}
	a := &asm{jumps: map[int][2]string{}, labels: map[string]int{}}
	a.add(bpf.LoadAbsolute{Off: offArch, Size: 4})
	a.jump(bpf.JumpEqual, nativeArch, "", "deny")
	a.add(bpf.LoadAbsolute{Off: offNr, Size: 4})
	if x32Bit != 0 {
		a.jump(bpf.JumpGreaterOrEqual, x32Bit, "deny", "")
	}
	a.jump(bpf.JumpEqual, unix.SYS_CLONE3, "enosys", "")
	a.jump(bpf.JumpEqual, unix.SYS_CLONE, "clone", "")
	a.jump(bpf.JumpEqual, unix.SYS_PERSONALITY, "personality", "")
	a.jump(bpf.JumpEqual, unix.SYS_OPENAT2, "enosys", "")
	for _, m := range append(modeSyscalls, archModeSyscalls...) {
		a.jump(bpf.JumpEqual, m.nr, fmt.Sprintf("mode%d", m.arg), "")
	}
	for _, nr := range append(deniedSyscalls, archDenied...) {
		a.jump(bpf.JumpEqual, nr, "deny", "")
	}
	a.add(bpf.RetConstant{Val: seccompRetAllow})

	a.label("clone")
	a.add(bpf.LoadAbsolute{Off: offArg0, Size: 4})
	a.jump(bpf.JumpBitsSet, cloneNamespaces, "deny", "")
	a.add(bpf.RetConstant{Val: seccompRetAllow})

	for arg := uint32(1); arg <= 3; arg++ {
		a.label(fmt.Sprintf("mode%d", arg))
		a.add(bpf.LoadAbsolute{Off: offArg0 + 8*arg, Size: 4})
		a.jump(bpf.JumpBitsSet, setIDBits, "deny", "")
		a.add(bpf.RetConstant{Val: seccompRetAllow})
	}

	a.label("personality")
	a.add(bpf.LoadAbsolute{Off: offArg0, Size: 4})
	a.jump(bpf.JumpEqual, personaQuery, "allow", "")
	a.jump(bpf.JumpEqual, perLinux, "allow", "deny")
	a.label("allow")
	a.add(bpf.RetConstant{Val: seccompRetAllow})

	a.label("deny")
	a.add(bpf.RetConstant{Val: seccompRetErrno | uint32(unix.EPERM)})
	a.label("enosys")
	a.add(bpf.RetConstant{Val: seccompRetErrno | uint32(unix.ENOSYS)})
	return a.resolve()
}

var (
	progOnce sync.Once
	progData []byte
	progErr  error
)

// seccompProgram returns the filter as the array of struct sock_filter
// bwrap reads from its --seccomp file descriptor.
func seccompProgram() ([]byte, error) {
	progOnce.Do(func() {
		ins, err := filter()
		if err != nil {
			progErr = err
			return
		}
		raw, err := bpf.Assemble(ins)
		if err != nil {
			progErr = fmt.Errorf("seccomp filter: %w", err)
			return
		}
		for _, r := range raw {
			progData = binary.NativeEndian.AppendUint16(progData, r.Op)
			progData = append(progData, r.Jt, r.Jf)
			progData = binary.NativeEndian.AppendUint32(progData, r.K)
		}
	})
	return progData, progErr
}

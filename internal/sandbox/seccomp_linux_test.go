package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData lays out struct seccomp_data for x/net/bpf's VM, which loads
// words big-endian: each 32-bit field is written that way, so the program
// sees the values the kernel would give it.
func seccompData(arch, nr uint32, arg0 uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNr:], nr)
	binary.BigEndian.PutUint32(b[offArch:], arch)
	binary.BigEndian.PutUint32(b[offArg0:], uint32(arg0))
	binary.BigEndian.PutUint32(b[offArg0+4:], uint32(arg0>>32))
	return b
}

// TestFilter runs the filter on the calls a sandboxed command could make,
// including those a test cannot issue for real (the 32-bit ABI, clone into
// new namespaces).
func TestFilter(t *testing.T) {
	ins, err := filter()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow  = seccompRetAllow
		eperm  = seccompRetErrno | uint32(unix.EPERM)
		enosys = seccompRetErrno | uint32(unix.ENOSYS)
	)
	for _, tc := range []struct {
		name string
		arch uint32
		nr   uint32
		arg0 uint64
		want uint32
	}{
		{"read", nativeArch, unix.SYS_READ, 0, allow},
		{"execve", nativeArch, unix.SYS_EXECVE, 0, allow},
		{"fork-like clone", nativeArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD, allow},
		{"clone into a user namespace", nativeArch, unix.SYS_CLONE, unix.CLONE_NEWUSER, eperm},
		{"clone into a network namespace", nativeArch, unix.SYS_CLONE, unix.CLONE_NEWNET | 17, eperm},
		{"clone3", nativeArch, unix.SYS_CLONE3, 0, enosys},
		{"ptrace", nativeArch, unix.SYS_PTRACE, 0, eperm},
		{"mount", nativeArch, unix.SYS_MOUNT, 0, eperm},
		{"umount2", nativeArch, unix.SYS_UMOUNT2, 0, eperm},
		{"unshare", nativeArch, unix.SYS_UNSHARE, 0, eperm},
		{"setns", nativeArch, unix.SYS_SETNS, 0, eperm},
		{"keyctl", nativeArch, unix.SYS_KEYCTL, 0, eperm},
		{"add_key", nativeArch, unix.SYS_ADD_KEY, 0, eperm},
		{"bpf", nativeArch, unix.SYS_BPF, 0, eperm},
		{"kexec_load", nativeArch, unix.SYS_KEXEC_LOAD, 0, eperm},
		{"init_module", nativeArch, unix.SYS_INIT_MODULE, 0, eperm},
		{"finit_module", nativeArch, unix.SYS_FINIT_MODULE, 0, eperm},
		{"perf_event_open", nativeArch, unix.SYS_PERF_EVENT_OPEN, 0, eperm},
		{"userfaultfd", nativeArch, unix.SYS_USERFAULTFD, 0, eperm},
		{"personality ADDR_NO_RANDOMIZE", nativeArch, unix.SYS_PERSONALITY, addrNoRandomize, eperm},
		{"personality READ_IMPLIES_EXEC", nativeArch, unix.SYS_PERSONALITY, 0x0400000, eperm},
		{"personality query", nativeArch, unix.SYS_PERSONALITY, 0xffffffff, allow},
		{"personality PER_LINUX", nativeArch, unix.SYS_PERSONALITY, 0, allow},
		{"openat2", nativeArch, unix.SYS_OPENAT2, 0, enosys},
		{"fchmod 0755", nativeArch, unix.SYS_FCHMOD, 0, allow},
		{"openat", nativeArch, unix.SYS_OPENAT, 0, allow},
		{"32-bit ABI read", unix.AUDIT_ARCH_I386, 3, 0, eperm},
		{"32-bit ABI on arm", unix.AUDIT_ARCH_ARM, 3, 0, eperm},
	} {
		got, err := vm.Run(seccompData(tc.arch, tc.nr, tc.arg0))
		if err != nil {
			t.Fatal(err)
		}
		if uint32(got) != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
	if x32Bit != 0 {
		if got, _ := vm.Run(seccompData(nativeArch, unix.SYS_READ|x32Bit, 0)); uint32(got) != eperm {
			t.Errorf("x32 read: %#x", got)
		}
	}
	prog, err := seccompProgram()
	if err != nil || len(prog) != 8*len(ins) {
		t.Fatalf("program: %d bytes for %d instructions, %v", len(prog), len(ins), err)
	}
}

// addrNoRandomize is the ADDR_NO_RANDOMIZE persona flag (linux/personality.h).
const addrNoRandomize = 0x0040000

//go:build linux

package sandbox

import "golang.org/x/sys/unix"

// nativeArch is the AUDIT_ARCH of the native system call ABI.
const nativeArch = unix.AUDIT_ARCH_X86_64

// x32Bit marks x32 ABI system call numbers (__X32_SYSCALL_BIT).
const x32Bit = 0x40000000

// archDenied are amd64-only calls denied besides deniedSyscalls: port I/O
// and the obsolete uselib.
var archDenied = []uint32{unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_USELIB, unix.SYS_LOOKUP_DCOOKIE}

// archModeSyscalls are amd64's older calls that set a file's mode.
var archModeSyscalls = []modeSyscall{
	{unix.SYS_CHMOD, 1}, {unix.SYS_OPEN, 2}, {unix.SYS_CREAT, 1}, {unix.SYS_MKNOD, 1},
}

//go:build linux

package sandbox

import "golang.org/x/sys/unix"

// nativeArch is the AUDIT_ARCH of the native system call ABI.
const nativeArch = unix.AUDIT_ARCH_AARCH64

// x32Bit is 0: arm64 has no x32 ABI.
const x32Bit = 0

var archDenied = []uint32{unix.SYS_LOOKUP_DCOOKIE}

// archModeSyscalls is empty: arm64 has only the *at calls.
var archModeSyscalls []modeSyscall

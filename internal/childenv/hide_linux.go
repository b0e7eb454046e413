package childenv

import "syscall"

// hideEnviron makes custody's own /proc/PID files (environ, where its
// secrets still are; mem; fd) unreadable to the processes it starts when
// they run as the same user: PR_SET_DUMPABLE 0 (prctl(2)) makes the kernel
// require CAP_SYS_PTRACE for them. A child running as root keeps that
// capability; the sandbox (internal/sandbox) drops it. A child's own
// dumpable flag is reset by execve, so only custody is affected (it also
// writes no core dump, which would hold its keys).
func hideEnviron() {
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0)
}

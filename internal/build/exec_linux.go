package build

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// hermeticAttr starts the command in a new network namespace, inside a new
// user namespace (mapping the caller's uid and gid) when not root.
func hermeticAttr() (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	return attr, nil
}

// isNamespaceRefusal reports whether a start error is the kernel refusing
// the namespaces (rather than, say, a missing executable).
func isNamespaceRefusal(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EPERM, syscall.EINVAL, syscall.ENOSPC, syscall.EUSERS, syscall.ENOSYS:
		return true
	}
	return false
}

// namespaceRefusalReason explains, from the kernel's settings where it can,
// why a namespace could not be created.
func namespaceRefusalReason(err error) string {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if os.Geteuid() != 0 {
		if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
			return "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)"
		}
		if read("/proc/sys/user/max_user_namespaces") == "0" {
			return "user namespaces are disabled (sysctl user.max_user_namespaces=0)"
		}
		if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
			return "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
		}
	}
	if read("/proc/sys/user/max_net_namespaces") == "0" {
		return "network namespaces are disabled (sysctl user.max_net_namespaces=0)"
	}
	return fmt.Sprintf("the kernel refused a new network namespace (%v); a container may need CAP_SYS_ADMIN or a seccomp profile allowing unshare", err)
}

//go:build !linux

package build

import (
	"fmt"
	"runtime"
	"syscall"
)

func hermeticAttr() (*syscall.SysProcAttr, error) {
	return nil, fmt.Errorf("%w: network namespaces need Linux, not %s", ErrHermeticUnavailable, runtime.GOOS)
}

func isNamespaceRefusal(error) bool { return false }

func namespaceRefusalReason(err error) string { return err.Error() }

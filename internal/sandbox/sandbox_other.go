//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
)

// Command fails on systems other than Linux: bubblewrap needs Linux
// namespaces.
func Command(context.Context, Config, []string) (*exec.Cmd, func(), error) {
	return nil, nil, Check()
}

// Check reports that the sandbox needs Linux.
func Check() error {
	return fmt.Errorf("%w: bubblewrap needs Linux, not %s", ErrUnavailable, runtime.GOOS)
}

// Version returns "": there is no bubblewrap here.
func Version() string { return "" }

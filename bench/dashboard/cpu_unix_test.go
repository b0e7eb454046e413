//go:build unix

package dashboard

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) the process has used so far:
// around one render, the CPU the page cost, whatever else the machine
// runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

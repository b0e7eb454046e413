// Package gcpolicy sets the garbage collector of a process that verifies
// once and exits (custody-verify, custody verify): no proportional
// collection (GOGC=off) and a memory limit as the safety net, the mode the
// Go GC guide describes in https://go.dev/doc/gc-guide#Memory_limit.
//
// Such a process allocates a few megabytes and exits within tens of
// milliseconds; with the default GOGC=100 it runs one collection at the
// 4 MB heap goal, which starts the GC workers and costs about a tenth of
// its CPU to free memory the exit frees anyway. Under the limit
// nothing is collected; a hostile or huge input (a bundle up to
// verify.MaxBundleBytes, a pack up to pack.MaxBytes) is still collected
// once the heap reaches the limit instead of growing without bound.
package gcpolicy

import (
	"os"
	"runtime/debug"
)

// MemoryLimit is the soft limit (runtime/debug.SetMemoryLimit) of a
// short-lived verifier: 64 MiB, the largest file it reads (pack.MaxBytes).
// Verifying a real bundle allocates under 10 MiB in all, a pack of a few
// bundles not much more, so they never collect. A bundle of
// verify.MaxBundleBytes keeps about 90 MiB live at its peak: over the
// limit the runtime collects continuously, at most half the CPU (its GC
// CPU limiter), and peaks lower than the default GOGC=100 would
// (docs/edge.md has the figures).
const MemoryLimit = 64 << 20

// ShortLived turns proportional collection off and sets MemoryLimit,
// unless the environment sets GOGC or GOMEMLIMIT: then the runtime keeps
// what it read from them at start, so a small device can choose (say
// GOMEMLIMIT=24MiB, or GOGC=100 for the default). It reports whether it
// changed the collector. Call it first in main, and only in a command that
// exits after one verification, never in a server.
func ShortLived() bool {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	// The limit first: at no moment is collection off without it.
	debug.SetMemoryLimit(MemoryLimit)
	debug.SetGCPercent(-1)
	return true
}

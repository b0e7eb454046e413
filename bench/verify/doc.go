// Package verifybench measures custody's in-process bundle verification
// (package verify) against the bare ECDSA P-256 signature check it wraps.
// It holds benchmarks only; see README.md for how to run them and the
// numbers measured.
package verifybench

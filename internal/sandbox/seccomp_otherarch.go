//go:build linux && !amd64 && !arm64

package sandbox

// No filter is written for other architectures: Check fails closed.
const nativeArch, x32Bit = 0, 0

var archDenied []uint32

var archModeSyscalls []modeSyscall

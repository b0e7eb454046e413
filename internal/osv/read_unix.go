//go:build unix

package osv

import (
	"fmt"
	"slices"
	"syscall"
)

// readEntry reads the file at path into buf's storage (grown as needed;
// the result is only valid until the next call with it) with bare system
// calls: an OSV database is tens of thousands of 1 KB files, where
// os.Open's poller set-up and finalizer cost more than the read itself.
// O_NONBLOCK keeps a FIFO put in place of a file from blocking the load.
func readEntry(path string, buf []byte) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return buf, fmt.Errorf("open %s: %w", path, err)
	}
	defer syscall.Close(fd)
	buf = buf[:cap(buf)]
	n := 0
	for {
		if n > MaxEntryBytes {
			return buf, fmt.Errorf("entry is larger than %d bytes", MaxEntryBytes)
		}
		if n == len(buf) {
			buf = slices.Grow(buf, max(n, 16<<10))
			buf = buf[:cap(buf)]
		}
		m, err := syscall.Read(fd, buf[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return buf, fmt.Errorf("read %s: %w", path, err)
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
}

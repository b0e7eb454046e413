//go:build unix

package pack

import (
	"os"
	"syscall"
)

// lockState takes an exclusive flock(2) on the state's lock file and
// returns its release: a device's runs record one at a time.
func lockState(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing releases the lock
}

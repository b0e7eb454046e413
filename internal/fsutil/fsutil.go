// Package fsutil writes files so that a crash never leaves a half-written
// one behind: through a temporary file in the same directory and a rename.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data (mode applies to the new file):
// readers see the old file or the new one, never a mix. It does not sync;
// use WriteFileDurable for files that must survive a power loss.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, false)
}

// WriteFileDurable is WriteFileAtomic that also syncs the file and its
// directory before returning, so an acknowledged write survives a crash.
func WriteFileDurable(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, true)
}

func write(path string, data []byte, mode os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	if durable {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir syncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("couldn't sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("couldn't sync %s: %w", dir, err)
	}
	return nil
}

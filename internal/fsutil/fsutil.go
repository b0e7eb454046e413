// Package fsutil writes files so that a crash never leaves a half-written
// one behind: through a temporary file in the same directory and a rename
// (or, to create a file only if it does not exist, a link). It is custody's
// one implementation of this; write files this way only through it.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
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
	tmp, err := writeTemp(path, data, mode, durable)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	if durable {
		return SyncDir(filepath.Dir(path))
	}
	return nil
}

// CreateFileDurable creates path holding data (with mode) unless a file of
// that name exists, and reports whether it did: readers never see a partly
// written file, and of two concurrent callers exactly one creates it. The
// file and its directory are synced before it returns true.
func CreateFileDurable(path string, data []byte, mode os.FileMode) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	tmp, err := writeTemp(path, data, mode, true)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("couldn't create %s: %w", path, err)
	}
	return true, SyncDir(filepath.Dir(path))
}

// writeTemp writes data to a new temporary file (mode) beside path and
// returns its name; with sync, the file is synced.
func writeTemp(path string, data []byte, mode os.FileMode, sync bool) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("couldn't write %s: %w", path, err)
	}
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("couldn't write %s: %w", path, err)
	}
	return f.Name(), nil
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

package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/custody-dev/custody/internal/tokenfile"
)

// privateFiles are the files directly in the data directory that must be
// readable by the server's user only: the SQLite index (with its WAL and
// shared-memory files, which SQLite creates with the index's mode), the API
// token hashes and meta.json.
var privateFiles = []string{"index.db", "index.db-wal", "index.db-shm", tokenfile.File, "meta.json"}

// tightenDataDir makes the data directory 0700 and its private files 0600,
// also when they already existed with wider modes (a directory created as
// 0755 by hand or by an older custody), and creates an empty index.db as
// 0600 so SQLite never creates it with the umask's mode. Each change is
// logged as a warning naming the path and its old mode. With the directory
// 0700, nothing below it (keys, log, journal, policies) is reachable by
// other local users whatever its own mode.
func tightenDataDir(dir string, sqlite bool, logger *slog.Logger) error {
	if err := tighten(dir, true, logger); err != nil {
		return err
	}
	if sqlite {
		f, err := os.OpenFile(filepath.Join(dir, "index.db"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("couldn't create the index: %w", err)
		}
		f.Close()
	}
	for _, name := range privateFiles {
		if err := tighten(filepath.Join(dir, name), false, logger); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// tighten removes the group and other permission bits of path, following
// a symlink only with follow (the data directory may be one); a symlinked
// file is left alone (its target is not custody's to change).
func tighten(path string, follow bool, logger *slog.Logger) error {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	old := fi.Mode().Perm()
	if old&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, old&^0o077); err != nil {
		return fmt.Errorf("couldn't restrict %s to its owner: %w", path, err)
	}
	logger.Warn("data file was readable by other local users; restricted it to its owner",
		"path", path, "was", fmt.Sprintf("%04o", old), "now", fmt.Sprintf("%04o", old&^0o077))
	return nil
}

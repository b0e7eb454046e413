package tlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// history keeps what the log adds to Tessera's storage: every checkpoint
// it published, by size, and the witness cosignatures of each. The POSIX
// log keeps them in files under Options.Dir; the MySQL log in two tables
// of its database, so every replica reads what any of them wrote.
type history interface {
	// putCheckpoint stores the signed checkpoint of size unless one is
	// stored, reporting whether it wrote.
	putCheckpoint(ctx context.Context, size uint64, signed []byte) (bool, error)
	// checkpoint returns the stored checkpoint of size (fs.ErrNotExist).
	checkpoint(ctx context.Context, size uint64) ([]byte, error)
	// sizes lists the sizes of the stored checkpoints.
	sizes(ctx context.Context) ([]uint64, error)
	// putCosignature stores a cosignature line of size under key unless
	// one is stored there.
	putCosignature(ctx context.Context, size uint64, key string, line []byte) error
	// cosignatures returns the cosignature lines of size, in key order.
	cosignatures(ctx context.Context, size uint64) ([]byte, error)
	// witnessed returns the largest size with cosignature lines under at
	// least k keys among the newest witnessedWindow cosigned sizes, and
	// false if there is none.
	witnessed(ctx context.Context, k int) (uint64, bool, error)
}

// witnessedWindow bounds the search of GET /checkpoint?witnessed=K, which
// anyone may ask: only the newest witnessedWindow checkpoints with
// cosignatures are looked at, so a K no checkpoint meets costs a bounded
// read, not a scan of every cosignature the log ever stored. Witnesses
// that fell further behind than that are of no use to a client anyway.
var witnessedWindow = 1024

// fileHistory is the history of a POSIX log: DIR/checkpoints/SIZE and
// DIR/cosignatures/SIZE/KEY.
type fileHistory struct{ dir string }

func (h fileHistory) checkpointPath(size uint64) string {
	return filepath.Join(h.dir, "checkpoints", strconv.FormatUint(size, 10))
}

func (h fileHistory) cosignatureDir(size uint64) string {
	return filepath.Join(h.dir, "cosignatures", strconv.FormatUint(size, 10))
}

func (h fileHistory) putCheckpoint(_ context.Context, size uint64, signed []byte) (bool, error) {
	return writeIfAbsent(h.checkpointPath(size), signed)
}

func (h fileHistory) checkpoint(_ context.Context, size uint64) ([]byte, error) {
	return os.ReadFile(h.checkpointPath(size))
}

func (h fileHistory) sizes(context.Context) ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(h.dir, "checkpoints"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

func (h fileHistory) putCosignature(_ context.Context, size uint64, key string, line []byte) error {
	_, err := writeIfAbsent(filepath.Join(h.cosignatureDir(size), key), line)
	return err
}

func (h fileHistory) cosignatures(_ context.Context, size uint64) ([]byte, error) {
	dir := h.cosignatureDir(size)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var out []byte
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return out, fmt.Errorf("cosignature %s: %w", name, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

func (h fileHistory) witnessed(_ context.Context, k int) (uint64, bool, error) {
	ents, err := os.ReadDir(filepath.Join(h.dir, "cosignatures"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var sizes []uint64
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
			sizes = append(sizes, n)
		}
	}
	slices.Sort(sizes)
	if len(sizes) > witnessedWindow {
		sizes = sizes[len(sizes)-witnessedWindow:]
	}
	for _, size := range slices.Backward(sizes) {
		keys, err := os.ReadDir(h.cosignatureDir(size))
		if err != nil {
			return 0, false, err
		}
		n := 0
		for _, e := range keys {
			if !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
		if n >= k {
			return size, true, nil
		}
	}
	return 0, false, nil
}

// sqlHistory is the history of a MySQL log, in the tables
// CustodyCheckpoints and CustodyCosignatures (mysqlSchema).
type sqlHistory struct{ db *sql.DB }

func (h sqlHistory) putCheckpoint(ctx context.Context, size uint64, signed []byte) (bool, error) {
	res, err := h.db.ExecContext(ctx, "INSERT IGNORE INTO CustodyCheckpoints (size, note) VALUES (?, ?)", size, signed)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (h sqlHistory) checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	var b []byte
	err := h.db.QueryRowContext(ctx, "SELECT note FROM CustodyCheckpoints WHERE size = ?", size).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fs.ErrNotExist
	}
	return b, err
}

func (h sqlHistory) sizes(ctx context.Context) ([]uint64, error) {
	rows, err := h.db.QueryContext(ctx, "SELECT size FROM CustodyCheckpoints ORDER BY size")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var n uint64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (h sqlHistory) putCosignature(ctx context.Context, size uint64, key string, line []byte) error {
	_, err := h.db.ExecContext(ctx, "INSERT IGNORE INTO CustodyCosignatures (size, name, line) VALUES (?, ?, ?)", size, key, line)
	return err
}

func (h sqlHistory) cosignatures(ctx context.Context, size uint64) ([]byte, error) {
	rows, err := h.db.QueryContext(ctx, "SELECT line FROM CustodyCosignatures WHERE size = ? ORDER BY name", size)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, rows.Err()
}

func (h sqlHistory) witnessed(ctx context.Context, k int) (uint64, bool, error) {
	var size uint64
	err := h.db.QueryRowContext(ctx, `SELECT c.size FROM CustodyCosignatures c
		JOIN (SELECT DISTINCT size FROM CustodyCosignatures ORDER BY size DESC LIMIT ?) newest ON c.size = newest.size
		GROUP BY c.size HAVING COUNT(*) >= ? ORDER BY c.size DESC LIMIT 1`, witnessedWindow, k).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return size, err == nil, err
}

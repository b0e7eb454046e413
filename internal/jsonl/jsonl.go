// Package jsonl keeps append-only JSON Lines files (https://jsonlines.org):
// one record per line, each record's ID its line number. Appends happen
// under an exclusive flock and are fsynced before Append returns; readers
// take a shared lock. A truncated or malformed line is an error wrapping
// File.Corrupt, never skipped: custody's deployment history and incident
// ledger must not silently lose a record.
package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/custody-dev/custody/internal/fsutil"
)

// File is one append-only JSON Lines file of records of type T.
type File[T any] struct {
	Path     string
	Name     string // what the file is, in errors: "history", "incident ledger"
	MaxBytes int
	// Corrupt is wrapped by every error about the file's content.
	Corrupt error
	// Check validates a record read from the file.
	Check func(*T) error
	// ID returns a record's ID, which must be its line number.
	ID func(*T) int64
}

// Append locks the file (creating it 0600, and its directory 0700, when
// missing), reads and checks every record, lets stamp set r's ID (the next
// line number) and anything else decided at append time, appends r and
// syncs the file (and the directory when the file is new).
func (f File[T]) Append(r *T, stamp func(r *T, id int64)) error {
	return f.AppendAll([]*T{r}, stamp)
}

// AppendAll is Append for several records: under one lock it stamps them
// with consecutive IDs, appends them in one write and syncs once. The
// records are encoded before anything is written, so a record that cannot
// be encoded appends none.
func (f File[T]) AppendAll(rs []*T, stamp func(r *T, id int64)) error {
	if len(rs) == 0 {
		return nil
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("couldn't create the %s directory: %w", f.Name, err)
	}
	_, statErr := os.Stat(f.Path)
	fh, err := os.OpenFile(f.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't open %s: %w", f.Name, err)
	}
	defer fh.Close()
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("couldn't lock %s %s: %w", f.Name, f.Path, err)
	}
	existing, err := f.read(fh)
	if err != nil {
		return err
	}
	var buf []byte
	for i, r := range rs {
		stamp(r, int64(len(existing)+i)+1)
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("couldn't encode %s record: %w", f.Name, err)
		}
		buf = append(append(buf, line...), '\n')
	}
	if _, err := fh.Write(buf); err != nil {
		return fmt.Errorf("couldn't append to %s %s: %w", f.Name, f.Path, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("couldn't sync %s %s: %w", f.Name, f.Path, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		return fsutil.SyncDir(dir)
	}
	return nil
}

// Read returns every record under a shared lock; none when the file does
// not exist.
func (f File[T]) Read() ([]*T, error) {
	fh, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't open %s: %w", f.Name, err)
	}
	defer fh.Close()
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_SH); err != nil {
		return nil, fmt.Errorf("couldn't lock %s %s: %w", f.Name, f.Path, err)
	}
	return f.read(fh)
}

// read reads and checks every line of fh from its start.
func (f File[T]) read(fh *os.File) ([]*T, error) {
	p := f.Path
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("couldn't read %s %s: %w", f.Name, p, err)
	}
	b, err := io.ReadAll(io.LimitReader(fh, int64(f.MaxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s %s: %w", f.Name, p, err)
	}
	if len(b) > f.MaxBytes {
		return nil, fmt.Errorf("%s %s is over %d bytes", f.Name, p, f.MaxBytes)
	}
	if len(b) == 0 {
		return nil, nil
	}
	lines := bytes.Split(b, []byte{'\n'})
	last := len(lines) - 1
	if len(lines[last]) != 0 {
		return nil, fmt.Errorf("%w: %s line %d is truncated (no newline at the end: a write was cut short); inspect it and remove or complete that line by hand",
			f.Corrupt, p, last+1)
	}
	out := make([]*T, 0, last)
	for i, line := range lines[:last] {
		r := new(T)
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(r); err != nil || dec.More() {
			return nil, fmt.Errorf("%w: %s line %d is not a record: %v", f.Corrupt, p, i+1, err)
		}
		if err := f.Check(r); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", f.Corrupt, p, i+1, err)
		}
		if id := f.ID(r); id != int64(i+1) {
			return nil, fmt.Errorf("%w: %s line %d has id %d", f.Corrupt, p, i+1, id)
		}
		out = append(out, r)
	}
	return out, nil
}

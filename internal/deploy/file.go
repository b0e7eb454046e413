package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/store"
)

// MaxHistoryBytes bounds a local history file.
const MaxHistoryBytes = 64 << 20

// FileHistory keeps each environment's history in Dir/ENV.jsonl: one JSON
// Record per line, appended under an exclusive lock (flock) and fsynced
// before Append returns. IDs are line numbers. A last line without its
// newline (a write cut short) or a line that does not parse is reported as
// ErrCorrupt by List and Append, naming the file and line; it is never
// silently dropped.
type FileHistory struct {
	Dir string
}

func (h FileHistory) path(env string) (string, error) {
	if !store.ValidEnvironment(env) {
		return "", fmt.Errorf("environment %q is not a name (letters, digits, '.', '_', '-')", env)
	}
	return filepath.Join(h.Dir, env+".jsonl"), nil
}

// Append implements History.
func (h FileHistory) Append(ctx context.Context, r *Record) (*Record, error) {
	n, err := store.CheckDeployment(r)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := h.path(n.Environment)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create history directory: %w", err)
	}
	_, statErr := os.Stat(p)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't open history: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("couldn't lock history %s: %w", p, err)
	}
	existing, err := readRecords(f, p)
	if err != nil {
		return nil, err
	}
	n.ID = int64(len(existing)) + 1
	n.RecordedAt = time.Now().UTC().Truncate(time.Microsecond)
	line, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode record: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("couldn't append to history %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("couldn't sync history %s: %w", p, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := fsutil.SyncDir(h.Dir); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// List implements History. With env "" it reads every ENV.jsonl in Dir
// and returns the records ordered by time.
func (h FileHistory) List(ctx context.Context, env string) ([]*Record, error) {
	if env == "" {
		names, err := filepath.Glob(filepath.Join(h.Dir, "*.jsonl"))
		if err != nil {
			return nil, err
		}
		var all []*Record
		for _, p := range names {
			e := strings.TrimSuffix(filepath.Base(p), ".jsonl")
			rs, err := h.List(ctx, e)
			if err != nil {
				return nil, err
			}
			all = append(all, rs...)
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
		return all, nil
	}
	p, err := h.path(env)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't open history: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		return nil, fmt.Errorf("couldn't lock history %s: %w", p, err)
	}
	rs, err := readRecords(f, p)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Environment != env {
			return nil, fmt.Errorf("%w: %s line %d is about environment %q", ErrCorrupt, p, r.ID, r.Environment)
		}
	}
	return rs, nil
}

// readRecords reads and checks every line of a history file from its start.
func readRecords(f *os.File, p string) ([]*Record, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("couldn't read history %s: %w", p, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxHistoryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read history %s: %w", p, err)
	}
	if len(b) > MaxHistoryBytes {
		return nil, fmt.Errorf("history %s is over %d bytes", p, MaxHistoryBytes)
	}
	if len(b) == 0 {
		return nil, nil
	}
	lines := bytes.Split(b, []byte{'\n'})
	last := len(lines) - 1
	if len(lines[last]) != 0 {
		return nil, fmt.Errorf("%w: %s line %d is truncated (no newline at the end: a write was cut short); inspect it and remove or complete that line by hand",
			ErrCorrupt, p, last+1)
	}
	var out []*Record
	for i, line := range lines[:last] {
		var r Record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil || dec.More() {
			return nil, fmt.Errorf("%w: %s line %d is not a record: %v", ErrCorrupt, p, i+1, err)
		}
		if _, err := store.CheckDeployment(&r); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, p, i+1, err)
		}
		if r.ID != int64(i+1) {
			return nil, fmt.Errorf("%w: %s line %d has id %d", ErrCorrupt, p, i+1, r.ID)
		}
		out = append(out, &r)
	}
	return out, nil
}

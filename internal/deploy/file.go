package deploy

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/jsonl"
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

func (h FileHistory) file(env string) (jsonl.File[Record], error) {
	if !store.ValidEnvironment(env) {
		return jsonl.File[Record]{}, fmt.Errorf("environment %q is not a name (letters, digits, '.', '_', '-')", env)
	}
	return jsonl.File[Record]{
		Path: filepath.Join(h.Dir, env+".jsonl"), Name: "history", MaxBytes: MaxHistoryBytes, Corrupt: ErrCorrupt,
		Check: func(r *Record) error { _, err := store.CheckDeployment(r); return err },
		ID:    func(r *Record) int64 { return r.ID },
	}, nil
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
	f, err := h.file(n.Environment)
	if err != nil {
		return nil, err
	}
	err = f.Append(n, func(n *Record, id int64) {
		n.ID = id
		n.RecordedAt = time.Now().UTC().Truncate(time.Microsecond)
	})
	if err != nil {
		return nil, err
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
	f, err := h.file(env)
	if err != nil {
		return nil, err
	}
	rs, err := f.Read()
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Environment != env {
			return nil, fmt.Errorf("%w: %s line %d is about environment %q", ErrCorrupt, f.Path, r.ID, r.Environment)
		}
	}
	return rs, nil
}

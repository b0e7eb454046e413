package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// ErrRollback means a log presented a checkpoint smaller than one already
// seen: the log was rewound (or the caller is shown a stale view).
var ErrRollback = errors.New("log rolled back")

// ErrInconsistent means two checkpoints of a log cannot both be true: the
// log forked, or rewrote entries.
var ErrInconsistent = errors.New("log is inconsistent")

// ErrBadRange is returned for a proof request with sizes or indexes out of
// range of the published log.
var ErrBadRange = errors.New("index or size out of range")

// VerifyConsistency checks that newer extends older using the RFC 6962
// consistency proof p. It returns an error wrapping ErrRollback if newer is
// smaller than older and ErrInconsistent if the proof does not hold (or the
// origins or same-size hashes differ).
func VerifyConsistency(older, newer *Checkpoint, p [][]byte) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("%w: origin %q is not %q", ErrInconsistent, newer.Origin, older.Origin)
	}
	if newer.Size < older.Size {
		return fmt.Errorf("%w: size %d is smaller than the %d already seen", ErrRollback, newer.Size, older.Size)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Hash, newer.Hash); err != nil {
		return fmt.Errorf("%w: size %d to %d: %v", ErrInconsistent, older.Size, newer.Size, err)
	}
	return nil
}

// publishedSize is the size of the latest published checkpoint.
func (l *Log) publishedSize(ctx context.Context) (uint64, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("couldn't read checkpoint: %w", err)
	}
	cp, err := l.parsePublished(raw)
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// InclusionProof returns the RFC 6962 inclusion proof of the entry at index
// in the tree of size treeSize, which must not exceed the published size.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	size, err := l.publishedSize(ctx)
	if err != nil {
		return nil, err
	}
	if index >= treeSize || treeSize > size {
		return nil, fmt.Errorf("%w: index %d in tree of size %d (published size %d)", ErrBadRange, index, treeSize, size)
	}
	return l.proofs.lookup(treeSize).inclusion(ctx, index)
}

// ConsistencyProof returns the RFC 6962 consistency proof from the tree of
// size oldSize to the tree of size newSize, which must not exceed the
// published size.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][]byte, error) {
	size, err := l.publishedSize(ctx)
	if err != nil {
		return nil, err
	}
	if oldSize > newSize || newSize > size {
		return nil, fmt.Errorf("%w: sizes %d to %d (published size %d)", ErrBadRange, oldSize, newSize, size)
	}
	if oldSize == 0 || oldSize == newSize {
		return [][]byte{}, nil
	}
	return l.proofs.lookup(newSize).consistency(ctx, oldSize)
}

// readTile reads a hash tile for proofs. Tessera deletes partial tiles once
// the full tile exists, and writes partial tiles only for integrated sizes,
// so a missing partial tile of width p is cut from the full tile or from a
// wider partial one: the first p hashes of a tile never change.
func (l *Log) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	t, err := l.reader.ReadTile(ctx, level, index, p)
	if err == nil || p == 0 || !errors.Is(err, fs.ErrNotExist) {
		return t, err
	}
	want := int(p) * 32
	if full, ferr := l.reader.ReadTile(ctx, level, index, 0); ferr == nil && len(full) >= want {
		return full[:want], nil
	}
	if l.db != nil {
		return nil, err // trimmingReader already cut the widest stored tile
	}
	dir := filepath.Join(l.opts.Dir, layout.TilePath(level, index, 0)+".p")
	names, derr := os.ReadDir(dir)
	if derr != nil {
		return nil, err
	}
	for _, e := range names {
		w, perr := strconv.ParseUint(e.Name(), 10, 8)
		if perr != nil || w <= uint64(p) {
			continue
		}
		if wider, werr := l.reader.ReadTile(ctx, level, index, uint8(w)); werr == nil && len(wider) >= want {
			return bytes.Clone(wider[:want]), nil
		}
	}
	return nil, err
}

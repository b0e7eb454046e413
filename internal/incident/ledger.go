package incident

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
	"syscall"
	"time"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/store"
)

// Ledger keeps incident records: a custody server (ServerLedger) or a local
// directory (FileLedger). Records are only ever appended.
type Ledger interface {
	// Append validates r (store.CheckIncidentRecord), appends it durably
	// and returns it as stored (with its ID).
	Append(ctx context.Context, r *store.IncidentRecord) (*store.IncidentRecord, error)
	// List returns the records matching q in append order (q.Limit and
	// q.AfterID page as in the store). A ledger that cannot be read
	// completely is an error (ErrCorrupt for a damaged file).
	List(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error)
}

// ErrCorrupt means a local incident ledger is damaged (a truncated or
// malformed line). Nothing is appended to it, and the deploy gate refuses
// every artifact, until it is repaired by hand.
var ErrCorrupt = errors.New("incident ledger is damaged")

// MaxLedgerBytes bounds a local ledger file.
const MaxLedgerBytes = 256 << 20

// FileLedger keeps records in Dir/ledger.jsonl: one JSON record per line,
// appended under an exclusive lock (flock) and fsynced before Append
// returns. IDs are line numbers.
type FileLedger struct {
	Dir string
}

func (l FileLedger) path() string { return filepath.Join(l.Dir, "ledger.jsonl") }

// Append implements Ledger.
func (l FileLedger) Append(ctx context.Context, r *store.IncidentRecord) (*store.IncidentRecord, error) {
	n, err := store.CheckIncidentRecord(r)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create incident directory: %w", err)
	}
	p := l.path()
	_, statErr := os.Stat(p)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't open incident ledger: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("couldn't lock incident ledger %s: %w", p, err)
	}
	existing, err := readLedger(f, p)
	if err != nil {
		return nil, err
	}
	n.ID = int64(len(existing)) + 1
	n.RecordedAt = time.Now().UTC().Truncate(time.Microsecond)
	line, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode incident record: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("couldn't append to incident ledger %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("couldn't sync incident ledger %s: %w", p, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if d, err := os.Open(l.Dir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return nil, fmt.Errorf("couldn't sync incident directory: %w", err)
			}
		}
	}
	return n, nil
}

// List implements Ledger.
func (l FileLedger) List(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	if q.Limit < 0 || q.AfterID < 0 {
		return nil, fmt.Errorf("%w: negative limit or after id", store.ErrInvalidQuery)
	}
	p := l.path()
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't open incident ledger: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		return nil, fmt.Errorf("couldn't lock incident ledger %s: %w", p, err)
	}
	all, err := readLedger(f, p)
	if err != nil {
		return nil, err
	}
	var out []*store.IncidentRecord
	for _, r := range all {
		if r.ID <= q.AfterID || (q.Incident != "" && r.Incident != q.Incident) ||
			(q.Artifact != "" && r.Artifact != q.Artifact) || (q.Event != "" && r.Event != q.Event) {
			continue
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func readLedger(f *os.File, p string) ([]*store.IncidentRecord, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("couldn't read incident ledger %s: %w", p, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxLedgerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read incident ledger %s: %w", p, err)
	}
	if len(b) > MaxLedgerBytes {
		return nil, fmt.Errorf("incident ledger %s is over %d bytes", p, MaxLedgerBytes)
	}
	if len(b) == 0 {
		return nil, nil
	}
	lines := bytes.Split(b, []byte{'\n'})
	last := len(lines) - 1
	if len(lines[last]) != 0 {
		return nil, fmt.Errorf("%w: %s line %d is truncated (a write was cut short); inspect it and remove or complete that line by hand", ErrCorrupt, p, last+1)
	}
	var out []*store.IncidentRecord
	for i, line := range lines[:last] {
		var r store.IncidentRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil || dec.More() {
			return nil, fmt.Errorf("%w: %s line %d is not a record: %v", ErrCorrupt, p, i+1, err)
		}
		if _, err := store.CheckIncidentRecord(&r); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, p, i+1, err)
		}
		if r.ID != int64(i+1) {
			return nil, fmt.Errorf("%w: %s line %d has id %d", ErrCorrupt, p, i+1, r.ID)
		}
		out = append(out, &r)
	}
	return out, nil
}

// ServerLedger keeps incident records on a custody server: appending needs
// an admin token, reading any token.
type ServerLedger struct {
	Client *client.Client
}

// Append implements Ledger.
func (l ServerLedger) Append(ctx context.Context, r *store.IncidentRecord) (*store.IncidentRecord, error) {
	n, err := store.CheckIncidentRecord(r)
	if err != nil {
		return nil, err
	}
	id, err := l.Client.AppendIncident(ctx, n)
	if err != nil {
		return nil, err
	}
	n.ID = id
	return n, nil
}

// List implements Ledger.
func (l ServerLedger) List(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	return l.Client.Incidents(ctx, q)
}

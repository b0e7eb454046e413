package incident

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/jsonl"
	"github.com/custody-dev/custody/internal/store"
)

// Ledger keeps incident records: a custody server (ServerLedger) or a local
// directory (FileLedger). Records are only ever appended.
type Ledger interface {
	// Append validates r (store.CheckIncidentRecord), appends it durably
	// and returns it as stored (with its ID).
	Append(ctx context.Context, r *store.IncidentRecord) (*store.IncidentRecord, error)
	// AppendAll is Append for a batch: it validates every record first
	// (nothing is appended when one is malformed), appends them in order
	// and returns them as stored. A local ledger appends all or none; a
	// server ledger sends as few requests as fit (see
	// client.AppendIncidents), each all or none.
	AppendAll(ctx context.Context, rs []*store.IncidentRecord) ([]*store.IncidentRecord, error)
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

func (l FileLedger) file() jsonl.File[store.IncidentRecord] {
	return jsonl.File[store.IncidentRecord]{
		Path: filepath.Join(l.Dir, "ledger.jsonl"), Name: "incident ledger", MaxBytes: MaxLedgerBytes, Corrupt: ErrCorrupt,
		Check: func(r *store.IncidentRecord) error { _, err := store.CheckIncidentRecord(r); return err },
		ID:    func(r *store.IncidentRecord) int64 { return r.ID },
	}
}

// Append implements Ledger.
func (l FileLedger) Append(ctx context.Context, r *store.IncidentRecord) (*store.IncidentRecord, error) {
	n, err := store.CheckIncidentRecord(r)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err = l.file().Append(n, func(n *store.IncidentRecord, id int64) {
		n.ID = id
		n.RecordedAt = time.Now().UTC().Truncate(time.Microsecond)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// AppendAll implements Ledger: one lock, one write and one fsync for the
// batch.
func (l FileLedger) AppendAll(ctx context.Context, rs []*store.IncidentRecord) ([]*store.IncidentRecord, error) {
	ns, err := checkAll(rs)
	if err != nil || len(ns) == 0 {
		return ns, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := l.file().AppendAll(ns, func(n *store.IncidentRecord, id int64) { n.ID, n.RecordedAt = id, now }); err != nil {
		return nil, err
	}
	return ns, nil
}

// checkAll validates a batch (store.CheckIncidentRecord each); an empty
// batch is no error.
func checkAll(rs []*store.IncidentRecord) ([]*store.IncidentRecord, error) {
	ns := make([]*store.IncidentRecord, len(rs))
	for i, r := range rs {
		n, err := store.CheckIncidentRecord(r)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		ns[i] = n
	}
	return ns, nil
}

// List implements Ledger.
func (l FileLedger) List(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	if err := checkPaging(q); err != nil {
		return nil, err
	}
	all, err := l.file().Read()
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

// AppendAll implements Ledger.
func (l ServerLedger) AppendAll(ctx context.Context, rs []*store.IncidentRecord) ([]*store.IncidentRecord, error) {
	ns, err := checkAll(rs)
	if err != nil || len(ns) == 0 {
		return ns, err
	}
	ids, err := l.Client.AppendIncidents(ctx, ns)
	if err != nil {
		return nil, err
	}
	for i, n := range ns {
		n.ID = ids[i]
	}
	return ns, nil
}

// List implements Ledger.
func (l ServerLedger) List(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	if err := checkPaging(q); err != nil {
		return nil, err
	}
	return l.Client.Incidents(ctx, q)
}

// checkPaging refuses a negative limit or after ID, as the index does.
func checkPaging(q store.IncidentQuery) error {
	if q.Limit < 0 || q.AfterID < 0 {
		return fmt.Errorf("%w: negative limit or after id", store.ErrInvalidQuery)
	}
	return nil
}

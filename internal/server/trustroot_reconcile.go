package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/trust"
)

// reconcileTrustRoots stores every trust root version a "trust.changed"
// audit entry in the index records but DIR/trust-root lacks: a change
// writes its audit entry first, then N.json, and a crash between them
// would otherwise leave the server deciding policy changes with the
// version before, whose admins the logged version may have revoked. A
// stored version whose payload differs from the logged one is a fork:
// Open refuses to start. Call it after the journal is reconciled and
// before openTrustRoot.
func (s *Server) reconcileTrustRoots(ctx context.Context) error {
	q := store.Query{PredicateType: PredicateAudit, SubjectName: SubjectTrustRoot, Limit: reconcilePage}
	for {
		page, err := s.index.Search(ctx, q)
		if err != nil {
			return fmt.Errorf("couldn't read trust root audit entries: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			d, err := loggedTrustRoot(e)
			if err != nil {
				return fmt.Errorf("trust root audit entry %d: %w", e.ID, err)
			}
			if d == nil {
				continue
			}
			stored, _, err := s.readTrustRoot(d.Version)
			switch {
			case err == nil:
				if !samePayload(stored, d) {
					return fmt.Errorf("%w: stored trust root version %d differs from the version audit entry %d records", trust.ErrFork, d.Version, e.ID)
				}
				continue
			case !errors.Is(err, os.ErrNotExist):
				return err
			}
			raw, err := d.Marshal()
			if err != nil {
				return err
			}
			dir := filepath.Join(s.cfg.Dir, trustRootDir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("couldn't store trust root: %w", err)
			}
			s.logger.Warn("trust root version missing after a crash; writing the logged version", "version", d.Version, "audit_id", e.ID)
			if err := fsutil.WriteFileAtomic(filepath.Join(dir, strconv.Itoa(d.Version)+".json"), raw, 0o644); err != nil {
				return fmt.Errorf("couldn't store trust root: %w", err)
			}
		}
		q.AfterID = page[len(page)-1].ID
	}
}

// loggedTrustRoot reads the document a trust.changed audit entry records;
// nil, nil for an entry of another action.
func loggedTrustRoot(e *store.Evidence) (*trust.Document, error) {
	var change TrustChange
	if st, err := loggedChange(e, "trust.changed", &change); st == nil || err != nil {
		return nil, err
	}
	d, err := trust.ParseDocument(change.Document)
	if err != nil {
		return nil, err
	}
	if d.Version != change.Version {
		return nil, fmt.Errorf("it records version %d but holds version %d", change.Version, d.Version)
	}
	return d, nil
}

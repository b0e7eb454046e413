package server

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/trust"
)

// reconcileTrustRoots stores every trust root version a "trust.changed"
// audit entry records (one that verifies: see auditReader) but
// DIR/trust-root lacks: a change writes its audit entry first, then
// N.json, and a crash between them would otherwise leave the server
// deciding policy changes with the version before, whose admins the logged
// version may have revoked. A stored version whose payload differs from
// the logged one is a fork: Open refuses to start. An entry that does not
// verify, or does not agree with itself, is skipped with a warning. Call
// it after the journal is reconciled and before openTrustRoot.
func (s *Server) reconcileTrustRoots(ctx context.Context) error {
	ar, err := s.newAuditReader(ctx)
	if err != nil {
		return err
	}
	_, err = ar.each(ctx, store.Query{SubjectName: api.SubjectTrustRoot}, func(la *loggedAudit) error {
		d, err := loggedTrustRoot(la)
		if err != nil {
			s.logger.WarnContext(ctx, "skipping a trust.changed audit entry that does not agree with itself",
				"id", la.ID, "log_index", la.LogIndex, "reason", err)
			return nil
		}
		if d == nil {
			return nil
		}
		stored, _, err := s.readTrustRoot(d.Version)
		switch {
		case err == nil:
			if !samePayload(stored, d) {
				return fmt.Errorf("%w: stored trust root version %d differs from the version audit entry %d (log index %d) records",
					trust.ErrFork, d.Version, la.ID, la.LogIndex)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
		raw, err := d.Marshal()
		if err != nil {
			return err
		}
		s.logger.Warn("trust root version missing after a crash; writing the logged version", "version", d.Version, "audit_id", la.ID)
		if err := s.state.Put(ctx, trustRootName(d.Version), raw); err != nil {
			return fmt.Errorf("couldn't store trust root: %w", err)
		}
		return nil
	})
	return err
}

// loggedTrustRoot reads the document a verified trust.changed audit entry
// records; nil, nil for an entry of another action.
func loggedTrustRoot(la *loggedAudit) (*trust.Document, error) {
	var change api.TrustChange
	if ok, err := loggedChange(la, "trust.changed", &change); !ok || err != nil {
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

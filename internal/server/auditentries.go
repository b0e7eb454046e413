package server

import (
	"context"
	"encoding/json"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
)

// eachAuditEntry calls fn with every audit entry of the index after
// afterID whose statement the audit key signed, in index order, and
// returns the ID of the last row read. A row the audit key did not sign is
// skipped with a warning: it never becomes state.
func (s *Server) eachAuditEntry(ctx context.Context, afterID int64, fn func(id int64, pred *AuditPredicate) error) (int64, error) {
	kp, err := signer.NewKeypair(s.auditKey)
	if err != nil {
		return 0, fmt.Errorf("audit key: %w", err)
	}
	q := store.Query{PredicateType: PredicateAudit, AfterID: afterID, Limit: reconcilePage}
	for {
		page, err := s.index.Search(ctx, q)
		if err != nil {
			return q.AfterID, fmt.Errorf("couldn't read audit entries: %w", err)
		}
		if len(page) == 0 {
			return q.AfterID, nil
		}
		for _, e := range page {
			pred, err := auditSignedPredicate(e, kp)
			if err != nil {
				s.logger.Warn("skipping an index row of the audit type that the audit key did not sign", "id", e.ID, "reason", err)
				continue
			}
			if err := fn(e.ID, pred); err != nil {
				return q.AfterID, err
			}
		}
		q.AfterID = page[len(page)-1].ID
	}
}

// auditSignedPredicate returns the audit predicate of e when kp signed it.
func auditSignedPredicate(e *store.Evidence, kp *signer.Keypair) (*AuditPredicate, error) {
	pb := new(protobundle.Bundle)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.Bundle, pb); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	req, err := entryRequest(pb, kp)
	if err != nil {
		return nil, err
	}
	if _, _, err := tlog.CanonicalEntry(req); err != nil {
		return nil, fmt.Errorf("not signed by the audit key: %w", err)
	}
	st, err := attest.ParseStatement(pb.GetDsseEnvelope().GetPayload())
	if err != nil {
		return nil, err
	}
	if st.PredicateType != PredicateAudit {
		return nil, fmt.Errorf("predicate type %q is not an audit entry's", st.PredicateType)
	}
	var pred AuditPredicate
	if err := json.Unmarshal(st.Predicate, &pred); err != nil {
		return nil, fmt.Errorf("audit predicate: %w", err)
	}
	return &pred, nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
)

// loggedAudit is an audit entry of the index that verified: signed by the
// server's audit key and proven in the server's own log.
type loggedAudit struct {
	// ID is the entry's evidence ID in the index.
	ID int64
	// LogIndex is its position in the log, as the inclusion proof proved it.
	LogIndex uint64
	// Statement and Predicate are what the audit key signed.
	Statement *attest.Statement
	Predicate api.AuditPredicate
}

// auditReader reads the server's audit entries from the index and keeps
// only those that verify: the one path by which the server derives state
// (policies, trust root versions) from index rows. The index holds what
// clients pushed, and before the reserved predicate types were refused
// (checkReserved) a client could store a statement of type PredicateAudit
// there; a row's predicate type, subjects, signer and log index are
// therefore never believed, only the bundle's signature and the log.
type auditReader struct {
	s  *Server
	kp *signer.Keypair
	cp *tlog.Checkpoint // the log's checkpoint, signature verified by tlog
}

// newAuditReader reads the log's current checkpoint, against which every
// entry read is proven.
func (s *Server) newAuditReader(ctx context.Context) (*auditReader, error) {
	kp, err := signer.NewKeypair(s.auditKey)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	cp, err := s.log.Checkpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		// A new log another replica just made: its first checkpoint is
		// not published yet. Wait for one over what is sequenced.
		cp, err = s.log.Settled(ctx)
	}
	if err != nil {
		return nil, err
	}
	return &auditReader{s: s, kp: kp, cp: cp}, nil
}

// errUnverified is wrapped by verify's error: the row is not an audit
// entry of this server.
var errUnverified = errors.New("not an audit entry of this server")

// verify checks one index row: its bundle's DSSE envelope holds an in-toto
// statement of type PredicateAudit with one signature, by the audit key;
// the hashedrekord log entry of that signature (rebuilt here, not read
// from the bundle) is at the position the bundle's entry for this log
// names; and that position is proven by an inclusion proof against the
// log's checkpoint. Errors wrap errUnverified, except failures to read the
// log.
func (a *auditReader) verify(ctx context.Context, e *store.Evidence) (*loggedAudit, error) {
	bad := func(format string, args ...any) (*loggedAudit, error) {
		return nil, fmt.Errorf("%w: %s", errUnverified, fmt.Sprintf(format, args...))
	}
	pb := new(protobundle.Bundle)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.Bundle, pb); err != nil {
		return bad("bundle: %v", err)
	}
	env := pb.GetDsseEnvelope()
	if env.GetPayloadType() != attest.PayloadType {
		return bad("not a DSSE envelope of an in-toto statement")
	}
	// The log entry the audit key's signature would have: building it
	// verifies the signature against the audit key.
	req, err := entryRequest(pb, a.kp)
	if err != nil {
		return bad("%v", err)
	}
	leaf, _, err := tlog.CanonicalEntry(req)
	if err != nil {
		return bad("not signed by the audit key: %v", err)
	}
	idx := int64(-1)
	for _, tle := range pb.GetVerificationMaterial().GetTlogEntries() {
		if string(tle.GetLogId().GetKeyId()) == string(a.s.log.LogID()) {
			idx = tle.GetLogIndex()
			break
		}
	}
	switch {
	case idx < 0:
		return bad("no entry in this server's log")
	case uint64(idx) >= a.cp.Size:
		return bad("log index %d is beyond the log's checkpoint of size %d", idx, a.cp.Size)
	}
	hashes, err := a.s.log.InclusionProof(ctx, uint64(idx), a.cp.Size)
	if err != nil {
		return nil, fmt.Errorf("couldn't prove log entry %d: %w", idx, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(idx), a.cp.Size, rfc6962.DefaultHasher.HashLeaf(leaf), hashes, a.cp.Hash); err != nil {
		return bad("not in the log at index %d: %v", idx, err)
	}
	st, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return bad("%v", err)
	}
	if st.PredicateType != api.PredicateAudit {
		return bad("predicate type %q is not an audit entry's", st.PredicateType)
	}
	p, err := attest.ParseAudit(st.Predicate)
	if err != nil {
		return bad("%v", err)
	}
	return &loggedAudit{ID: e.ID, LogIndex: uint64(idx), Statement: st, Predicate: *p}, nil
}

// each calls fn with every audit entry of the index that q selects (its
// PredicateType is set to PredicateAudit; AfterID and Limit page through
// the index) and that verifies, in index order, each log position once
// (the same entry stored twice, as a pre-fix push could, counts once).
// Callers that need the newest entry compare LogIndex. A row that does not
// verify is skipped with a warning naming it: a forged or damaged row
// never stops the server and never becomes state. last is the ID of the
// last row read, verified or not. An error is returned when the index or
// the log cannot be read, or fn fails.
func (a *auditReader) each(ctx context.Context, q store.Query, fn func(*loggedAudit) error) (last int64, err error) {
	q.PredicateType = api.PredicateAudit
	if q.Limit <= 0 {
		q.Limit = reconcilePage
	}
	last = q.AfterID
	seen := map[uint64]bool{}
	for {
		page, err := a.s.index.Search(ctx, q)
		if err != nil {
			return last, fmt.Errorf("couldn't read audit entries: %w", err)
		}
		if len(page) == 0 {
			return last, nil
		}
		for _, e := range page {
			la, err := a.verify(ctx, e)
			switch {
			case errors.Is(err, errUnverified):
				a.s.logger.WarnContext(ctx, "skipping an index row of the audit type that is not this server's audit entry",
					"id", e.ID, "claimed_log_index", e.LogIndex, "reason", err)
				continue
			case err != nil:
				return last, err
			case seen[la.LogIndex]:
				continue
			}
			seen[la.LogIndex] = true
			if err := fn(la); err != nil {
				return last, err
			}
		}
		last = page[len(page)-1].ID
		q.AfterID = last
	}
}

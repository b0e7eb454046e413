package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
)

// auditEvent is one action to record.
type auditEvent struct {
	action string
	actor  string
	// subjects are the artifacts (or documents) the action is about; when
	// empty the subject is the SHA-256 of detail, named "custody-audit/"+action.
	subjects []attest.Subject
	detail   any
}

// audit writes an audit entry for an action that r asked for and returns
// the index ID of the entry. It is called before the action takes effect
// (write-ahead): an action whose audit entry cannot be written is not
// carried out, so nothing changes without a log entry saying who asked.
func (s *Server) audit(ctx context.Context, r *http.Request, e auditEvent) (int64, error) {
	if !attest.AuditAction.MatchString(e.action) {
		return 0, fmt.Errorf("audit action %q is malformed", e.action)
	}
	detail, err := json.Marshal(e.detail)
	if err != nil {
		return 0, fmt.Errorf("couldn't encode audit detail: %w", err)
	}
	info := tokenFrom(r)
	tok := tokenName(info)
	pred := api.AuditPredicate{Action: e.action, Actor: e.actor, Token: tok, Time: time.Now().UTC(), Detail: detail}
	if info != nil && info.Person != nil {
		pred.Identity, pred.Issuer, pred.Session = info.Person.Identity, info.Person.Issuer, info.Person.Session
	}
	subjects := e.subjects
	if len(subjects) == 0 {
		sum := sha256.Sum256(detail)
		subjects = []attest.Subject{{Name: "custody-audit/" + e.action, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}}
	}
	stmt, err := attest.NewStatement(subjects, api.PredicateAudit, pred)
	if err != nil {
		return 0, fmt.Errorf("couldn't make audit statement: %w", err)
	}
	raw, err := stmt.Marshal()
	if err != nil {
		return 0, fmt.Errorf("couldn't encode audit statement: %w", err)
	}
	_, tle, id, err := s.sign(ctx, s.auditKey, raw, stmt, nil)
	if err != nil {
		s.metrics.audits.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("couldn't write audit entry: %w", err)
	}
	s.metrics.audits.WithLabelValues("ok").Inc()
	s.logger.InfoContext(ctx, "audit", "action", e.action, "token", tok, "session", pred.Session, "log_index", tle.GetLogIndex(), "id", id)
	return id, nil
}

// auditPerson writes an audit entry of e when a person's session (single
// sign-on) authenticates r, and does nothing for a token: every action of
// a person names them and their session in the audit trail, also the
// writes whose record is otherwise only the signed bundle (a push, whose
// bundle names its signer, not who pushed it; a signature by a server
// key). Machines' pushes and signatures are their bundles alone, as before.
func (s *Server) auditPerson(ctx context.Context, r *http.Request, e auditEvent) error {
	if info := tokenFrom(r); info == nil || info.Person == nil {
		return nil
	}
	_, err := s.audit(ctx, r, e)
	return err
}

// auditSubjects are the audit subjects of a statement's subjects.
func auditSubjects(subs []store.Subject) []attest.Subject {
	out := make([]attest.Subject, 0, len(subs))
	for _, sub := range subs {
		out = append(out, attest.Subject{Name: sub.Name, Digest: sub.Digests})
	}
	return out
}

// auditSubject is the subject of an action about the artifact digest
// "sha256:HEX" (as deployment and incident records name artifacts).
func auditSubject(name, digest string) (attest.Subject, error) {
	const prefix = "sha256:"
	if len(digest) != len(prefix)+64 || digest[:len(prefix)] != prefix {
		return attest.Subject{}, errors.New("artifact is not sha256:HEX")
	}
	return attest.Subject{Name: name, Digest: map[string]string{"sha256": digest[len(prefix):]}}, nil
}

// failAudit answers a request whose audit entry could not be written.
func (s *Server) failAudit(w http.ResponseWriter, err error) {
	s.logger.Error("audit entry not written; action refused", "err", err)
	s.failWrite(w, err)
}

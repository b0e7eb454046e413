package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/store"
)

// pushAllowed reports whether a token of role may push a bundle of
// predicateType: builders and admins anything, approvers only approvals,
// deployers only decisions (VSAs).
func pushAllowed(role api.Role, predicateType string) bool {
	switch role {
	case api.RoleBuilder, api.RoleAdmin:
		return true
	case api.RoleApprover:
		return predicateType == attest.PredicateApproval
	case api.RoleDeployer:
		return predicateType == attest.PredicateVSA
	}
	return false
}

// serveAppendDeployment appends one deployment record (a store.Deployment
// as JSON). RecordedBy is set from the token; id and recordedAt are the
// store's.
func (s *Server) serveAppendDeployment(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var d store.Deployment
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil || dec.More() {
		fail(w, http.StatusBadRequest, "request is not one deployment record (JSON object)")
		return
	}
	tok := tokenFrom(r)
	d.RecordedBy = string(tok.Role)
	if tok.Name != "" {
		d.RecordedBy += ":" + tok.Name
	}
	n, err := store.CheckDeployment(&d)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	sub, err := auditSubject(n.Name, n.Artifact)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := s.audit(r.Context(), r, auditEvent{action: "deployment." + n.Event, actor: n.Actor,
		subjects: []attest.Subject{sub}, detail: n}); err != nil {
		s.failAudit(w, err)
		return
	}
	crashpoint.Reach(crashpoint.DeploymentAudited)
	id, err := s.index.AppendDeployment(r.Context(), &d)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	crashpoint.Reach(crashpoint.RecordAppended)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(api.IDAnswer{ID: id})
}

// serveDeployments lists deployment records: environment, after and limit
// as in store.DeploymentQuery.
func (s *Server) serveDeployments(w http.ResponseWriter, r *http.Request) {
	q := store.DeploymentQuery{Environment: r.URL.Query().Get("environment")}
	serveRecordPage(s, w, r, "deployments", &q.AfterID, &q.Limit,
		func(ctx context.Context) ([]*store.Deployment, error) { return s.index.Deployments(ctx, q) },
		func(list []*store.Deployment) any { return api.DeploymentPage{Deployments: list} })
}

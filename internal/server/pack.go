package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/signer"
)

// loopbackHost is the host of the requests servePack sends to this
// server's own handler; they never reach a network.
const loopbackHost = "http://custody.loopback"

// servePack answers POST /api/v1/packs (api.PackRequest): the evidence
// pack of an artifact for an environment, gathered from this server's own
// state as 'custody pack --server' gathers it (Config.Packs: evidence,
// trust root chain, trusted root, signed policy, log checkpoint and
// consistency proofs, the incident quarantine, each read through this
// server's own handler with the caller's token), signed with the audit
// key. Nothing in the request becomes part of the pack but the artifact,
// the environment and the validity; the quarantine, the creation time and
// the checkpoint are the server's. The audit entry (pack.made) is written
// after the reads and before the signature: the log names every pack the
// audit key signed, and nothing the server refused to make.
func (s *Server) servePack(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Packs == nil {
		fail(w, http.StatusNotImplemented, "this server makes no evidence packs")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req api.PackRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		fail(w, http.StatusBadRequest, "request is not one pack request (JSON object)")
		return
	}
	sub, err := auditSubject("pack/"+req.Environment, req.Artifact)
	switch {
	case err != nil:
		fail(w, http.StatusBadRequest, err.Error())
		return
	case !store.ValidEnvironment(req.Environment):
		fail(w, http.StatusBadRequest, fmt.Sprintf("environment %q is not an environment name", req.Environment))
		return
	case req.ValidForSeconds < 0 || req.ValidForSeconds > api.MaxPackValidForSeconds:
		fail(w, http.StatusBadRequest, fmt.Sprintf("validForSeconds %d is not between 0 and %d", req.ValidForSeconds, api.MaxPackValidForSeconds))
		return
	}
	valid := pack.DefaultValidity
	if req.ValidForSeconds > 0 {
		valid = time.Duration(req.ValidForSeconds) * time.Second
	}
	ctx := r.Context()
	now := time.Now()
	c, err := s.cfg.Packs(ctx, s.ownHandler(), bearer(r), req.Artifact, req.Environment, now)
	if err != nil {
		fail(w, http.StatusConflict, "couldn't make the pack: "+err.Error())
		return
	}
	if _, err := s.audit(ctx, r, auditEvent{action: "pack.made", subjects: []attest.Subject{sub},
		detail: map[string]any{"environment": req.Environment, "validForSeconds": int64(valid / time.Second)}}); err != nil {
		s.failAudit(w, err)
		return
	}
	c.Expires = now.Add(valid)
	b, err := pack.Build(ctx, c, func(ctx context.Context, st []byte) ([]byte, error) {
		return signer.SignStatement(ctx, s.auditKey, st)
	})
	if err != nil {
		fail(w, http.StatusConflict, "couldn't make the pack: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", api.PackMediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// bearer is the token r authenticated with (the part after "Bearer ").
func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok)
}

// ownHandler is this server's handler, made once, for Config.Packs.
func (s *Server) ownHandler() http.Handler {
	s.ownOnce.Do(func() { s.own = s.Handler() })
	return s.own
}

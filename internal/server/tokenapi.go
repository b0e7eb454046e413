package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// The token API: admins list and revoke tokens remotely (custody token list
// and revoke --server). Creating a token needs the data directory (custody
// token create --data): a stolen admin token cannot mint itself
// credentials that outlive its revocation.
//
//	GET  /api/v1/tokens         admin  → TokenList (never a secret)
//	POST /api/v1/tokens/revoke  admin  {"name": NAME-OR-ID} → TokenStatus (audited: token.revoked)

// serveTokens lists the tokens, with their last use as of now.
func (s *Server) serveTokens(w http.ResponseWriter, r *http.Request) {
	s.tokens.flush()
	l, err := tokenfile.ListTokensIn(r.Context(), s.state)
	if err != nil {
		s.logger.Error("couldn't list tokens", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read tokens")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(l)
}

// serveRevokeToken revokes a token after writing its audit entry. A running
// server refuses the token from its next check of the tokens file.
func (s *Server) serveRevokeToken(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req api.RevokeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() || req.Name == "" {
		fail(w, http.StatusBadRequest, `request is not a JSON object {"name": NAME-OR-ID}`)
		return
	}
	st, err := tokenfile.FindTokenIn(r.Context(), s.state, req.Name)
	if err == nil {
		_, err = s.audit(r.Context(), r, auditEvent{action: "token.revoked",
			detail: map[string]string{"id": st.ID, "name": st.Name, "role": string(st.Role)}})
		if err != nil {
			s.failAudit(w, err)
			return
		}
		st, err = tokenfile.RevokeIDIn(context.WithoutCancel(r.Context()), s.state, st.ID)
	}
	switch {
	case errors.Is(err, tokenfile.ErrTokenNotFound):
		fail(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, tokenfile.ErrTokenAmbiguous):
		fail(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.logger.Error("couldn't revoke token", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't revoke token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

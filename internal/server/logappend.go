package server

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"net/http"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/custody-dev/custody/internal/tlog"
)

// serveLogAppend answers POST /api/v2/log/entries for client tokens (and
// without one, when Config.Open.Log opens it): the
// request is the log's (tlog), except that an entry the server alone may
// cause is refused with 403 before the log sees it: a DSSE entry whose
// payload type or statement predicate type is reserved (checkReserved),
// and any entry whose signature is the audit key's (the server logs its
// audit entries and decisions itself; a client replaying one adds no
// record of its own). A request that does not parse gets the log's 400.
func (s *Server) serveLogAppend(lh http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		req, err := tlog.ParseCreateEntryRequest(body, int(s.cfg.MaxBody))
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := s.checkLogRequest(req); err != nil {
			s.logger.WarnContext(r.Context(), "log entry refused", "token", writerName(r), "err", err)
			fail(w, http.StatusForbidden, "log entry refused: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		lh.ServeHTTP(w, r)
	}
}

// errAuditKeyEntry is wrapped by checkLogRequest's error for an entry a
// client sends under the audit key.
var errAuditKeyEntry = errors.New("an entry signed by the server's audit key is logged only by the server")

// checkLogRequest returns an error wrapping errReserved or
// errAuditKeyEntry for a request no client may make.
func (s *Server) checkLogRequest(req *tlog.CreateEntryRequest) error {
	var verifiers []*rekorpb.Verifier
	switch spec := req.GetSpec().(type) {
	case *rekorpb.CreateEntryRequest_HashedRekordRequestV002:
		verifiers = append(verifiers, spec.HashedRekordRequestV002.GetSignature().GetVerifier())
	case *rekorpb.CreateEntryRequest_DsseRequestV002:
		env := spec.DsseRequestV002.GetEnvelope()
		if err := checkReserved(env.GetPayloadType(), env.GetPayload()); err != nil {
			return err
		}
		verifiers = spec.DsseRequestV002.GetVerifiers()
	}
	audit := s.auditKey.Public()
	for _, v := range verifiers {
		if pub := verifierPublicKey(v); pub != nil && samePublicKey(pub, audit) {
			return errAuditKeyEntry
		}
	}
	return nil
}

// verifierPublicKey returns the public key of a Rekor v2 verifier (a PKIX
// key or a certificate's), or nil when it holds neither; the log refuses
// such a request itself.
func verifierPublicKey(v *rekorpb.Verifier) crypto.PublicKey {
	if der := v.GetPublicKey().GetRawBytes(); len(der) > 0 {
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil
		}
		return pub
	}
	if der := v.GetX509Certificate().GetRawBytes(); len(der) > 0 {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil
		}
		return cert.PublicKey
	}
	return nil
}

// samePublicKey reports whether a and b are the same key.
func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// writerName names who made a log append: its token, or "open" and the
// client address for a write without one (OpenWrites).
func writerName(r *http.Request) string {
	if t := tokenFrom(r); t != nil {
		return tokenName(t)
	}
	return "open:" + r.RemoteAddr
}

// tokenName is "role" or "role:name" of the token t ("server" when nil),
// as audit entries and records name it.
func tokenName(t *TokenInfo) string {
	if t == nil {
		return "server"
	}
	if t.Name != "" {
		return string(t.Role) + ":" + t.Name
	}
	return string(t.Role)
}

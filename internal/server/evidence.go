package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/verify"
)

func (s *Server) servePush(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if err := checkReservedBundle(body); err != nil {
		fail(w, http.StatusForbidden, "bundle refused: "+err.Error())
		return
	}
	if err := s.checkAuditKeyBundle(body); err != nil {
		status := http.StatusForbidden
		if errors.Is(err, errSignatureCount) {
			status = http.StatusBadRequest
		}
		s.logger.WarnContext(r.Context(), "bundle refused", "token", writerName(r), "err", err)
		fail(w, status, "bundle refused: "+err.Error())
		return
	}
	c, err := s.checkBundle(r.Context(), body)
	if err != nil {
		s.metrics.verifications.WithLabelValues("rejected", c.reason).Inc()
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	ev := c.ev
	var may []api.Role // the roles that may push it
	for _, role := range api.Roles() {
		if pushAllowed(role, ev.PredicateType) {
			may = append(may, role)
		}
	}
	if r, ok = s.actAs(w, r, may); !ok {
		return
	}
	if tok := tokenFrom(r); !pushAllowed(tok.Role, ev.PredicateType) {
		fail(w, http.StatusForbidden, fmt.Sprintf("%s may not push %s evidence", roleToken(tok.Role), ev.PredicateType))
		return
	}
	s.metrics.verifications.WithLabelValues(map[bool]string{true: "verified", false: "unverified"}[c.reason == "ok"], c.reason).Inc()
	sum := sha256.Sum256(body)
	if err := s.auditPerson(r.Context(), r, auditEvent{action: "evidence.pushed", actor: tokenFrom(r).Name, subjects: auditSubjects(ev.Subjects),
		detail: pushRecord{PredicateType: ev.PredicateType, BundleSHA256: hex.EncodeToString(sum[:]), SignerKeyID: ev.SignerKeyID,
			SignerIdentity: ev.SignerIdentity, SignerIssuer: ev.SignerIssuer}}); err != nil {
		s.failAudit(w, err)
		return
	}
	release, err := s.claimBuildID(r.Context(), ev.BuildID, hex.EncodeToString(sum[:]), ev)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	defer release()
	var id int64
	existed := false
	if c.reason == "ok" && ev.LogIndex < 0 {
		id, existed, err = s.logPushed(r.Context(), c)
	} else {
		id, existed, err = s.index.Put(r.Context(), ev)
	}
	if err != nil {
		s.failWrite(w, err)
		return
	}
	s.redFlags.indexed(ev, id, existed)
	crashpoint.Reach(crashpoint.PushIndexed)
	w.Header().Set("Content-Type", "application/json")
	if !existed {
		w.WriteHeader(http.StatusCreated)
	}
	json.NewEncoder(w).Encode(api.PushAnswer{ID: id, Existed: existed})
}

// pushRecord is the detail of an evidence.pushed audit entry: what a
// person pushed (the signer as the server read it, before indexing).
type pushRecord struct {
	PredicateType  string `json:"predicateType"`
	BundleSHA256   string `json:"bundleSha256"`
	SignerKeyID    string `json:"signerKeyId,omitempty"`
	SignerIdentity string `json:"signerIdentity,omitempty"`
	SignerIssuer   string `json:"signerIssuer,omitempty"`
}

// checked is a pushed bundle as checkBundle found it.
type checked struct {
	// ev is its index record.
	ev *store.Evidence
	// reason is "ok" when it verified, "unknown-signer" when it verified
	// against nothing the server trusts, else why it was rejected.
	reason string
	// b is the parsed bundle, and key the trusted key it verified with
	// (nil for a certificate), when reason is "ok".
	b   *bundle.Bundle
	key crypto.PublicKey
}

// checkBundle parses a pushed bundle, verifies it against what the server
// trusts (evidenceTrust) and returns its index record. c is never nil.
// c.reason is "ok" when
// the bundle verified: the record names the trusted key or the identity of
// the certificate a trusted CA issued, the time a trusted log or timestamp
// authority proved and its index in this log. reason is "unknown-signer"
// when it verified against nothing the server trusts: the record is
// stored unverified, with its subjects and predicate type only (no signer,
// builder, source, build ID, log index or time). A bundle whose key hint
// is exactly a trusted key's but that does not verify is rejected: err is
// then non-nil and c.reason says why.
func (s *Server) checkBundle(ctx context.Context, body []byte) (c *checked, err error) {
	c = &checked{reason: "malformed"}
	b := new(bundle.Bundle)
	if err := b.UnmarshalJSON(body); err != nil {
		return c, fmt.Errorf("bundle rejected: %v", err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return c, errors.New("bundle rejected: only bundles with a DSSE envelope carrying an in-toto statement are indexed")
	}
	stmt, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return c, fmt.Errorf("statement rejected: %v", err)
	}
	facts, err := provenanceFacts(stmt)
	if err != nil {
		return c, err
	}
	tm, keys, err := s.evidenceTrust()
	if err != nil {
		c.reason = "internal"
		return c, err
	}
	// Any identity of a trusted CA's certificate is indexed; which
	// identities a policy accepts is the policy's to say.
	rep, err := verify.Verify(ctx, body, verify.Artifact{Digests: stmt.Subject[0].Digest}, tm,
		verify.Requirements{PredicateType: stmt.PredicateType, CertificateIdentityRegexp: anyValue, CertificateOIDCIssuerRegexp: anyValue})
	if err != nil {
		return c, fmt.Errorf("bundle rejected: %v", err)
	}
	key, named := trustedKeyFor(keys, b.GetVerificationMaterial().GetPublicKey().GetHint())
	if !rep.Verified {
		if !named {
			c.ev, c.reason = evidenceFor(body, stmt, nil, nil, nil), "unknown-signer"
			return c, nil
		}
		if f := rep.Failed(); len(f) > 0 {
			c.reason = f[0].Name
			return c, fmt.Errorf("bundle does not verify: %s: %s", f[0].Name, f[0].Reason)
		}
		c.reason = "unverified"
		return c, errors.New("bundle does not verify")
	}
	var ourEntry *protorekor.TransparencyLogEntry
	for _, tle := range b.GetVerificationMaterial().GetTlogEntries() {
		if bytes.Equal(tle.GetLogId().GetKeyId(), s.log.LogID()) {
			ourEntry = tle
		}
	}
	var pub crypto.PublicKey
	if b.GetVerificationMaterial().GetPublicKey() != nil {
		pub = key.PublicKey // verified, so named
	}
	ev := evidenceFor(body, stmt, facts, pub, ourEntry)
	if pub == nil {
		ev.SignerIdentity, ev.SignerIssuer = rep.Signer, rep.Issuer
	}
	ev.IntegratedTime = rep.SignedAt
	c.ev, c.reason, c.b, c.key = ev, "ok", b, pub
	return c, nil
}

// anyValue is the regular expression that accepts any certificate
// identity or issuer.
const anyValue = "^.*$"

// Attributed reports whether the index attributes e to a signer: the
// server indexes a signer key ID or identity only from a verification that
// succeeded against a key or CA it trusts, so a record without one is
// unverified and none of its claims is a fact.
func Attributed(e *store.Evidence) bool { return e.SignerKeyID != "" || e.SignerIdentity != "" }

// ToJSON converts an index record to its wire form.
func ToJSON(e *store.Evidence) api.Evidence {
	j := api.Evidence{ID: e.ID, BundleSHA256: e.BundleSHA256, Bundle: e.Bundle, PredicateType: e.PredicateType,
		SignerKeyID: e.SignerKeyID, SignerIdentity: e.SignerIdentity, SignerIssuer: e.SignerIssuer,
		BuilderID: e.BuilderID, SourceURI: e.SourceURI, SourceCommit: e.SourceCommit, BuildID: e.BuildID,
		LogIndex: e.LogIndex, IntegratedTime: e.IntegratedTime, IndexedAt: e.IndexedAt,
		Subjects: make([]attest.Subject, 0, len(e.Subjects)), Verified: Attributed(e)}
	for _, sub := range e.Subjects {
		j.Subjects = append(j.Subjects, attest.Subject{Name: sub.Name, Digest: sub.Digests})
	}
	return j
}

// indexQuery is the index query of a client's query.
func indexQuery(q api.Query) store.Query {
	return store.Query{Digest: q.Digest, SubjectName: q.SubjectName, PredicateType: q.PredicateType,
		SignerKeyID: q.SignerKeyID, SignerIdentity: q.SignerIdentity, BuilderID: q.BuilderID,
		SourceURI: q.SourceURI, SourceCommit: q.SourceCommit, BuildID: q.BuildID,
		ExcludePredicateTypes: q.ExcludePredicateTypes, Since: q.Since, Until: q.Until, AfterID: q.AfterID, Limit: q.Limit}
}

func parseQuery(v url.Values) (store.Query, error) {
	q, err := api.ParseQuery(v)
	return indexQuery(q), err
}

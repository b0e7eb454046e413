package server

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

// EvidenceJSON is the wire form of store.Evidence in the evidence API.
type EvidenceJSON struct {
	ID             int64            `json:"id"`
	BundleSHA256   string           `json:"bundleSha256"`
	Subjects       []attest.Subject `json:"subjects"`
	PredicateType  string           `json:"predicateType"`
	SignerKeyID    string           `json:"signerKeyId,omitempty"`
	SignerIdentity string           `json:"signerIdentity,omitempty"`
	SignerIssuer   string           `json:"signerIssuer,omitempty"`
	BuilderID      string           `json:"builderId,omitempty"`
	SourceURI      string           `json:"sourceUri,omitempty"`
	SourceCommit   string           `json:"sourceCommit,omitempty"`
	BuildID        string           `json:"buildId,omitempty"`
	LogIndex       int64            `json:"logIndex"`
	IntegratedTime *time.Time       `json:"integratedTime,omitempty"`
	IndexedAt      time.Time        `json:"indexedAt"`
	// Bundle is last: the search response writes the stored bytes in its
	// place (appendSearchResponse).
	Bundle json.RawMessage `json:"bundle"`
}

// pushResponse answers POST /api/v1/evidence.
type pushResponse struct {
	ID      int64 `json:"id"`
	Existed bool  `json:"existed"`
}

func (s *Server) servePush(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	ev, reason, err := s.checkBundle(r, body)
	if err != nil {
		s.metrics.verifications.WithLabelValues("rejected", reason).Inc()
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if tok := tokenFrom(r); !pushAllowed(tok.Role, ev.PredicateType) {
		fail(w, http.StatusForbidden, fmt.Sprintf("a %s token may not push %s evidence", tok.Role, ev.PredicateType))
		return
	}
	s.metrics.verifications.WithLabelValues(map[bool]string{true: "verified", false: "unverified"}[reason == "ok"], reason).Inc()
	sum := sha256.Sum256(body)
	release, err := s.claimBuildID(r.Context(), ev.BuildID, hex.EncodeToString(sum[:]), ev)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	defer release()
	id, existed, err := s.index.Put(r.Context(), ev)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	crashpoint.Reach(crashpoint.PushIndexed)
	w.Header().Set("Content-Type", "application/json")
	if !existed {
		w.WriteHeader(http.StatusCreated)
	}
	json.NewEncoder(w).Encode(pushResponse{ID: id, Existed: existed})
}

// checkBundle parses and, where it can, verifies a pushed bundle, and
// returns its index record. reason is "ok" when the bundle verified,
// "unknown-signer" when its signer is neither a builder key of this server
// nor recorded in an entry of this log (so it could not be verified), and
// otherwise says why it was rejected (err is then non-nil).
func (s *Server) checkBundle(r *http.Request, body []byte) (*store.Evidence, string, error) {
	b := new(bundle.Bundle)
	if err := b.UnmarshalJSON(body); err != nil {
		return nil, "malformed", fmt.Errorf("bundle rejected: %v", err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, "malformed", errors.New("bundle rejected: only bundles with a DSSE envelope carrying an in-toto statement are indexed")
	}
	stmt, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return nil, "malformed", fmt.Errorf("statement rejected: %v", err)
	}
	facts, err := provenanceFacts(stmt)
	if err != nil {
		return nil, "malformed", err
	}
	tr, err := trust.LoadTrustedRoot(s.trustedRoot)
	if err != nil {
		return nil, "internal", fmt.Errorf("couldn't load trusted root: %w", err)
	}
	known := false
	hint := b.GetVerificationMaterial().GetPublicKey().GetHint()
	var signerPub crypto.PublicKey
	for _, k := range s.builders {
		if id, _ := trust.KeyID(k.Public()); id == hint && hint != "" {
			known, signerPub = true, k.Public()
		}
	}
	var ourEntry *protorekor.TransparencyLogEntry
	for _, tle := range b.GetVerificationMaterial().GetTlogEntries() {
		if bytes.Equal(tle.GetLogId().GetKeyId(), s.log.LogID()) {
			ourEntry = tle
			if pub := entryKey(tle); pub != nil && !known && hint != "" {
				if id, _ := trust.KeyID(pub); id == hint {
					known, signerPub = true, pub
				}
			}
		}
	}
	if known {
		tr.Keys = append(tr.Keys, trust.Key{PublicKey: signerPub, Window: trust.Window{Start: s.created}})
	}
	tm, err := tr.TrustedMaterial()
	if err != nil {
		return nil, "internal", fmt.Errorf("couldn't load trusted root: %w", err)
	}
	reason := "unknown-signer"
	if known {
		rep, err := verify.Verify(r.Context(), body, verify.Artifact{Digests: stmt.Subject[0].Digest}, tm,
			verify.Requirements{PredicateType: stmt.PredicateType})
		if err != nil {
			return nil, "malformed", fmt.Errorf("bundle rejected: %v", err)
		}
		if !rep.Verified {
			f := rep.Failed()
			if len(f) > 0 {
				return nil, f[0].Name, fmt.Errorf("bundle does not verify: %s: %s", f[0].Name, f[0].Reason)
			}
			return nil, "unverified", errors.New("bundle does not verify")
		}
		reason = "ok"
	}
	ev := evidenceFor(body, stmt, facts, signerPub, ourEntry)
	if signerPub == nil && hint != "" {
		if raw, err := base64.StdEncoding.DecodeString(hint); err == nil && len(raw) == sha256.Size {
			ev.SignerKeyID = hex.EncodeToString(raw)
		}
	}
	ev.SignerIdentity = verify.SignerIdentity(b)
	if ev.LogIndex < 0 {
		if tles := b.GetVerificationMaterial().GetTlogEntries(); len(tles) > 0 {
			ev.LogIndex = tles[0].GetLogIndex()
		}
	}
	for _, tle := range b.GetVerificationMaterial().GetTlogEntries() {
		if t := tle.GetIntegratedTime(); t > 0 {
			ev.IntegratedTime = time.Unix(t, 0).UTC()
			break
		}
	}
	return ev, reason, nil
}

// entryKey returns the public key recorded in a hashedrekord v0.0.2 entry.
func entryKey(tle *protorekor.TransparencyLogEntry) crypto.PublicKey {
	var e rekorpb.Entry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(tle.GetCanonicalizedBody(), &e); err != nil {
		return nil
	}
	raw := e.GetSpec().GetHashedRekordV002().GetSignature().GetVerifier().GetPublicKey().GetRawBytes()
	if raw == nil {
		return nil
	}
	pub, err := x509.ParsePKIXPublicKey(raw)
	if err != nil {
		return nil
	}
	return pub
}

// ToJSON converts an index record to its wire form.
func ToJSON(e *store.Evidence) EvidenceJSON {
	j := EvidenceJSON{ID: e.ID, BundleSHA256: e.BundleSHA256, Bundle: e.Bundle, PredicateType: e.PredicateType,
		SignerKeyID: e.SignerKeyID, SignerIdentity: e.SignerIdentity, SignerIssuer: e.SignerIssuer,
		BuilderID: e.BuilderID, SourceURI: e.SourceURI, SourceCommit: e.SourceCommit, BuildID: e.BuildID,
		LogIndex: e.LogIndex, IndexedAt: e.IndexedAt, Subjects: []attest.Subject{}}
	if !e.IntegratedTime.IsZero() {
		t := e.IntegratedTime
		j.IntegratedTime = &t
	}
	for _, sub := range e.Subjects {
		j.Subjects = append(j.Subjects, attest.Subject{Name: sub.Name, Digest: sub.Digests})
	}
	return j
}

// FromJSON converts the wire form back to an index record.
func FromJSON(j EvidenceJSON) *store.Evidence {
	e := &store.Evidence{ID: j.ID, BundleSHA256: j.BundleSHA256, Bundle: j.Bundle, PredicateType: j.PredicateType,
		SignerKeyID: j.SignerKeyID, SignerIdentity: j.SignerIdentity, SignerIssuer: j.SignerIssuer,
		BuilderID: j.BuilderID, SourceURI: j.SourceURI, SourceCommit: j.SourceCommit, BuildID: j.BuildID,
		LogIndex: j.LogIndex, IndexedAt: j.IndexedAt}
	if j.IntegratedTime != nil {
		e.IntegratedTime = *j.IntegratedTime
	}
	for _, sub := range j.Subjects {
		e.Subjects = append(e.Subjects, store.Subject{Name: sub.Name, Digests: sub.Digest})
	}
	return e
}

// QueryParams encodes q as the query string of GET /api/v1/evidence.
func QueryParams(q store.Query) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("digest", q.Digest)
	set("name", q.SubjectName)
	set("predicateType", q.PredicateType)
	set("signerKeyId", q.SignerKeyID)
	set("identity", q.SignerIdentity)
	set("builder", q.BuilderID)
	set("source", q.SourceURI)
	set("commit", q.SourceCommit)
	set("buildId", q.BuildID)
	if len(q.ExcludePredicateTypes) > 0 {
		v["notPredicateType"] = append([]string(nil), q.ExcludePredicateTypes...)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.AfterID != 0 {
		v.Set("after", strconv.FormatInt(q.AfterID, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func parseQuery(v url.Values) (store.Query, error) {
	q := store.Query{Digest: v.Get("digest"), SubjectName: v.Get("name"), PredicateType: v.Get("predicateType"),
		SignerKeyID: v.Get("signerKeyId"), SignerIdentity: v.Get("identity"), BuilderID: v.Get("builder"),
		SourceURI: v.Get("source"), SourceCommit: v.Get("commit"), BuildID: v.Get("buildId"),
		ExcludePredicateTypes: v["notPredicateType"]}
	var err error
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(t.name); s != "" {
			if *t.dst, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return q, fmt.Errorf("%s is not an RFC 3339 time", t.name)
			}
		}
	}
	if s := v.Get("after"); s != "" {
		if q.AfterID, err = strconv.ParseInt(s, 10, 64); err != nil || q.AfterID < 0 {
			return q, errors.New("after is not an evidence ID")
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, errors.New("limit is not a non-negative number")
		}
	}
	return q, nil
}

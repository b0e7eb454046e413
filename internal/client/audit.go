package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/trust"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Actions of the signed bundles that are actions themselves (the audit
// entries' actions are their predicates' Action).
const (
	ActionSign    = "sign"    // SLSA provenance: an artifact was built and signed
	ActionApprove = "approve" // an approval
	ActionDecide  = "decide"  // a deploy decision (SLSA VSA)
	// ActionRedFlags: the red flags the server found comparing a build
	// with its lineage (attest.PredicateRedFlags), signed by the audit key.
	ActionRedFlags = "redflags"
)

// actionType is a predicate type of the audit trail and the action it
// stands for.
type actionType struct{ predicateType, action string }

// actionTypes maps the predicate types of the audit trail to actions; ""
// means the audit predicate's own Action.
var actionTypes = []actionType{
	{api.PredicateAudit, ""},
	{attest.PredicateSLSAv1, ActionSign},
	{attest.PredicateSLSAv02, ActionSign},
	{attest.PredicateApproval, ActionApprove},
	{"https://slsa.dev/verification_summary/v1", ActionDecide},
	{attest.PredicateRedFlags, ActionRedFlags},
}

// AuditQuery selects entries of the audit trail. Empty fields match all.
type AuditQuery struct {
	// Action matches an entry's action exactly ("policy.changed") or as
	// the part before its first dot ("deployment").
	Action string
	// Actor matches an audit entry's actor or token, or a bundle's signer
	// key ID (hex) or keyless identity.
	Actor string
	// Artifact is "sha256:HEX": entries about it (a policy's or a trust
	// root's digest selects their changes).
	Artifact string
	// Subject matches a subject's name exactly, on the server: audit
	// entries about an environment's policy are named "policy/ENV"
	// (api.SubjectPolicyPrefix), trust root changes "trust-root".
	Subject string
	// Since (inclusive) and Until (exclusive) bound the entry's log time.
	Since, Until time.Time
}

// AuditEntry is one verified-or-not entry of the audit trail.
type AuditEntry struct {
	EvidenceID int64  `json:"evidenceId"`
	Action     string `json:"action"`
	// Actor is who the client said acted (audit entries), Token the
	// token the server authenticated ("role:name"); bundles have neither,
	// and are named by their signer.
	Actor string `json:"actor,omitempty"`
	Token string `json:"token,omitempty"`
	// Identity, Issuer and Session name a person who signed in through
	// an OIDC provider (attest.AuditPredicate).
	Identity       string    `json:"identity,omitempty"`
	Issuer         string    `json:"issuer,omitempty"`
	Session        string    `json:"session,omitempty"`
	SignerKeyID    string    `json:"signerKeyId,omitempty"`
	SignerIdentity string    `json:"signerIdentity,omitempty"`
	Time           time.Time `json:"time"`
	Subjects       []string  `json:"subjects"`
	PredicateType  string    `json:"predicateType"`
	// LogIndex is the entry's index in the server's log: the one its
	// inclusion proof proved when Verified, else the index's word (-1:
	// none).
	LogIndex int64 `json:"logIndex"`
	// Detail is an audit entry's record (the deployment record, the signed
	// policy …).
	Detail json.RawMessage `json:"detail,omitempty"`
	// Verified is true when the entry's signature verified (audit entries:
	// by the audit key) and its inclusion in the log was proven against a
	// checkpoint consistent with the one this client verified; Problem
	// says what failed otherwise.
	Verified bool   `json:"verified"`
	Problem  string `json:"problem,omitempty"`
	// Pushed marks a bundle that was pushed to the server, which verified
	// it against nothing it trusts and so neither logged it nor
	// attributes it (api.Evidence.Verified): it is in the trail,
	// not verified, and not a failure of the trail. A bundle the server
	// verified is logged when pushed, so one without its entry fails.
	Pushed bool `json:"pushed,omitempty"`
	// Signers are the keys that signed what the entry records, named from
	// a custody trust root by NameSigners: a bundle's signer, the admins
	// counted for a policy change, the signers of a trust root version.
	// (An audit entry itself is signed by the server's audit key, which
	// AuditTrail checks.) Nil until NameSigners runs.
	Signers []AuditSigner `json:"signers,omitempty"`

	// logged is what verification proved; nil unless Verified.
	logged *loggedEnvelope
}

// AuditSigner is a key that signed what an audit entry records.
type AuditSigner struct {
	// KeyID is as the entry names the key: hex SHA-256 of its PKIX DER
	// for bundles, trust.KeyID for admin signatures.
	KeyID string `json:"keyId"`
	// Role and Identity are the trust root's record of the key: what it
	// may sign and who holds it.
	Role     string `json:"role,omitempty"`
	Identity string `json:"identity,omitempty"`
	// Problem is why the signer does not count as trusted: NotInTrustRoot,
	// or the key was revoked before the entry's time. Empty: trusted.
	Problem string `json:"problem,omitempty"`
}

// AuditKeyRole is AuditSigner.Role of the server's audit key, which signs
// the server's decisions (VSAs) as well as its audit entries.
const AuditKeyRole = "server audit key"

// NotInTrustRoot is AuditSigner.Problem for a key the trust root does not
// hold.
const NotInTrustRoot = "not in trust root"

// NameSigners sets the Signers of every verified entry of trail from the
// custody trust root: each signer key's role and holder, or
// NotInTrustRoot. A bundle's signer and a policy change's admins whose key
// the root records as compromised at or before the entry's time get a
// Problem too; a trust root version's signers are only looked up (an
// update may revoke the very admins who sign it, and trust.Update judged
// them by the version before). Entries that failed verification are left
// alone: their records are not to be read.
//
// A bundle signed with auditKey (the server's decisions, VSAs) is the
// server's own record, trusted as far as the pinned audit key is: its
// signer is named AuditKeyRole, without a trust root lookup.
func NameSigners(trail []*AuditEntry, root *trust.Document, auditKey crypto.PublicKey) {
	auditID := ""
	if der, err := x509.MarshalPKIXPublicKey(auditKey); err == nil {
		sum := sha256.Sum256(der)
		auditID = hex.EncodeToString(sum[:])
	}
	byID := map[string]*trust.Key{}
	for i := range root.Root.Keys {
		k := &root.Root.Keys[i]
		if k.ID != "" {
			byID[k.ID] = k
		}
		if id, err := trust.KeyID(k.PublicKey); err == nil {
			byID[id] = k
		}
		if der, err := x509.MarshalPKIXPublicKey(k.PublicKey); err == nil {
			sum := sha256.Sum256(der)
			byID[hex.EncodeToString(sum[:])] = k
		}
	}
	for _, e := range trail {
		if !e.Verified {
			continue
		}
		ids, revocable := e.signerKeyIDs()
		e.Signers = []AuditSigner{}
		if e.PredicateType != api.PredicateAudit && auditID != "" && e.SignerKeyID == auditID {
			e.Signers = append(e.Signers, AuditSigner{KeyID: auditID, Role: AuditKeyRole})
			continue
		}
		for _, id := range ids {
			sg := AuditSigner{KeyID: id}
			k := byID[id]
			switch {
			case k == nil:
				sg.Problem = NotInTrustRoot
			default:
				sg.Role, sg.Identity = string(k.Role), k.Identity
				if revocable && !k.CompromisedSince.IsZero() && !e.Time.Before(k.CompromisedSince) {
					sg.Problem = "revoked: compromised since " + k.CompromisedSince.UTC().Format(time.RFC3339)
				}
			}
			e.Signers = append(e.Signers, sg)
		}
	}
}

// signerKeyIDs returns the IDs of the keys that signed what e records, and
// whether the keys' revocation applies at e.Time.
func (e *AuditEntry) signerKeyIDs() ([]string, bool) {
	if e.PredicateType != api.PredicateAudit {
		if e.SignerKeyID == "" {
			return nil, true
		}
		return []string{e.SignerKeyID}, true
	}
	switch e.Action {
	case "policy.changed":
		var ch api.PolicyChange
		if json.Unmarshal(e.Detail, &ch) == nil {
			return ch.Admins, true
		}
	case "trust.changed":
		var ch api.TrustChange
		if json.Unmarshal(e.Detail, &ch) != nil {
			return nil, false
		}
		d, err := trust.ParseDocument(ch.Document)
		if err != nil {
			return nil, false
		}
		var ids []string
		for _, sg := range d.Signatures {
			if !slices.Contains(ids, sg.KeyID) {
				ids = append(ids, sg.KeyID)
			}
		}
		return ids, false
	}
	return nil, false
}

// AuditTrail lists the audit trail matching q, oldest log entry first:
// the server's audit entries (PredicateAudit) and the signed bundles that
// are actions themselves (provenance, approvals, decisions). Each entry is
// verified on its own: its DSSE signature against the key the log recorded
// for it (for audit entries, that key must be auditKey), and its inclusion
// in the server's log against a checkpoint consistent with the latest one,
// itself checked against the checkpoint this client remembers. An entry
// that fails is returned with Verified false and a Problem; an error is
// returned only when the trail could not be read or the log itself is
// inconsistent.
func (c *Client) AuditTrail(ctx context.Context, q AuditQuery, auditKey crypto.PublicKey) ([]*AuditEntry, error) {
	auditDER, err := x509.MarshalPKIXPublicKey(auditKey)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	lc, err := c.logClient(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := c.sync(ctx, lc)
	if err != nil {
		return nil, err
	}
	return c.auditTrail(ctx, q, auditDER, lc, latest)
}

// auditTrail is AuditTrail against the checkpoint latest, which the caller
// verified.
func (c *Client) auditTrail(ctx context.Context, q AuditQuery, auditDER []byte, lc *tlog.Client, latest *tlog.Checkpoint) ([]*AuditEntry, error) {
	v := &entryVerifier{c: c, lc: lc, latest: latest, consistent: map[uint64]bool{}}
	var out []*AuditEntry
	for _, at := range actionTypes {
		if !at.wanted(q.Action) {
			continue
		}
		es, err := c.auditOfType(ctx, v, q, at, auditDER)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	sortAuditEntries(out)
	return out, nil
}

// wanted reports whether entries of at can match the action filter action
// ("" matches all).
func (at actionType) wanted(action string) bool {
	if action == "" {
		return true
	}
	if at.action != "" {
		return matchAction(action, at.action)
	}
	// The audit predicate's own actions are never these.
	return action != ActionSign && action != ActionApprove && action != ActionDecide && action != ActionRedFlags
}

// auditOfType pages through the server's index for at's predicate type and
// returns the entries, verified, that match q.
func (c *Client) auditOfType(ctx context.Context, v *entryVerifier, q AuditQuery, at actionType, auditDER []byte) ([]*AuditEntry, error) {
	var out []*AuditEntry
	sq := api.Query{PredicateType: at.predicateType, Digest: q.Artifact, SubjectName: q.Subject, Since: q.Since, Until: q.Until, Limit: auditPage}
	for {
		page, err := c.searchPage(ctx, &sq)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		for _, j := range page {
			e, err := v.auditEntry(ctx, j, at.action, auditDER)
			if err != nil {
				return nil, err
			}
			if q.matches(e) {
				out = append(out, e)
			}
		}
		sq.AfterID = page[len(page)-1].ID
	}
}

// auditEntry verifies the indexed bundle j against the log and describes
// it. action is the action its predicate type stands for, "" for the audit
// predicate, whose bundles must be signed by the audit key auditDER.
func (v *entryVerifier) auditEntry(ctx context.Context, j api.Evidence, action string, auditDER []byte) (*AuditEntry, error) {
	e := &AuditEntry{EvidenceID: j.ID, Action: action, PredicateType: j.PredicateType, LogIndex: j.LogIndex,
		SignerKeyID: j.SignerKeyID, SignerIdentity: j.SignerIdentity, Time: j.When(), Subjects: []string{}}
	var want []byte
	if action == "" || action == ActionRedFlags {
		want = auditDER
	}
	le, problem, err := v.verify(ctx, j.Bundle, want)
	if err != nil {
		return nil, err
	}
	e.Verified, e.Problem = problem == "", problem
	if problem == problemNotLogged && action != "" && !j.Verified {
		e.Pushed, e.Problem = true, "pushed unverified: the server trusts no key or CA that verifies it, so it did not log it"
	}
	var payload []byte
	if e.Verified {
		// The log's word, not the index's: a bundle may hold
		// entries of other logs too.
		e.logged, e.LogIndex, payload = le, le.logIndex, le.payload
	}
	if e.Verified && action != "" {
		// Name a bundle by the key the log recorded, not by the
		// index's word.
		sum := sha256.Sum256(le.key)
		if id := hex.EncodeToString(sum[:]); e.SignerKeyID != "" && e.SignerKeyID != id {
			e.Verified, e.Problem = false, fmt.Sprintf("the index names signer key %s but the log records %s", e.SignerKeyID, id)
		} else {
			e.SignerKeyID = id
		}
	}
	e.describe(payload, j)
	return e, nil
}

// matches reports whether e passes q's action and actor filters.
func (q AuditQuery) matches(e *AuditEntry) bool {
	if q.Action != "" && !matchAction(q.Action, e.Action) {
		return false
	}
	if q.Actor != "" && q.Actor != e.Actor && q.Actor != e.Token && q.Actor != e.Identity && q.Actor != e.SignerKeyID && q.Actor != e.SignerIdentity {
		return false
	}
	return true
}

// sortAuditEntries orders entries by log index, those not in the log last,
// then by evidence ID.
func sortAuditEntries(out []*AuditEntry) {
	slices.SortStableFunc(out, func(a, b *AuditEntry) int {
		switch {
		case a.LogIndex < 0 && b.LogIndex >= 0:
			return 1
		case b.LogIndex < 0 && a.LogIndex >= 0:
			return -1
		case a.LogIndex != b.LogIndex:
			return int(a.LogIndex - b.LogIndex)
		}
		return int(a.EvidenceID - b.EvidenceID)
	})
}

func matchAction(want, got string) bool {
	if want == got {
		return true
	}
	before, _, _ := strings.Cut(got, ".")
	return want == before
}

// describe fills in what the statement says; payload is nil when the
// bundle did not verify far enough to read it (the index's record is used).
func (e *AuditEntry) describe(payload []byte, j api.Evidence) {
	for _, s := range j.Subjects {
		e.Subjects = append(e.Subjects, subjectString(s))
	}
	if payload == nil {
		if e.Action == "" {
			e.Action = "audit"
		}
		return
	}
	st, err := attest.ParseStatement(payload)
	if err != nil {
		return
	}
	e.Subjects = e.Subjects[:0]
	for _, s := range st.Subject {
		e.Subjects = append(e.Subjects, subjectString(s))
	}
	if st.PredicateType != api.PredicateAudit {
		return
	}
	p, err := attest.ParseAudit(st.Predicate)
	if err != nil {
		e.Verified, e.Problem = false, "audit predicate is malformed"
		return
	}
	e.Action, e.Actor, e.Token, e.Time, e.Detail = p.Action, p.Actor, p.Token, p.Time, p.Detail
	e.Identity, e.Issuer, e.Session = p.Identity, p.Issuer, p.Session
}

func subjectString(s attest.Subject) string {
	if d, ok := s.Digest["sha256"]; ok {
		return s.Name + "@sha256:" + d
	}
	return s.Name
}

// auditPage is the first page size AuditTrail asks for. Audit entries
// hold their records (a policy.changed entry its whole signed policy), so
// a page can be large: searchPage halves the size while an answer would
// not fit MaxResponseBytes.
const auditPage = 100

// searchPage reads the page of q after q.AfterID, lowering q.Limit while
// the answer does not fit MaxResponseBytes. It checks that the page starts
// after q.AfterID, so a server that ignores it cannot loop the caller. An
// empty page is the end; a short one is not (a server may cap pages below
// q.Limit).
func (c *Client) searchPage(ctx context.Context, q *api.Query) ([]api.Evidence, error) {
	for {
		page, err := c.searchRaw(ctx, *q)
		if errors.Is(err, errTooLarge) && q.Limit > 1 {
			q.Limit /= 2
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(page) > 0 && page[0].ID <= q.AfterID {
			return nil, fmt.Errorf("server answered evidence %d when asked for evidence after %d", page[0].ID, q.AfterID)
		}
		return page, nil
	}
}

// errTooLarge: an answer reached MaxResponseBytes and was cut.
var errTooLarge = errors.New("server's answer is larger than the client reads")

// searchRaw is Search without checkBundles: AuditTrail verifies each
// bundle itself and reports failures per entry.
func (c *Client) searchRaw(ctx context.Context, q api.Query) ([]api.Evidence, error) {
	b, err := c.do(ctx, http.MethodGet, "/api/v1/evidence?"+q.Values().Encode(), "", nil)
	if err != nil {
		return nil, err
	}
	if len(b) >= MaxResponseBytes {
		return nil, fmt.Errorf("%w (%d bytes) for a page of %d", errTooLarge, MaxResponseBytes, q.Limit)
	}
	var resp struct {
		Evidence []api.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, errors.New("server answered a malformed search response")
	}
	for i := 1; i < len(resp.Evidence); i++ {
		if resp.Evidence[i].ID <= resp.Evidence[i-1].ID {
			return nil, errors.New("server answered evidence out of order")
		}
	}
	return resp.Evidence, nil
}

type entryVerifier struct {
	c          *Client
	lc         *tlog.Client
	latest     *tlog.Checkpoint
	consistent map[uint64]bool // checkpoint sizes proven consistent with latest
}

// loggedEnvelope is a bundle's envelope as verify proved it logged.
type loggedEnvelope struct {
	payload  []byte
	pae      []byte // what the signature signs: DSSE's pre-authentication encoding
	key      []byte // the logged key, PKIX DER
	logIndex int64  // the index whose inclusion was proven
}

// verify checks one bundle: a DSSE envelope with one signature, logged in
// the server's log with an inclusion proof against a checkpoint of the log
// consistent with v.latest, whose logged signature and key are the
// envelope's and verify over it (by the key wantKey, PKIX DER, when set).
// It returns the verified envelope, or a problem. err is for a log that is
// inconsistent or unreachable, which fails the whole trail.
func (v *entryVerifier) verify(ctx context.Context, raw []byte, wantKey []byte) (le *loggedEnvelope, problem string, err error) {
	pb := new(protobundle.Bundle)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, pb); err != nil {
		return nil, "not a Sigstore bundle", nil
	}
	env := pb.GetDsseEnvelope()
	if env == nil || len(env.GetSignatures()) != 1 {
		return nil, "not a DSSE envelope with one signature", nil
	}
	pae := dsse.PAE(env.GetPayloadType(), env.GetPayload())
	sig := env.GetSignatures()[0].GetSig()
	v.c.mu.Lock()
	logID := v.c.logID
	v.c.mu.Unlock()
	for _, tle := range pb.GetVerificationMaterial().GetTlogEntries() {
		if !bytes.Equal(tle.GetLogId().GetKeyId(), logID) || tle.GetInclusionProof() == nil {
			continue
		}
		ip := tle.GetInclusionProof()
		cp, err := tlog.ParseCheckpoint([]byte(ip.GetCheckpoint().GetEnvelope()), v.lc.Verifier())
		if err != nil {
			return nil, "its checkpoint is not signed by the server's log: " + err.Error(), nil
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody())
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), cp.Size, leaf, ip.GetHashes(), cp.Hash); err != nil {
			return nil, fmt.Sprintf("log entry %d is not in its checkpoint: %v", tle.GetLogIndex(), err), nil
		}
		if k := v.lc.WitnessThreshold(); k > 0 && cp.Size > v.latest.Size {
			// v.latest is the newest checkpoint k witnesses cosigned: the
			// entry counts only when proven into it.
			if idx := uint64(ip.GetLogIndex()); idx >= v.latest.Size {
				return nil, tlog.NotWitnessedError(idx, v.latest.Size, k).Error(), nil
			}
			if err := witnessedInclusion(ctx, v.lc, v.latest, uint64(ip.GetLogIndex()), leaf); err != nil {
				return nil, "", err
			}
		} else if err := v.checkConsistent(ctx, cp); err != nil {
			return nil, "", err
		}
		key, problem := loggedSignature(tle.GetCanonicalizedBody(), pae, env.GetPayload(), sig)
		if problem != "" {
			return nil, fmt.Sprintf("log entry %d: %s", tle.GetLogIndex(), problem), nil
		}
		if wantKey != nil && !bytes.Equal(key, wantKey) {
			return nil, fmt.Sprintf("log entry %d is signed by another key than the audit key", tle.GetLogIndex()), nil
		}
		return &loggedEnvelope{payload: env.GetPayload(), pae: pae, key: key, logIndex: ip.GetLogIndex()}, "", nil
	}
	return nil, problemNotLogged, nil
}

// problemNotLogged is the problem of a bundle without an entry of the
// server's log.
const problemNotLogged = "not in the server's transparency log (no inclusion proof of this log)"

// checkConsistent proves cp consistent with the latest checkpoint: cp is
// older, or was appended after the trail's checkpoint was read (the server
// writes while a trail is read) and must extend it.
func (v *entryVerifier) checkConsistent(ctx context.Context, cp *tlog.Checkpoint) error {
	if v.consistent[cp.Size] {
		return nil
	}
	older, newer := cp, v.latest
	if cp.Size > v.latest.Size {
		older, newer = v.latest, cp
	}
	var p [][]byte
	var err error
	if older.Size < newer.Size && older.Size > 0 {
		if p, err = v.lc.ConsistencyProof(ctx, older.Size, newer.Size); err != nil {
			return fmt.Errorf("server's log: %w", err)
		}
	}
	if err := tlog.VerifyConsistency(older, newer, p); err != nil {
		return fmt.Errorf("server's log: %w", err)
	}
	v.consistent[cp.Size] = true
	return nil
}

// loggedKey is the key a log entry's verifier records, as PKIX DER and
// parsed: a public key, or the public key of a certificate (a keyless
// signature: the certificate's chain is verify's to judge; the trail
// checks that the logged certificate's key made the signature).
func loggedKey(v *rekorpb.Verifier) ([]byte, crypto.PublicKey, string) {
	if c := v.GetX509Certificate(); c != nil {
		cert, err := x509.ParseCertificate(c.GetRawBytes())
		if err != nil {
			return nil, nil, "the logged certificate is malformed"
		}
		der, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err != nil {
			return nil, nil, "the logged certificate's key is of an unsupported type"
		}
		return der, cert.PublicKey, ""
	}
	der := v.GetPublicKey().GetRawBytes()
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, nil, "the logged key is not a public key"
	}
	return der, pub, ""
}

// loggedSignature checks that a log entry body (hashedrekord v0.0.2 over
// the PAE, or DSSE v0.0.2) records this envelope's signature and that it
// verifies with the recorded key; it returns the key's PKIX DER.
func loggedSignature(body, pae, payload, sig []byte) (key []byte, problem string) {
	var e rekorpb.Entry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &e); err != nil {
		return nil, "body is not a log entry"
	}
	var sigs []*rekorpb.Signature
	switch {
	case e.GetSpec().GetHashedRekordV002() != nil:
		hr := e.GetSpec().GetHashedRekordV002()
		h, ok := tlog.HashFunc(hr.GetData().GetAlgorithm())
		if !ok {
			return nil, "unknown digest algorithm"
		}
		hh := h.New()
		hh.Write(pae)
		if !bytes.Equal(hh.Sum(nil), hr.GetData().GetDigest()) {
			return nil, "the log recorded another envelope"
		}
		sigs = []*rekorpb.Signature{hr.GetSignature()}
	case e.GetSpec().GetDsseV002() != nil:
		d := e.GetSpec().GetDsseV002()
		hh := crypto.SHA256.New()
		hh.Write(payload)
		if !bytes.Equal(hh.Sum(nil), d.GetPayloadHash().GetDigest()) {
			return nil, "the log recorded another payload"
		}
		sigs = d.GetSignatures()
	default:
		return nil, "unknown log entry kind"
	}
	for _, s := range sigs {
		if !bytes.Equal(s.GetContent(), sig) {
			continue
		}
		der, pub, problem := loggedKey(s.GetVerifier())
		if problem != "" {
			return nil, problem
		}
		sv, err := signature.LoadDefaultVerifier(pub)
		if err != nil {
			return nil, "the logged key is of an unsupported type"
		}
		if err := sv.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae)); err != nil {
			return nil, "the signature does not verify with the logged key"
		}
		return der, ""
	}
	return nil, "the log recorded another signature"
}

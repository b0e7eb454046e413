package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"

	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/transparency-dev/tessera"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/jsonstrict"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/internal/tsa"
	"github.com/custody-dev/custody/signer"
)

// errReplay is returned for a build ID that was already indexed.
var errReplay = errors.New("build ID was already used")

// readBody reads a capped request body, answering 413 or 400 itself.
// Every body a client sends the server is JSON, and is refused (400)
// unless jsonstrict.Check accepts it: a duplicate member name anywhere (a
// hidden first "subject") or a string that is not UTF-8 (the index would
// hold other bytes than were signed) is not read on.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", mbe.Limit))
			return nil, false
		}
		fail(w, http.StatusBadRequest, "couldn't read request body")
		return nil, false
	}
	if err := jsonstrict.Check(b); err != nil {
		fail(w, http.StatusBadRequest, "request body rejected: "+err.Error())
		return nil, false
	}
	return b, true
}

func (s *Server) serveSign(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req api.SignRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		fail(w, http.StatusBadRequest, "request is not a JSON object {\"statement\": …}")
		return
	}
	if len(req.Statement) == 0 {
		fail(w, http.StatusBadRequest, "request has no statement")
		return
	}
	if err := checkReservedStatement(req.Statement); err != nil {
		fail(w, http.StatusForbidden, "statement refused: "+err.Error())
		return
	}
	stmt, err := attest.ParseStatement(req.Statement)
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Sprintf("statement rejected: %v", err))
		return
	}
	may := []api.Role{api.RoleBuilder, api.RoleAdmin} // the roles that may have it signed
	if stmt.PredicateType == attest.PredicateVSA {
		may = []api.Role{api.RoleDeployer, api.RoleAdmin}
	}
	if r, ok = s.actAs(w, r, may); !ok {
		return
	}
	tok := tokenFrom(r)
	keyName, key, err := s.signingKey(tok, req.Key, stmt.PredicateType)
	if err != nil {
		fail(w, http.StatusForbidden, err.Error())
		return
	}
	facts, err := provenanceFacts(stmt)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	release, err := s.claimBuildID(r.Context(), facts.BuildID, "", nil)
	if err != nil {
		s.failWrite(w, err)
		return
	}
	defer release()
	sum := sha256.Sum256(req.Statement)
	if err := s.auditPerson(r.Context(), r, auditEvent{action: "evidence.signed", actor: tok.Name, subjects: stmt.Subject,
		detail: map[string]string{"predicateType": stmt.PredicateType, "key": keyName, "statementSha256": hex.EncodeToString(sum[:])}}); err != nil {
		s.failAudit(w, err)
		return
	}

	bundleJSON, tle, id, err := s.sign(r.Context(), key, req.Statement, stmt, facts)
	if err != nil {
		s.metrics.appends.WithLabelValues("error").Inc()
		s.failWrite(w, err)
		return
	}
	s.metrics.appends.WithLabelValues("ok").Inc()
	s.metrics.appendLatency.Observe(time.Since(start).Seconds())
	s.redFlags.signed(id, stmt.PredicateType)
	s.logger.InfoContext(r.Context(), "signed", "key", keyName, "token", tok.Name, "log_index", tle.GetLogIndex(), "id", id)
	// The bundle goes out byte for byte as indexed (json.Marshal would
	// compact it), so pushing it back finds the same record.
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"id\":%d,\"bundle\":%s}\n", id, bundleJSON)
}

// signingKey chooses the key that signs a statement of predicateType for
// tok, which asked for the key named asked ("" for its default), or says
// why the token may not have it signed (answered 403).
//
// A decision (an SLSA VSA) is the server's own record: it is signed with
// the audit key, for deployer and admin tokens alike, and never with a
// builder key (a compromised builder key then taints what it built, not
// the decisions, e.g. the rollback of the incident that revokes it).
// Builder tokens may not have decisions signed. Everything else is signed
// with a builder key: a builder token's own, or for an admin token the one
// it names (default DefaultBuilderKey); deployer tokens may have only
// decisions signed.
func (s *Server) signingKey(tok *TokenInfo, asked, predicateType string) (string, crypto.Signer, error) {
	if predicateType == attest.PredicateVSA {
		switch {
		case tok.Role != api.RoleDeployer && tok.Role != api.RoleAdmin:
			return "", nil, fmt.Errorf("%s may not have decisions (%s) signed", roleToken(tok.Role), attest.PredicateVSA)
		case asked != "" && asked != api.AuditKeyName:
			return "", nil, fmt.Errorf("decisions (%s) are signed with the server's audit key, not builder key %q", attest.PredicateVSA, asked)
		}
		return api.AuditKeyName, s.auditKey, nil
	}
	name := tok.Key
	switch {
	case tok.Person != nil && tok.Role == api.RoleBuilder:
		return "", nil, fmt.Errorf("%s is a signed-in person, and a person's session is scoped to no builder key: "+
			"sign with your own key (custody build --key KEY) and push, or have an admin make a builder token for one of the server's keys "+
			"(custody token create --role builder --key NAME)", tok.Name)
	case tok.keyless && tok.Key == "":
		return "", nil, fmt.Errorf("identity %s is not mapped to a builder key (builderKey in its issuer entry)", strings.TrimPrefix(tok.Name, "oidc:"))
	case tok.Role == api.RoleDeployer:
		return "", nil, errors.New("a deployer token may have only decisions (" + attest.PredicateVSA + ") signed")
	case asked == api.AuditKeyName:
		return "", nil, errors.New("the audit key signs only the server's records and decisions")
	case tok.Role == api.RoleAdmin && asked != "":
		name = asked
	case tok.Role == api.RoleAdmin:
		name = api.DefaultBuilderKey
	case asked != "" && asked != tok.Key:
		return "", nil, fmt.Errorf("this token may sign only with builder key %q", tok.Key)
	}
	key, ok := s.builders[name]
	switch {
	case !ok && tok.Role == api.RoleAdmin:
		return "", nil, fmt.Errorf("builder key %q is not one this server holds (this server holds: %s): name one of those", name, s.builderNames())
	case !ok:
		return "", nil, fmt.Errorf("this token is scoped to builder key %q, which this server does not hold (this server holds: %s): "+
			"start custody serve with --builder-key %s=FILE, or use a token of one of its keys", name, s.builderNames(), name)
	}
	return name, key, nil
}

// builderNames lists the names of the server's builder keys, sorted.
func (s *Server) builderNames() string {
	return strings.Join(slices.Sorted(maps.Keys(s.builders)), ", ")
}

// failWrite answers a failed write with the right status.
func (s *Server) failWrite(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errReplay):
		fail(w, http.StatusConflict, err.Error())
	case errors.Is(err, errPushInFlight):
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, tessera.ErrPushback):
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, "log is overloaded, retry later")
	case errors.Is(err, tlog.ErrInvalidEntry), errors.Is(err, store.ErrInvalid):
		fail(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.Canceled):
		fail(w, http.StatusServiceUnavailable, "request cancelled")
	default:
		s.logger.Error("write failed", "err", err)
		fail(w, http.StatusInternalServerError, "internal error, see the server log")
	}
}

// provenanceFacts parses SLSA provenance predicates; other predicates give
// empty facts.
func provenanceFacts(stmt *attest.Statement) (*attest.ProvenanceFacts, error) {
	switch stmt.PredicateType {
	case attest.PredicateSLSAv1, attest.PredicateSLSAv02:
		f, err := attest.ParseProvenance(stmt.PredicateType, stmt.Predicate)
		if err != nil {
			return nil, fmt.Errorf("provenance rejected: %w", err)
		}
		return f, nil
	}
	return &attest.ProvenanceFacts{}, nil
}

// claimBuildID refuses a build ID that is being written right now (by
// this server, or by any replica: claimShared), or is indexed by evidence
// other than the bundle whose SHA-256 is bundleSHA, and otherwise reserves
// it until release is called.
//
// The signing service (pushed == nil) signs one statement per build, so any
// earlier record of the build ID is a replay. A pushed bundle may share its
// build ID with evidence of the same signer and builder: a local build
// writes one bundle per output, all with the build's ID. The same build ID
// under another signer or builder is a replay.
func (s *Server) claimBuildID(ctx context.Context, id, bundleSHA string, pushed *store.Evidence) (release func(), err error) {
	if id == "" {
		return func() {}, nil
	}
	s.buildMu.Lock()
	if s.building[id] {
		s.buildMu.Unlock()
		return nil, fmt.Errorf("%w: %s is being signed right now", errReplay, id)
	}
	s.building[id] = true
	s.buildMu.Unlock()
	forget := func() {
		s.buildMu.Lock()
		delete(s.building, id)
		s.buildMu.Unlock()
	}
	unclaim, err := s.claimShared(ctx, id, fmt.Errorf("%w: %s is being signed right now", errReplay, id))
	if err != nil {
		forget()
		return nil, err
	}
	release = func() { unclaim(); forget() }
	found, err := s.index.Search(ctx, store.Query{BuildID: id, Limit: store.MaxLimit})
	if err != nil {
		release()
		return nil, fmt.Errorf("couldn't search index: %w", err)
	}
	for _, e := range found {
		if e.BundleSHA256 == bundleSHA {
			continue
		}
		if pushed != nil && sameBuild(e, pushed) {
			continue
		}
		release()
		return nil, fmt.Errorf("%w: %s is already recorded (evidence %d)", errReplay, id, e.ID)
	}
	return release, nil
}

// sameBuild reports whether two records of one build ID come from the same
// signer and builder.
func sameBuild(a, b *store.Evidence) bool {
	return a.SignerKeyID == b.SignerKeyID && a.SignerIdentity == b.SignerIdentity &&
		a.SignerIssuer == b.SignerIssuer && a.BuilderID == b.BuilderID
}

// sign signs, timestamps, logs and indexes a statement, journalling as the
// package documentation describes.
func (s *Server) sign(ctx context.Context, key crypto.Signer, raw []byte, stmt *attest.Statement, facts *attest.ProvenanceFacts) ([]byte, *protorekor.TransparencyLogEntry, int64, error) {
	kp, err := signer.NewKeypair(key)
	if err != nil {
		return nil, nil, 0, err
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	jpath := s.journal + hex.EncodeToString(nonce[:]) + ".json"
	lw := &journalingLog{s: s, path: jpath, kp: kp}
	ta := sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{
		URL: "http://in-process" + tsa.Path, Timeout: -1, Transport: authorityTransport{s.tsa},
	})
	pb, err := sign.Bundle(&sign.DSSEData{Data: raw, PayloadType: attest.PayloadType}, kp, sign.BundleOptions{
		Context: ctx, TimestampAuthorities: []*sign.TimestampAuthority{ta}, TransparencyLogs: []sign.Transparency{lw},
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("couldn't sign: %w", err)
	}
	out, err := encodeBundle(pb)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("couldn't encode bundle: %w", err)
	}
	// The entry is in the log: from here on the journal must let a restart
	// index exactly these bytes.
	if err := s.state.Put(context.WithoutCancel(ctx), jpath, out); err != nil {
		return nil, nil, 0, err
	}
	crashpoint.Reach(crashpoint.SignFinal)
	ev := evidenceFor(out, stmt, facts, kp.GetPublicKey(), lw.entry)
	// Logged: indexed too, whether or not the client still waits.
	id, _, err := s.index.Put(context.WithoutCancel(ctx), ev)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("couldn't index bundle: %w", err)
	}
	crashpoint.Reach(crashpoint.SignIndexed)
	if err := s.state.Delete(context.WithoutCancel(ctx), jpath); err != nil {
		s.logger.Warn("couldn't remove journal file", "path", jpath, "err", err)
	}
	return out, lw.entry, id, nil
}

// evidenceFor is the index record of a bundle.
func evidenceFor(bundleJSON []byte, stmt *attest.Statement, facts *attest.ProvenanceFacts, pub crypto.PublicKey, tle *protorekor.TransparencyLogEntry) *store.Evidence {
	ev := &store.Evidence{Bundle: bundleJSON, PredicateType: stmt.PredicateType, LogIndex: -1}
	for _, sub := range stmt.Subject {
		ev.Subjects = append(ev.Subjects, store.Subject{Name: sub.Name, Digests: sub.Digest})
	}
	if pub != nil {
		ev.SignerKeyID = signer.KeyID(pub)
	}
	if facts != nil {
		ev.BuilderID, ev.SourceURI, ev.SourceCommit, ev.BuildID = facts.BuilderID, facts.SourceURI, facts.SourceCommit, facts.BuildID
	}
	if tle != nil {
		ev.LogIndex = tle.GetLogIndex()
	}
	return ev
}

// journalingLog is the sign.Transparency of the signing service: it journals
// the signed bundle, then appends its entry to the log in process.
type journalingLog struct {
	s     *Server
	path  string
	kp    *signer.Keypair
	entry *protorekor.TransparencyLogEntry
}

func (j *journalingLog) GetTransparencyLogEntry(ctx context.Context, _ []byte, b *protobundle.Bundle) error {
	req, err := entryRequest(b, j.kp)
	if err != nil {
		return err
	}
	tle, err := j.s.journalAndLog(ctx, j.path, b, req, false)
	if err != nil {
		return err
	}
	j.entry = tle
	b.VerificationMaterial.TlogEntries = append(b.VerificationMaterial.TlogEntries, tle)
	return nil
}

// journalAndLog journals the bundle pb, not yet logged, at path (see Crash
// safety in the package documentation), appends req, its log entry, and
// returns the entry. With withEntry (a pushed bundle's entry, which the
// server cannot rebuild from pb without the pusher's key) the entry's
// canonical body is journalled first, beside it (entryPath). Once
// journalled, the append goes on when ctx is cancelled: a client that
// leaves does not leave an entry in the log that the index lacks. On an
// error the journal is removed only when the log refused the entry;
// otherwise it may be in the log, and the next start's replay decides.
func (s *Server) journalAndLog(ctx context.Context, path string, pb *protobundle.Bundle, req *tlog.CreateEntryRequest, withEntry bool) (*protorekor.TransparencyLogEntry, error) {
	pending, err := protojson.Marshal(pb)
	if err != nil {
		return nil, err
	}
	if withEntry {
		body, _, err := tlog.CanonicalEntry(req)
		if err != nil {
			return nil, err
		}
		if err := s.state.Put(context.WithoutCancel(ctx), entryPath(path), body); err != nil {
			return nil, err
		}
	}
	if err := s.state.Put(context.WithoutCancel(ctx), path, pending); err != nil {
		return nil, err
	}
	crashpoint.Reach(crashpoint.SignJournaled)
	start := time.Now()
	tle, err := s.log.AddEntry(context.WithoutCancel(ctx), req)
	if errors.Is(err, tlog.ErrDuplicate) {
		err = nil // already logged (a bundle pushed again): tle is that entry
	}
	if err != nil {
		if errors.Is(err, tlog.ErrInvalidEntry) || errors.Is(err, tessera.ErrPushback) {
			s.removeJournal(path)
		}
		return nil, err
	}
	crashpoint.Reach(crashpoint.SignLogged)
	s.metrics.integration.Observe(time.Since(start).Seconds())
	return tle, nil
}

// pushJournalSuffix ends the journal files of pushed bundles (logPushed):
// NONCE.push.json beside NONCE.push.entry, the canonical body of the log
// entry.
const pushJournalSuffix = ".push.json"

// entryPath is where the log entry of the journal file path is journalled.
func entryPath(path string) string { return strings.TrimSuffix(path, ".json") + ".entry" }

// removeJournal removes a journal document and the entry beside it, if
// any.
func (s *Server) removeJournal(path string) {
	ctx := context.Background()
	if err := s.state.Delete(ctx, path); err != nil {
		s.logger.Warn("couldn't remove journal document", "path", path, "err", err)
	}
	if strings.HasSuffix(path, pushJournalSuffix) {
		s.state.Delete(ctx, entryPath(path))
	}
}

// entryRequest is the Rekor v2 hashedrekord request for a key-signed DSSE
// bundle: the signature over the envelope's PAE, as sigstore-go logs it.
func entryRequest(b *protobundle.Bundle, kp *signer.Keypair) (*tlog.CreateEntryRequest, error) {
	env := b.GetDsseEnvelope()
	if env == nil || len(env.GetSignatures()) != 1 {
		return nil, errors.New("bundle is not a DSSE envelope with one signature")
	}
	h, ok := tlog.HashFunc(kp.GetHashAlgorithm())
	if !ok {
		return nil, fmt.Errorf("builder key of algorithm %s can't be logged as hashedrekord", kp.GetSigningAlgorithm())
	}
	der, err := x509.MarshalPKIXPublicKey(kp.GetPublicKey())
	if err != nil {
		return nil, err
	}
	hasher := h.New()
	hasher.Write(dsse.PAE(env.GetPayloadType(), env.GetPayload()))
	return &tlog.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest: hasher.Sum(nil),
			Signature: &rekorpb.Signature{
				Content: env.GetSignatures()[0].GetSig(),
				Verifier: &rekorpb.Verifier{
					Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
					KeyDetails: kp.GetSigningAlgorithm(),
				},
			},
		},
	}}, nil
}

// authorityTransport answers RFC 3161 requests in process.
type authorityTransport struct{ a *tsa.Authority }

func (t authorityTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	der, err := io.ReadAll(io.LimitReader(r.Body, tsa.MaxRequestSize))
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	resp, err := t.a.Timestamp(r.Context(), der)
	if err != nil {
		return nil, fmt.Errorf("timestamp authority: %w", err)
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {tsa.ReplyMediaType}}, Body: io.NopCloser(bytes.NewReader(resp)),
		ContentLength: int64(len(resp)), Request: r}, nil
}

// encodeBundle is the one encoding of a bundle the server stores and
// returns: protojson output, compacted. protojson varies its whitespace
// from build to build on purpose; compact bytes are the same on every path
// (sign, journal, search), so clients get exactly what was indexed.
func encodeBundle(pb *protobundle.Bundle) ([]byte, error) {
	raw, err := (&bundle.Bundle{Bundle: pb}).MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

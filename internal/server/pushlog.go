package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/internal/tsa"
	"github.com/custody-dev/custody/signer"
)

// errPushInFlight is returned when the same signed envelope is being
// logged by another push right now (503: retry, and find it indexed).
var errPushInFlight = errors.New("the same bundle is being indexed right now, retry later")

// logPushed indexes a pushed bundle that verified against what the server
// trusts but carries no entry of this log: the server timestamps its
// signature with its TSA, appends a hashedrekord entry of it to its log,
// adds both to the bundle, verifies the result again and indexes that (so
// `custody audit` finds the push in the log, with the time the server
// received it). A bundle whose envelope was indexed so before (the same
// signature over the same statement) is not logged again: its record's ID
// is returned with existed true. Bundles of media type older than v0.3,
// and keys that hashedrekord cannot record, are indexed as pushed.
func (s *Server) logPushed(ctx context.Context, c *checked) (int64, bool, error) {
	pb := c.b.Bundle
	env := pb.GetDsseEnvelope()
	if pb.GetMediaType() != signer.BundleMediaType || len(env.GetSignatures()) != 1 {
		return s.index.Put(ctx, c.ev)
	}
	sig := env.GetSignatures()[0].GetSig()
	id, found, err := s.loggedCopy(ctx, c.ev, env.GetPayload(), sig)
	if err != nil || found {
		return id, found, err
	}
	release, err := s.claimPush(ctx, sig)
	if err != nil {
		return 0, false, err
	}
	defer release()
	// A push of it that ended between the search and the claim.
	if id, found, err := s.loggedCopy(ctx, c.ev, env.GetPayload(), sig); err != nil || found {
		return id, found, err
	}

	pub := c.key
	var cert []byte
	if pub == nil {
		leaf, err := c.b.VerificationContent()
		if err != nil || leaf.Certificate() == nil {
			return 0, false, fmt.Errorf("couldn't read the verified certificate: %v", err)
		}
		pub, cert = leaf.Certificate().PublicKey, leaf.Certificate().Raw
	}
	kp, err := signer.NewKeypair(publicOnly{pub})
	if err != nil {
		return s.index.Put(ctx, c.ev)
	}
	req, err := entryRequest(pb, kp)
	if err != nil {
		return s.index.Put(ctx, c.ev) // a key hashedrekord cannot record (Ed25519)
	}
	if cert != nil {
		hr := req.GetHashedRekordRequestV002()
		hr.Signature.Verifier.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: cert}}
	}
	out := proto.Clone(pb).(*protobundle.Bundle)
	ta := sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{
		URL: "http://in-process" + tsa.Path, Timeout: -1, Transport: authorityTransport{s.tsa},
	})
	ts, err := ta.GetTimestamp(ctx, sig)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't timestamp the pushed bundle: %w", err)
	}
	vm := out.VerificationMaterial
	if vm.TimestampVerificationData == nil {
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{}
	}
	vm.TimestampVerificationData.Rfc3161Timestamps = append(vm.TimestampVerificationData.Rfc3161Timestamps,
		&protocommon.RFC3161SignedTimestamp{SignedTimestamp: ts})
	return s.logJournalledPush(ctx, out, req)
}

// logJournalledPush logs a pushed bundle, journalled as a signing request
// is (see Crash safety in the package documentation), verifies it again
// with its entry and indexes it.
func (s *Server) logJournalledPush(ctx context.Context, pb *protobundle.Bundle, req *tlog.CreateEntryRequest) (int64, bool, error) {
	path := s.journal + rand.Text() + pushJournalSuffix
	tle, err := s.journalAndLog(ctx, path, pb, req, true)
	if err != nil {
		return 0, false, err
	}
	pb.VerificationMaterial.TlogEntries = append(pb.VerificationMaterial.TlogEntries, tle)
	raw, err := encodeBundle(pb)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't encode bundle: %w", err)
	}
	if err := s.state.Put(context.WithoutCancel(ctx), path, raw); err != nil {
		return 0, false, err
	}
	crashpoint.Reach(crashpoint.SignFinal)
	again, err := s.checkBundle(ctx, raw)
	if err != nil || again.reason != "ok" || again.ev.LogIndex != tle.GetLogIndex() {
		// Logged all the same: the restart's replay indexes what it can.
		return 0, false, fmt.Errorf("the pushed bundle with its log entry does not verify: %v", err)
	}
	id, existed, err := s.index.Put(context.WithoutCancel(ctx), again.ev)
	if err != nil {
		return 0, false, err
	}
	crashpoint.Reach(crashpoint.SignIndexed)
	s.removeJournal(path)
	return id, existed, nil
}

// loggedCopy finds the record of a bundle logPushed indexed for the same
// envelope (payload and signature) as ev's.
func (s *Server) loggedCopy(ctx context.Context, ev *store.Evidence, payload, sig []byte) (int64, bool, error) {
	sub := ev.Subjects[0]
	algs := make([]string, 0, len(sub.Digests))
	for alg := range sub.Digests {
		algs = append(algs, alg)
	}
	slices.Sort(algs)
	q := store.Query{Digest: algs[0] + ":" + sub.Digests[algs[0]], PredicateType: ev.PredicateType, Limit: store.MaxLimit}
	for {
		page, err := s.index.Search(ctx, q)
		if err != nil {
			return 0, false, fmt.Errorf("couldn't search index: %w", err)
		}
		for _, e := range page {
			if e.LogIndex >= 0 && sameEnvelope(e.Bundle, payload, sig) {
				return e.ID, true, nil
			}
		}
		if len(page) < q.Limit {
			return 0, false, nil
		}
		q.AfterID = page[len(page)-1].ID
	}
}

// sameEnvelope reports whether the bundle JSON b holds a DSSE envelope of
// this payload and signature.
func sameEnvelope(b, payload, sig []byte) bool {
	var pb protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &pb); err != nil {
		return false
	}
	env := pb.GetDsseEnvelope()
	return len(env.GetSignatures()) == 1 && bytes.Equal(env.GetSignatures()[0].GetSig(), sig) && bytes.Equal(env.GetPayload(), payload)
}

// claimPush reserves a signature for one push at a time (among replicas
// too: claimShared).
func (s *Server) claimPush(ctx context.Context, sig []byte) (release func(), err error) {
	sum := sha256.Sum256(sig)
	k := "\x00push:" + string(sum[:]) // no build ID holds a NUL byte
	s.buildMu.Lock()
	if s.building[k] {
		s.buildMu.Unlock()
		return nil, errPushInFlight
	}
	s.building[k] = true
	s.buildMu.Unlock()
	forget := func() {
		s.buildMu.Lock()
		delete(s.building, k)
		s.buildMu.Unlock()
	}
	unclaim, err := s.claimShared(ctx, k, errPushInFlight)
	if err != nil {
		forget()
		return nil, err
	}
	return func() { unclaim(); forget() }, nil
}

// publicOnly is a crypto.Signer that only has a public key: what
// signer.NewKeypair reads to name a key's algorithms.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }

func (publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("public key only")
}

package incident

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/verify"
)

// FromBundle reads the facts Find needs from a bundle (a DSSE in-toto
// statement in a Sigstore bundle): subjects, signer key ID (from the key
// hint) or certificate identity, builder, and the time its RFC 3161
// timestamps or log entries prove, verified against tm. With tm nil nothing
// is proven. The signature itself is not verified here: the signer named
// is the one the bundle claims, which is what finding affected artifacts
// needs (a bundle that lies about its signer fails verification anyway).
//
// With since set (the compromise time), only times claimed before since
// are verified: a bundle whose every timestamp and log entry claims since
// or later is affected whether or not they verify, so its ProvenAt is the
// earliest claimed time, unverified, and Proof says so. Verifying costs two
// ECDSA verifications per timestamp; an incident over thousands of bundles
// signed after T skips them.
func FromBundle(source string, b []byte, tm root.TrustedMaterial, since time.Time) (*Evidence, error) {
	if len(b) > verify.MaxBundleBytes {
		return nil, fmt.Errorf("%s: bundle is larger than %d bytes", source, verify.MaxBundleBytes)
	}
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(b, pb); err != nil {
		return nil, fmt.Errorf("%s: not a Sigstore bundle: %w", source, err)
	}
	return fromParsed(source, b, pb, tm, since)
}

// fromParsed is FromBundle of b already parsed as pb (protojson, unknown
// fields refused, as sigstore-go's bundle.UnmarshalJSON parses).
func fromParsed(source string, b []byte, pb *protobundle.Bundle, tm root.TrustedMaterial, since time.Time) (*Evidence, error) {
	if len(b) > verify.MaxBundleBytes {
		return nil, fmt.Errorf("%s: bundle is larger than %d bytes", source, verify.MaxBundleBytes)
	}
	bu, err := bundle.NewBundle(pb)
	if err != nil {
		// sigstore-go's validation errors can be lists, one per line; a
		// reason is one line of the incident report.
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "\r", ""), "\n", "; ")
		return nil, fmt.Errorf("%s: not a Sigstore bundle: %s", source, msg)
	}
	env := bu.GetDsseEnvelope()
	if env == nil {
		return nil, fmt.Errorf("%s: not an attestation (no DSSE envelope)", source)
	}
	st, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("%s: couldn't parse statement: %w", source, err)
	}
	e := &Evidence{Source: source, Evidence: store.Evidence{Bundle: b, PredicateType: st.PredicateType, LogIndex: -1}}
	for _, s := range st.Subject {
		e.Subjects = append(e.Subjects, store.Subject{Name: s.Name, Digests: s.Digest})
	}
	switch st.PredicateType {
	case attest.PredicateSLSAv1, attest.PredicateSLSAv02:
		if f, err := attest.ParseProvenance(st.PredicateType, st.Predicate); err == nil {
			e.BuilderID, e.SourceURI, e.SourceCommit, e.BuildID = f.BuilderID, f.SourceURI, f.SourceCommit, f.BuildID
		}
	}
	vm := bu.GetVerificationMaterial()
	if hint := vm.GetPublicKey().GetHint(); hint != "" {
		e.SignerKeyID = keyIDFromHint(hint)
	}
	e.SignerIdentity, e.SignerIssuer = verify.SignerIdentity(bu), verify.SignerIssuer(bu)
	if claimed, what := earliestClaim(bu); !since.IsZero() && !claimed.IsZero() && !claimed.Before(since) {
		e.ProvenAt, e.Proof = claimed, what+" (claimed, not verified: at or after the compromise, affected either way)"
	} else {
		e.ProvenAt, e.Proof = provenTime(bu, tm)
	}
	e.IntegratedTime = e.ProvenAt
	return e, nil
}

// keyIDFromHint turns a key hint (base64 or hex SHA-256 of the PKIX key)
// into a key ID; "" when it is neither.
func keyIDFromHint(hint string) string {
	if raw, err := base64.StdEncoding.DecodeString(hint); err == nil && len(raw) == sha256.Size {
		return hex.EncodeToString(raw)
	}
	if h := strings.ToLower(hint); len(h) == 64 && strings.Trim(h, "0123456789abcdef") == "" {
		return h
	}
	return ""
}

// earliestClaim returns the earliest time the bundle's RFC 3161 timestamps
// or log entries claim, without verifying them (claimedTime reads only the
// path to a timestamp's genTime); zero when one cannot be read (then
// everything is verified).
func earliestClaim(bu *bundle.Bundle) (time.Time, string) {
	var best time.Time
	what := ""
	vm := bu.GetVerificationMaterial()
	for _, st := range vm.GetTimestampVerificationData().GetRfc3161Timestamps() {
		// A bundle holds the TSA's TimeStampResp (RFC 3161 section 2.4.2).
		t, err := claimedTime(st.GetSignedTimestamp())
		if err != nil {
			return time.Time{}, ""
		}
		if best.IsZero() || t.Before(best) {
			best, what = t.UTC(), verify.ProofTimestamp
		}
	}
	for _, e := range vm.GetTlogEntries() {
		if e.GetIntegratedTime() <= 0 {
			continue
		}
		if t := time.Unix(e.GetIntegratedTime(), 0).UTC(); best.IsZero() || t.Before(best) {
			best, what = t, verify.ProofLogEntry
		}
	}
	return best, what
}

// provenTime is verify.ProvenSigningTime with its failure as the proof
// ("not proven: why").
func provenTime(bu *bundle.Bundle, tm root.TrustedMaterial) (time.Time, string) {
	at, proof, err := verify.ProvenSigningTime(bu, tm)
	if err != nil {
		return time.Time{}, "not proven: " + err.Error()
	}
	return at, proof
}

// FromBundles reads evidence from an index (a custody server's search
// results) with FromBundle (since as there), on every CPU, and returns what it read in the
// order given, each named "server:ID", and what it could not read. The
// index's facts (signer key, identity, builder) are kept: they are what the
// index was searched by.
//
// parsed, when not nil, holds each bundle already parsed as FromBundle
// parses it (client.SearchBundles does): parsed[i] is es[i].Bundle, or nil
// to parse it here.
func FromBundles(es []*api.Evidence, parsed []*protobundle.Bundle, tm root.TrustedMaterial, since time.Time) ([]*Evidence, []Unreadable) {
	if parsed != nil && len(parsed) != len(es) {
		parsed = nil
	}
	type result struct {
		e   *Evidence
		err error
	}
	res := make([]result, len(es))
	var g errgroup.Group // the jobs never fail
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, se := range es {
		g.Go(func() error {
			source := fmt.Sprintf("server:%d", se.ID)
			var (
				e   *Evidence
				err error
			)
			if parsed != nil && parsed[i] != nil {
				e, err = fromParsed(source, se.Bundle, parsed[i], tm, since)
			} else {
				e, err = FromBundle(source, se.Bundle, tm, since)
			}
			if err == nil {
				e.SignerKeyID, e.SignerIdentity, e.SignerIssuer, e.BuilderID = se.SignerKeyID, se.SignerIdentity, se.SignerIssuer, se.BuilderID
			}
			res[i] = result{e, err}
			return nil
		})
	}
	_ = g.Wait()
	var (
		out        []*Evidence
		unreadable []Unreadable
	)
	for i, r := range res {
		if r.err != nil {
			unreadable = append(unreadable, Unreadable{Source: fmt.Sprintf("server:%d", es[i].ID), Reason: r.err.Error()})
			continue
		}
		out = append(out, r.e)
	}
	return out, unreadable
}

package verify

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/verify/match"
)

// evidence is a parsed bundle and what it says.
type evidence struct {
	b        *bundle.Bundle
	version  string
	envelope bool
	nSigs    int
	cert     *x509.Certificate
	keyHint  string
	nTlog    int
	nTSA     int

	// DSSE only
	statement *attest.Statement
	facts     *attest.ProvenanceFacts // nil unless the predicate is SLSA provenance

	// message signature only
	msgAlg    string // "sha256", ...
	msgDigest string // lowercase hex
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Errorf(format, args...))
}

func parseEvidence(bundleJSON []byte) (*evidence, error) {
	if len(bundleJSON) > MaxBundleBytes {
		return nil, malformed("bundle is %d bytes, more than the limit of %d", len(bundleJSON), MaxBundleBytes)
	}
	b := new(bundle.Bundle)
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return nil, malformed("couldn't parse bundle: %w", err)
	}
	ev := &evidence{b: b}
	var err error
	if ev.version, err = b.Version(); err != nil {
		return nil, malformed("couldn't read bundle version: %w", err)
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return nil, malformed("couldn't read verification material: %w", err)
	}
	if ev.cert = vc.Certificate(); ev.cert == nil {
		if pk := vc.PublicKey(); pk != nil {
			ev.keyHint = pk.Hint()
		}
	}
	ev.nTlog = len(b.GetVerificationMaterial().GetTlogEntries())
	if tvd := b.GetVerificationMaterial().GetTimestampVerificationData(); tvd != nil {
		ev.nTSA = len(tvd.GetRfc3161Timestamps())
	}
	// Read the content from the protobuf directly: sigstore-go's
	// SignatureContent re-encodes the payload to base64.
	if env := b.GetDsseEnvelope(); env != nil {
		ev.envelope = true
		ev.nSigs = len(env.GetSignatures())
		if env.GetPayloadType() != attest.PayloadType {
			return nil, malformed("DSSE payload type is %q, not %q", env.GetPayloadType(), attest.PayloadType)
		}
		if ev.statement, err = attest.ParseStatement(env.GetPayload()); err != nil {
			return nil, malformed("couldn't parse statement: %w", err)
		}
		if t := ev.statement.PredicateType; t == attest.PredicateSLSAv1 || t == attest.PredicateSLSAv02 {
			if ev.facts, err = attest.ParseProvenance(t, ev.statement.Predicate); err != nil {
				return nil, malformed("couldn't parse provenance: %w", err)
			}
		}
		return ev, nil
	}
	msg := b.GetMessageSignature()
	if msg.GetMessageDigest() == nil {
		return nil, malformed("message signature has no message digest")
	}
	switch alg := msg.GetMessageDigest().GetAlgorithm().String(); alg {
	case "SHA2_256":
		ev.msgAlg = "sha256"
	case "SHA2_384":
		ev.msgAlg = "sha384"
	case "SHA2_512":
		ev.msgAlg = "sha512"
	default:
		return nil, malformed("message digest algorithm %q is not supported", alg)
	}
	ev.msgDigest = hex.EncodeToString(msg.GetMessageDigest().GetDigest())
	if len(ev.msgDigest) != hexLen[ev.msgAlg] {
		return nil, malformed("message digest has %d hex digits, want %d for %s", len(ev.msgDigest), hexLen[ev.msgAlg], ev.msgAlg)
	}
	return ev, nil
}

var hexLen = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}

func newHash(alg string) hash.Hash {
	switch alg {
	case "sha256":
		return sha256.New()
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return nil
}

// artifactDigests returns the artifact's digests for algs: the given ones,
// and for a path, the file hashed in one streaming pass with the algorithms
// in algs. A mismatch between a given digest and the file's is returned as
// a reason (not an error).
func artifactDigests(ctx context.Context, art Artifact, algs []string) (map[string]string, string, error) {
	out := map[string]string{}
	for alg, v := range art.Digests {
		out[alg] = strings.ToLower(v)
	}
	if art.Path == "" {
		return out, "", nil
	}
	hs := map[string]hash.Hash{}
	var ws []io.Writer
	for _, alg := range algs {
		if h := newHash(alg); h != nil && hs[alg] == nil {
			hs[alg] = h
			ws = append(ws, h)
		}
	}
	if len(ws) == 0 {
		return out, "", nil
	}
	f, err := os.Open(art.Path)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't open artifact: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(io.MultiWriter(ws...), ctxReader{ctx, f}); err != nil {
		return nil, "", fmt.Errorf("couldn't hash artifact: %w", err)
	}
	mismatch := ""
	for alg, h := range hs {
		sum := hex.EncodeToString(h.Sum(nil))
		if given, ok := out[alg]; ok && given != sum && mismatch == "" {
			mismatch = fmt.Sprintf("artifact file %s has %s %s, not the given %s", art.Path, alg, short(sum), short(given))
		}
		out[alg] = sum
	}
	return out, mismatch, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

func (ev *evidence) checkSubject(ctx context.Context, rep *Report, art Artifact) error {
	if art.Path == "" && len(art.Digests) == 0 {
		rep.add(CheckSubject, false, "no artifact file or digest was given to check against the bundle")
		return nil
	}
	var algs []string
	if ev.envelope {
		seen := map[string]bool{}
		for _, s := range ev.statement.Subject {
			for alg := range s.Digest {
				if hexLen[alg] > 0 && !seen[alg] {
					seen[alg] = true
					algs = append(algs, alg)
				}
			}
		}
		sort.Strings(algs)
	} else {
		algs = []string{ev.msgAlg}
	}
	if art.Path != "" && len(algs) == 0 && len(art.Digests) == 0 {
		rep.add(CheckSubject, false, "subjects use no digest algorithm custody can compute (sha256, sha384, sha512)")
		return nil
	}
	digests, mismatch, err := artifactDigests(ctx, art, algs)
	if err != nil {
		return err
	}
	if mismatch != "" {
		rep.add(CheckSubject, false, "%s", mismatch)
		return nil
	}
	if !ev.envelope {
		got, ok := digests[ev.msgAlg]
		switch {
		case !ok:
			rep.add(CheckSubject, false, "the bundle signs a %s digest but no %s digest of the artifact was given", ev.msgAlg, ev.msgAlg)
		case got != ev.msgDigest:
			rep.add(CheckSubject, false, "artifact %s:%s is not the signed digest %s:%s", ev.msgAlg, short(got), ev.msgAlg, short(ev.msgDigest))
		default:
			rep.add(CheckSubject, true, "artifact %s:%s is the signed message digest", ev.msgAlg, short(got))
		}
		return nil
	}
	for _, s := range ev.statement.Subject {
		shared, ok := 0, true
		for alg, want := range digests {
			if have, has := s.Digest[alg]; has {
				shared++
				ok = ok && strings.EqualFold(have, want)
			}
		}
		if ok && shared > 0 {
			rep.add(CheckSubject, true, "artifact %s is subject %q", describeDigests(digests, s.Digest), s.Name)
			return nil
		}
	}
	rep.add(CheckSubject, false, "artifact %s is not a subject of the statement (%d subject(s), e.g. %q)", describeDigests(digests, nil), len(ev.statement.Subject), ev.statement.Subject[0].Name)
	return nil
}

// describeDigests renders digests as "alg:hex…", only the algorithms in
// only (all when only is nil), in a stable order.
func describeDigests(d map[string]string, only map[string]string) string {
	var parts []string
	for alg, v := range d {
		if only != nil {
			if _, ok := only[alg]; !ok {
				continue
			}
		}
		parts = append(parts, alg+":"+short(v))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "(no digest)"
	}
	return strings.Join(parts, ", ")
}

func (ev *evidence) checkProvenance(rep *Report, req Requirements) {
	if !ev.envelope {
		for _, c := range []struct{ name, val string }{
			{CheckPredicateType, req.PredicateType}, {CheckSourceURI, req.SourceURI},
			{CheckSourceRef, req.SourceRef}, {CheckBuilderID, req.BuilderID},
		} {
			if c.val != "" {
				rep.add(c.name, false, "message-signature bundle carries no statement, so %s %q can't be checked", c.name, c.val)
			}
		}
		return
	}
	pt := ev.statement.PredicateType
	switch {
	case req.PredicateType != "" && pt != req.PredicateType:
		rep.add(CheckPredicateType, false, "predicate type %q is not %q", pt, req.PredicateType)
	case req.PredicateType == "" && ev.facts == nil:
		rep.add(CheckPredicateType, false, "predicate type %q is not SLSA provenance (%s or %s)", pt, attest.PredicateSLSAv1, attest.PredicateSLSAv02)
	default:
		rep.add(CheckPredicateType, true, "predicate type %q", pt)
	}
	f := ev.facts
	need := func(name, val string) bool {
		if val == "" {
			return false
		}
		if f == nil {
			rep.add(name, false, "statement carries no SLSA provenance, so %s %q can't be checked", name, val)
			return false
		}
		return true
	}
	if f != nil && req.SourceURI == "" {
		rep.skip(CheckSourceURI, "source %q not checked: no source required", f.SourceURI)
	}
	if f != nil && req.BuilderID == "" {
		rep.skip(CheckBuilderID, "builder %q not checked: no builder required", f.BuilderID)
	}
	if need(CheckSourceURI, req.SourceURI) {
		if match.Source(f.SourceURI, req.SourceURI) {
			rep.add(CheckSourceURI, true, "source %q matches %q", f.SourceURI, req.SourceURI)
		} else {
			rep.add(CheckSourceURI, false, "source %q is not %q", f.SourceURI, req.SourceURI)
		}
	}
	if need(CheckSourceRef, req.SourceRef) {
		if f.SourceRef == req.SourceRef {
			rep.add(CheckSourceRef, true, "source ref %q", f.SourceRef)
		} else {
			rep.add(CheckSourceRef, false, "source ref %q is not %q", f.SourceRef, req.SourceRef)
		}
	}
	if need(CheckBuilderID, req.BuilderID) {
		if match.Builder(f.BuilderID, req.BuilderID) {
			rep.add(CheckBuilderID, true, "builder %q matches %q", f.BuilderID, req.BuilderID)
		} else {
			rep.add(CheckBuilderID, false, "builder %q is not %q", f.BuilderID, req.BuilderID)
		}
	}
}

package verify

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

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

// verifyCrypto runs sigstore-go over the bundle: transparency log entries,
// RFC 3161 timestamps, certificate chain and SCTs or key validity, and the
// signature. It records the tlog, timestamp and signature checks and returns
// nil when any of them failed.
func (ev *evidence) verifyCrypto(tm root.TrustedMaterial, rep *Report) *sgverify.VerificationResult {
	keyless := ev.cert != nil
	useTlog := ev.nTlog > 0 && len(tm.RekorLogs()) > 0
	useTSA := ev.nTSA > 0 && len(tm.TimestampingAuthorities()) > 0
	opts := []sgverify.VerifierOption{sgverify.WithoutStatementPredicate()}

	if ev.nTlog > 0 && !useTlog {
		if keyless {
			rep.add(CheckTlog, false, "bundle has %s but the trust material has no transparency log to check them against", plural(ev.nTlog, "transparency log entry", "transparency log entries"))
			return nil
		}
		rep.add(CheckTlog, true, "not checked: %s present but the trust material has no transparency log; their times are not used", plural(ev.nTlog, "entry", "entries"))
	}
	if ev.nTSA > 0 && !useTSA {
		if keyless {
			rep.add(CheckTimestamp, false, "bundle has %d RFC 3161 timestamp(s) but the trust material has no timestamp authority to check them against", ev.nTSA)
			return nil
		}
		rep.add(CheckTimestamp, true, "not checked: %d RFC 3161 timestamp(s) present but the trust material has no timestamp authority; not used", ev.nTSA)
	}
	if useTlog {
		opts = append(opts, sgverify.WithTransparencyLog(ev.nTlog))
	}
	if useTSA {
		opts = append(opts, sgverify.WithSignedTimestamps(ev.nTSA))
	}
	integrated := false // Rekor v2 entries carry no integrated time
	for _, e := range ev.b.GetVerificationMaterial().GetTlogEntries() {
		integrated = integrated || e.GetIntegratedTime() > 0
	}
	switch {
	case useTSA || (useTlog && integrated):
		opts = append(opts, sgverify.WithObserverTimestamps(1))
	case useTlog && keyless:
		rep.add(CheckTimestamp, false, "certificate-signed bundle's transparency log entries carry no integrated time and it has no RFC 3161 timestamp to prove when it was signed")
		return nil
	case keyless:
		rep.add(CheckTimestamp, false, "certificate-signed bundle has no transparency log entry or RFC 3161 timestamp to prove when it was signed")
		return nil
	default:
		opts = append(opts, sgverify.WithCurrentTime())
	}
	if keyless && len(tm.CTLogs()) > 0 {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	v, err := sgverify.NewVerifier(tm, opts...)
	if err != nil {
		rep.add(CheckSignature, false, "couldn't configure verifier: %v", err)
		return nil
	}

	artifactOpt := sgverify.WithoutArtifactUnsafe() // DSSE: the subject check is ours
	if !ev.envelope {
		// The signature is over the digest the bundle declares; whether that
		// is the artifact's digest is the subject check.
		d, _ := hex.DecodeString(ev.msgDigest)
		artifactOpt = sgverify.WithArtifactDigest(ev.msgAlg, d)
	}
	policyOpt := sgverify.WithoutIdentitiesUnsafe() // the identity check is ours
	if !keyless {
		policyOpt = sgverify.WithKey()
	}
	res, err := v.Verify(ev.b, sgverify.NewPolicy(artifactOpt, policyOpt))
	if err != nil {
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "failed to verify log inclusion"):
			rep.add(CheckTlog, false, "%s", msg)
			ev.signatureOnly(tm, rep, CheckTlog)
		case strings.HasPrefix(msg, "failed to verify timestamps"):
			rep.add(CheckTimestamp, false, "%s", msg)
			ev.signatureOnly(tm, rep, CheckTimestamp)
		case errors.Is(err, sgverify.ErrDSSEInvalidSignatureCount):
			rep.add(CheckSignature, false, "DSSE envelope has %d signatures; exactly one is accepted, since a bundle's verification material names one signer", ev.nSigs)
		default:
			rep.add(CheckSignature, false, "%s", msg)
		}
		return nil
	}

	var tlogTimes, tsaTimes []string
	for _, ts := range res.VerifiedTimestamps {
		switch ts.Type {
		case "Tlog":
			tlogTimes = append(tlogTimes, ts.Timestamp.UTC().Format("2006-01-02T15:04:05Z"))
		case "TimestampAuthority":
			tsaTimes = append(tsaTimes, ts.Timestamp.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	if useTlog {
		rep.add(CheckTlog, true, "%s verified against the trusted log(s); integrated at %s", plural(ev.nTlog, "entry", "entries"), orNone(tlogTimes))
	}
	if useTSA {
		rep.add(CheckTimestamp, true, "%d RFC 3161 timestamp(s) verified: %s", ev.nTSA, orNone(dedupe(tsaTimes)))
	}
	if keyless {
		sct := ""
		if len(tm.CTLogs()) > 0 {
			sct = ", certificate transparency SCT verified"
		}
		rep.add(CheckSignature, true, "signature verified with a certificate chaining to a trusted CA at the signing time%s", sct)
	} else {
		when := "at the current time"
		if useTSA || (useTlog && integrated) {
			when = "at the verified signing time"
		}
		rep.add(CheckSignature, true, "signature verified with the trusted public key (hint %q), valid %s", ev.keyHint, when)
	}
	return res
}

// signatureOnly reports on the bare signature when sigstore-go stopped
// before reaching it, so that a tampered bundle names the signature too. The
// check never passes: chain and signing time were not verified.
func (ev *evidence) signatureOnly(tm root.TrustedMaterial, rep *Report, failed string) {
	sc, err1 := ev.b.SignatureContent()
	vc, err2 := ev.b.VerificationContent()
	if err := errors.Join(err1, err2); err != nil {
		rep.add(CheckSignature, false, "not checked: %v", err)
		return
	}
	var err error
	if ev.envelope {
		err = sgverify.VerifySignature(sc, vc, tm)
	} else {
		d, _ := hex.DecodeString(ev.msgDigest)
		err = sgverify.VerifySignatureWithArtifactDigests(sc, vc, tm, []sgverify.ArtifactDigest{{Algorithm: ev.msgAlg, Digest: d}})
	}
	switch {
	case errors.Is(err, sgverify.ErrDSSEInvalidSignatureCount):
		rep.add(CheckSignature, false, "DSSE envelope has %d signatures; exactly one is accepted, since a bundle's verification material names one signer", ev.nSigs)
	case err != nil:
		rep.add(CheckSignature, false, "signature does not verify: %v", err)
	default:
		rep.add(CheckSignature, false, "not checked: the signature matches the bundle's own key, but the %s check failed, so the signer and signing time are not established", failed)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(no integrated time)"
	}
	return strings.Join(s, ", ")
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// identityMatcher is the keyless identity requirement, compiled.
type identityMatcher struct {
	san, issuer     string
	sanRe, issuerRe *regexp.Regexp
}

func compileIdentity(req Requirements) (identityMatcher, error) {
	m := identityMatcher{san: req.CertificateIdentity, issuer: req.CertificateOIDCIssuer}
	var err error
	if req.CertificateIdentityRegexp != "" {
		if m.sanRe, err = regexp.Compile(req.CertificateIdentityRegexp); err != nil {
			return m, malformed("invalid certificate identity regexp: %w", err)
		}
	}
	if req.CertificateOIDCIssuerRegexp != "" {
		if m.issuerRe, err = regexp.Compile(req.CertificateOIDCIssuerRegexp); err != nil {
			return m, malformed("invalid certificate OIDC issuer regexp: %w", err)
		}
	}
	return m, nil
}

func checkIdentity(rep *Report, m identityMatcher, sum *certificate.Summary) {
	if m.san == "" && m.sanRe == nil {
		rep.add(CheckIdentity, false, "certificate identity %q was not checked: no identity required (set CertificateIdentity or CertificateIdentityRegexp)", sum.SubjectAlternativeName)
		return
	}
	if m.issuer == "" && m.issuerRe == nil {
		rep.add(CheckIdentity, false, "certificate issuer %q was not checked: no issuer required (set CertificateOIDCIssuer or CertificateOIDCIssuerRegexp)", sum.Issuer)
		return
	}
	if m.san != "" && sum.SubjectAlternativeName != m.san {
		rep.add(CheckIdentity, false, "certificate identity %q is not %q", sum.SubjectAlternativeName, m.san)
		return
	}
	if m.sanRe != nil && !m.sanRe.MatchString(sum.SubjectAlternativeName) {
		rep.add(CheckIdentity, false, "certificate identity %q does not match %q", sum.SubjectAlternativeName, m.sanRe)
		return
	}
	if m.issuer != "" && sum.Issuer != m.issuer {
		rep.add(CheckIdentity, false, "certificate issuer %q is not %q", sum.Issuer, m.issuer)
		return
	}
	if m.issuerRe != nil && !m.issuerRe.MatchString(sum.Issuer) {
		rep.add(CheckIdentity, false, "certificate issuer %q does not match %q", sum.Issuer, m.issuerRe)
		return
	}
	rep.add(CheckIdentity, true, "certificate identity %q, issuer %q", sum.SubjectAlternativeName, sum.Issuer)
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

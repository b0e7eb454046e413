package verify

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
)

// cryptoPlan is what sigstore-go is asked to check for one bundle and trust
// material.
type cryptoPlan struct {
	keyless bool
	useTlog bool // the bundle's log entries are checked
	useTSA  bool // the bundle's RFC 3161 timestamps are checked
	// observed: a verified timestamp or log integration time, not the
	// current time, is the signing time.
	observed bool
	opts     []sgverify.VerifierOption
}

// plan decides which of the bundle's log entries and timestamps the trust
// material can check and which time the certificate or key is checked at.
// It records the checks it decides cannot or need not run, and returns
// false when verification cannot go on (a certificate-signed bundle with no
// checkable signing time).
func (ev *evidence) plan(tm root.TrustedMaterial, rep *Report) (cryptoPlan, bool) {
	p := cryptoPlan{
		keyless: ev.cert != nil,
		useTlog: ev.nTlog > 0 && len(tm.RekorLogs()) > 0,
		useTSA:  ev.nTSA > 0 && len(tm.TimestampingAuthorities()) > 0,
		opts:    []sgverify.VerifierOption{sgverify.WithoutStatementPredicate()},
	}
	if ev.nTlog > 0 && !p.useTlog {
		if p.keyless {
			rep.add(CheckTlog, false, "bundle has %s but the trust material has no transparency log to check them against", plural(ev.nTlog, "transparency log entry", "transparency log entries"))
			return p, false
		}
		rep.skip(CheckTlog, "not checked: %s present but the trust material has no transparency log; their times are not used", plural(ev.nTlog, "entry", "entries"))
	}
	if ev.nTSA > 0 && !p.useTSA {
		if p.keyless {
			rep.add(CheckTimestamp, false, "bundle has %d RFC 3161 timestamp(s) but the trust material has no timestamp authority to check them against", ev.nTSA)
			return p, false
		}
		rep.skip(CheckTimestamp, "not checked: %d RFC 3161 timestamp(s) present but the trust material has no timestamp authority; not used", ev.nTSA)
	}
	if p.useTlog {
		p.opts = append(p.opts, sgverify.WithTransparencyLog(ev.nTlog))
	}
	if p.useTSA {
		p.opts = append(p.opts, sgverify.WithSignedTimestamps(ev.nTSA))
	}
	integrated := false // Rekor v2 entries carry no integrated time
	for _, e := range ev.b.GetVerificationMaterial().GetTlogEntries() {
		integrated = integrated || e.GetIntegratedTime() > 0
	}
	p.observed = p.useTSA || (p.useTlog && integrated)
	switch {
	case p.observed:
		p.opts = append(p.opts, sgverify.WithObserverTimestamps(1))
	case p.useTlog && p.keyless:
		rep.add(CheckTimestamp, false, "certificate-signed bundle's transparency log entries carry no integrated time and it has no RFC 3161 timestamp to prove when it was signed")
		return p, false
	case p.keyless:
		rep.add(CheckTimestamp, false, "certificate-signed bundle has no transparency log entry or RFC 3161 timestamp to prove when it was signed")
		return p, false
	default:
		p.opts = append(p.opts, sgverify.WithCurrentTime())
	}
	if p.keyless && len(tm.CTLogs()) > 0 {
		p.opts = append(p.opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	return p, true
}

// policy is what sigstore-go checks beyond the crypto: the signed message
// digest of a message signature (whether it is the artifact's is the
// subject check), and a key or a certificate. The certificate identity is
// checked afterwards with sigstore-go's CertificateIdentity (checkIdentity)
// so that a mismatch is reported next to a verified signature.
func (ev *evidence) policy() sgverify.PolicyBuilder {
	artifactOpt := sgverify.WithoutArtifactUnsafe() // DSSE: the subject check is ours
	if !ev.envelope {
		d, _ := hex.DecodeString(ev.msgDigest)
		artifactOpt = sgverify.WithArtifactDigest(ev.msgAlg, d)
	}
	if ev.cert == nil {
		return sgverify.NewPolicy(artifactOpt, sgverify.WithKey())
	}
	return sgverify.NewPolicy(artifactOpt, sgverify.WithoutIdentitiesUnsafe())
}

// verifyCrypto runs sigstore-go over the bundle: transparency log entries,
// RFC 3161 timestamps, certificate chain and SCTs or key validity, and the
// signature. It records the tlog, timestamp and signature checks and returns
// nil when any of them failed.
func (ev *evidence) verifyCrypto(tm root.TrustedMaterial, rep *Report) *sgverify.VerificationResult {
	p, ok := ev.plan(tm, rep)
	if !ok {
		return nil
	}
	v, err := sgverify.NewVerifier(tm, p.opts...)
	if err != nil {
		rep.add(CheckSignature, false, "couldn't configure verifier: %v", err)
		return nil
	}
	res, err := v.Verify(ev.b, ev.policy())
	if err != nil {
		ev.diagnose(v, tm, p, err, rep)
		return nil
	}
	ev.recordVerified(p, res, tm, rep)
	return res
}

// diagnose names the step in which Verify failed by running sigstore-go's
// steps again one at a time, in Verify's order: log entries, timestamps,
// the key's validity at the verified times, the signature; for a
// certificate what remains is its chain and SCT.
func (ev *evidence) diagnose(v *sgverify.Verifier, tm root.TrustedMaterial, p cryptoPlan, verifyErr error, rep *Report) {
	if !p.keyless && ev.diagnoseKey(tm, rep) {
		return
	}
	logTimes, err := v.VerifyTransparencyLogInclusion(ev.b)
	if err != nil {
		rep.add(CheckTlog, false, "failed to verify log inclusion: %v", err)
		ev.signatureOnly(tm, rep, CheckTlog)
		return
	}
	times, err := v.VerifyObserverTimestamps(ev.b, logTimes)
	if err != nil {
		rep.add(CheckTimestamp, false, "failed to verify timestamps: %v", err)
		ev.signatureOnly(tm, rep, CheckTimestamp)
		return
	}
	if errors.Is(verifyErr, sgverify.ErrDSSEInvalidSignatureCount) {
		rep.add(CheckSignature, false, "%s", ev.tooManySignatures())
		return
	}
	if !p.keyless {
		vc, err := ev.b.VerificationContent()
		if err != nil {
			rep.add(CheckSignature, false, "%v", err)
			return
		}
		for _, ts := range times {
			if !vc.ValidAtTime(ts.Timestamp, tm) {
				rep.add(CheckSignature, false, "signature time outside of public key validity window: the trusted key with hint %q is not valid %s (not yet valid, rotated out or revoked)", ev.keyHint, describeTime(ts))
				return
			}
		}
	}
	if err := ev.checkSignature(tm); err != nil {
		rep.add(CheckSignature, false, "%s", ev.signatureFailure(err))
		return
	}
	if p.keyless {
		rep.add(CheckSignature, false, "the signature matches the certificate's key, but the certificate does not verify: %v", verifyErr)
		return
	}
	rep.add(CheckSignature, false, "%v", verifyErr)
}

// diagnoseKey checks a key-signed bundle's key first: whether the trust
// material has a key for its hint, and whether the signature verifies with
// it. When either fails that is the cause, recorded as the signature check,
// and it returns true: the log entries and timestamps are over the
// signature (a Rekor v2 entry is even rebuilt from the trusted key), so
// they fail too, with messages that hide the cause.
func (ev *evidence) diagnoseKey(tm root.TrustedMaterial, rep *Report) bool {
	kv, err := tm.PublicKeyVerifier(ev.keyHint)
	if err != nil {
		rep.add(CheckSignature, false, "no trusted key has the bundle's key hint %q", ev.keyHint)
		return true
	}
	if err := ev.checkSignature(tm); err != nil {
		if ev.signedByBareKey(kv) {
			// The trust material refuses a signature the key made: a key
			// whose window is empty (trust.Window.ExpiringKey).
			rep.add(CheckSignature, false, "signature time outside of public key validity window: the trusted key with hint %q signed the bundle, but the trust material refuses every signature of it (its validity window is empty: revoked or rotated out when or before it started)", ev.keyHint)
			return true
		}
		rep.add(CheckSignature, false, "%s", ev.signatureFailure(err))
		return true
	}
	return false
}

// signedByBareKey reports whether the signature verifies with kv's public
// key alone, without the trust material's refusals. It only words a
// failure; it never makes a signature count.
func (ev *evidence) signedByBareKey(kv root.TimeConstrainedVerifier) bool {
	pub, err := kv.PublicKey()
	if err != nil {
		return false
	}
	bare, err := PublicKeyMaterial(pub)
	if err != nil {
		return false
	}
	return ev.checkSignature(bare) == nil
}

func describeTime(ts sgverify.TimestampVerificationResult) string {
	at := ts.Timestamp.UTC().Format("2006-01-02T15:04:05Z")
	switch ts.Type {
	case "Tlog":
		return "at its log integration time " + at
	case "TimestampAuthority":
		return "at its RFC 3161 timestamp " + at
	}
	return "at the current time " + at + " (no timestamp or log entry the trust material can check)"
}

// checkSignature is sigstore-go's signature step alone: the signature over
// the envelope or message digest, with the bundle's certificate or the
// trusted key its hint names.
func (ev *evidence) checkSignature(tm root.TrustedMaterial) error {
	sc, err1 := ev.b.SignatureContent()
	vc, err2 := ev.b.VerificationContent()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if ev.envelope {
		return sgverify.VerifySignature(sc, vc, tm)
	}
	d, _ := hex.DecodeString(ev.msgDigest)
	return sgverify.VerifySignatureWithArtifactDigests(sc, vc, tm, []sgverify.ArtifactDigest{{Algorithm: ev.msgAlg, Digest: d}})
}

// signatureFailure says what a failed signature step means.
func (ev *evidence) signatureFailure(err error) string {
	switch {
	case errors.Is(err, sgverify.ErrDSSEInvalidSignatureCount):
		return ev.tooManySignatures()
	case ev.cert == nil:
		return fmt.Sprintf("not signed by the given key: the signature does not verify with the trusted key for hint %q (another key signed it, or the bundle changed after signing)", ev.keyHint)
	}
	return fmt.Sprintf("signature does not verify: %v", err)
}

func (ev *evidence) tooManySignatures() string {
	return fmt.Sprintf("DSSE envelope has %d signatures; exactly one is accepted, since a bundle's verification material names one signer", ev.nSigs)
}

// signatureOnly reports on the bare signature when sigstore-go stopped
// before reaching it, so that a tampered bundle names the signature too. The
// check never passes: chain and signing time were not verified.
func (ev *evidence) signatureOnly(tm root.TrustedMaterial, rep *Report, failed string) {
	if err := ev.checkSignature(tm); err != nil {
		rep.add(CheckSignature, false, "%s", ev.signatureFailure(err))
		return
	}
	rep.add(CheckSignature, false, "not checked: the signature matches the bundle's own key, but the %s check failed, so the signer and signing time are not established", failed)
}

// recordVerified records the checks sigstore-go passed.
func (ev *evidence) recordVerified(p cryptoPlan, res *sgverify.VerificationResult, tm root.TrustedMaterial, rep *Report) {
	var tlogTimes, tsaTimes []string
	for _, ts := range res.VerifiedTimestamps {
		switch ts.Type {
		case "Tlog":
			tlogTimes = append(tlogTimes, ts.Timestamp.UTC().Format("2006-01-02T15:04:05Z"))
		case "TimestampAuthority":
			tsaTimes = append(tsaTimes, ts.Timestamp.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	if p.useTlog {
		rep.add(CheckTlog, true, "%s verified against the trusted log(s); integrated at %s", plural(ev.nTlog, "entry", "entries"), orNone(tlogTimes))
	}
	if p.useTSA {
		rep.add(CheckTimestamp, true, "%d RFC 3161 timestamp(s) verified: %s", ev.nTSA, orNone(dedupe(tsaTimes)))
	}
	if p.keyless {
		sct := ""
		if len(tm.CTLogs()) > 0 {
			sct = ", certificate transparency SCT verified"
		}
		rep.add(CheckSignature, true, "signature verified with a certificate chaining to a trusted CA at the signing time%s", sct)
		return
	}
	when := "at the current time"
	if p.observed {
		when = "at the verified signing time"
	}
	rep.add(CheckSignature, true, "signature verified with the trusted public key (hint %q), valid %s", ev.keyHint, when)
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

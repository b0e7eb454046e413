package incident

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/attest"
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
func FromBundle(source string, b []byte, tm root.TrustedMaterial) (*Evidence, error) {
	if len(b) > verify.MaxBundleBytes {
		return nil, fmt.Errorf("%s: bundle is larger than %d bytes", source, verify.MaxBundleBytes)
	}
	var bu bundle.Bundle
	if err := bu.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("%s: not a Sigstore bundle: %w", source, err)
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
	if c := vm.GetCertificate(); c != nil {
		if cert, err := x509.ParseCertificate(c.GetRawBytes()); err == nil {
			switch {
			case len(cert.URIs) > 0:
				e.SignerIdentity = cert.URIs[0].String()
			case len(cert.EmailAddresses) > 0:
				e.SignerIdentity = cert.EmailAddresses[0]
			}
		}
	}
	e.ProvenAt, e.Proof = provenTime(&bu, tm)
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

// provenTime returns the earliest time a verified RFC 3161 timestamp or
// log entry places the signature at, and what proved it.
func provenTime(bu *bundle.Bundle, tm root.TrustedMaterial) (time.Time, string) {
	if tm == nil {
		return time.Time{}, "not proven: no trusted root given"
	}
	var best time.Time
	proof := ""
	consider := func(t time.Time, what string) {
		if !t.IsZero() && (best.IsZero() || t.Before(best)) {
			best, proof = t.UTC(), what
		}
	}
	var problems []string
	if len(tm.TimestampingAuthorities()) > 0 {
		ts, errs, err := sgverify.VerifyTimestampAuthority(bu, tm)
		if err != nil {
			problems = append(problems, err.Error())
		}
		for _, e := range errs {
			problems = append(problems, "timestamp: "+e.Error())
		}
		for _, t := range ts {
			consider(t.Time, "rfc3161 timestamp")
		}
	}
	if len(tm.RekorLogs()) > 0 && len(bu.GetVerificationMaterial().GetTlogEntries()) > 0 {
		ts, err := sgverify.VerifyTlogEntry(bu, tm, 1, true)
		if err != nil {
			problems = append(problems, "log entry: "+err.Error())
		}
		for _, t := range ts {
			consider(t.Time, "log entry")
		}
	}
	if best.IsZero() {
		if len(problems) == 0 {
			return time.Time{}, "not proven: no timestamp or log entry"
		}
		return time.Time{}, "not proven: " + strings.Join(problems, "; ")
	}
	return best, proof
}

package verify

import (
	"errors"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
)

// Names of what proves a signing time, as ProvenSigningTime returns them.
const (
	ProofTimestamp = "rfc3161 timestamp"
	ProofLogEntry  = "log entry"
)

// ProvenSigningTime returns the earliest time at which the bundle's RFC 3161
// timestamps (from tm's timestamp authorities) or transparency log entries
// (from tm's logs, checked to be over this bundle's signature) place its
// signature, and which of ProofTimestamp or ProofLogEntry proved it.
//
// It checks only the time: not the signature itself, the certificate or key,
// nor what the bundle is about. A caller that must know who signed uses
// Verify, whose Report.SignedAt is this time for a bundle that verifies.
// It is for finding, among many bundles, those signed before or after a
// time (an incident's compromise), which is why it does not stop at the
// first timestamp that fails to verify.
//
// With nothing proving a time it returns an error saying why: tm is nil,
// the bundle has no timestamp or log entry tm can check, or each failed
// (their reasons joined by "; ").
func ProvenSigningTime(b *bundle.Bundle, tm root.TrustedMaterial) (time.Time, string, error) {
	if tm == nil {
		return time.Time{}, "", errors.New("no trusted root given")
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
		ts, errs, err := sgverify.VerifyTimestampAuthority(b, tm)
		if err != nil {
			problems = append(problems, err.Error())
		}
		for _, e := range errs {
			problems = append(problems, "timestamp: "+e.Error())
		}
		for _, t := range ts {
			consider(t.Time, ProofTimestamp)
		}
	}
	if len(tm.RekorLogs()) > 0 && len(b.GetVerificationMaterial().GetTlogEntries()) > 0 {
		ts, err := sgverify.VerifyTlogEntry(b, tm, 1, true)
		if err != nil {
			problems = append(problems, "log entry: "+err.Error())
		}
		for _, t := range ts {
			consider(t.Time, ProofLogEntry)
		}
	}
	switch {
	case !best.IsZero():
		return best, proof, nil
	case len(problems) == 0:
		return time.Time{}, "", errors.New("no timestamp or log entry")
	}
	return time.Time{}, "", errors.New(strings.Join(problems, "; "))
}

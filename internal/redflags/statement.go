package redflags

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/verify"
)

// Statement is a red flags statement that verified.
type Statement struct {
	// Source says where the bundle came from: a file, or "server:ID".
	Source string `json:"source"`
	// Subject is the artifact it is about.
	Subject attest.Subject `json:"subject"`
	// RedFlags is its predicate.
	RedFlags *attest.RedFlagsPredicate `json:"redFlags"`
	// SignedAt is the time its log entry or timestamp proves.
	SignedAt time.Time `json:"signedAt"`
	// Signer is the key hint the audit key was found by.
	Signer string `json:"signer"`
}

// ErrNotAuditKey is wrapped by Verify's error for a red flags bundle that
// is signed with a certificate: red flags count only when a server's
// audit key signed them.
var ErrNotAuditKey = errors.New("red flags are signed by a server's audit key, not a certificate")

// Verify verifies a red flags bundle about artifactDigest ("sha256:HEX")
// from source against tm, which must hold the server's log and timestamp
// authority and, as its only key, the server's audit key (root.TrustedMaterial
// of the trusted root plus gate.KeyMaterial(audit key)): a bundle must be
// signed by a key of tm (never a certificate: ErrNotAuditKey), be logged or
// timestamped as tm requires, name the artifact as a subject and carry a
// red flags predicate that attest.ParseRedFlags accepts. The error says
// which failed, on one line.
func Verify(ctx context.Context, bundleJSON []byte, source, artifactDigest string, tm root.TrustedMaterial) (*Statement, error) {
	hexDigest, ok := strings.CutPrefix(artifactDigest, "sha256:")
	if !ok {
		return nil, fmt.Errorf("artifact digest %q is not sha256:HEX", artifactDigest)
	}
	var b bundle.Bundle
	if len(bundleJSON) > verify.MaxBundleBytes {
		return nil, fmt.Errorf("bundle is over %d bytes", verify.MaxBundleBytes)
	}
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return nil, fmt.Errorf("bundle does not parse: %v", err)
	}
	if b.GetVerificationMaterial().GetPublicKey() == nil {
		return nil, ErrNotAuditKey
	}
	rep, err := verify.Verify(ctx, bundleJSON, verify.Artifact{Digests: map[string]string{"sha256": hexDigest}}, tm,
		verify.Requirements{PredicateType: attest.PredicateRedFlags})
	if err != nil {
		return nil, err
	}
	if !rep.Verified {
		f := rep.Failed()
		if len(f) == 0 {
			return nil, errors.New("bundle does not verify")
		}
		return nil, fmt.Errorf("%s: %s", f[0].Name, f[0].Reason)
	}
	p, err := attest.ParseRedFlags(rep.Statement.Predicate)
	if err != nil {
		return nil, err
	}
	st := &Statement{Source: source, RedFlags: p, SignedAt: rep.SignedAt, Signer: rep.Signer}
	for _, s := range rep.Statement.Subject {
		if strings.EqualFold(s.Digest["sha256"], hexDigest) {
			st.Subject = s
			break
		}
	}
	return st, nil
}

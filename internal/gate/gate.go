// Package gate turns bundles into the verified policy.Evidence a policy
// decides on (see package policy): every bundle is verified with
// verify.Verify (Sigstore bundle v0.3 with a DSSE in-toto statement,
// https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto),
// bundles that do not verify are rejected with the reason and never reach
// the policy, and the rest are classified by predicate type: SLSA
// provenance (https://slsa.dev/spec/v1.0/provenance), approvals
// (attest.PredicateApproval), rebuilds, in-toto vulnerability scans, red
// flags (attest.PredicateRedFlags, by any signer: the policy says whose
// count), source
// reviews (attest.PredicateReview, about the commit the verified
// provenance was built from, not the artifact) and any other attestation.
package gate

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/keyid"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/verify"
)

// Rejected is a bundle that did not become evidence.
type Rejected struct {
	Index  int    `json:"index"`  // position in the bundles given to Gather
	SHA256 string `json:"sha256"` // of the bundle bytes
	Reason string `json:"reason"`
}

var sha256Re = lazyre.New(`^sha256:[0-9a-f]{64}$`)

// Gather verifies each bundle against tm as evidence about the artifact
// (artifactDigest "sha256:HEX") and returns the verified evidence and the
// rejected bundles with their reasons. A bundle is rejected when it does
// not parse, is not a DSSE in-toto statement, is not about the artifact,
// does not verify, or its approval, rebuild, vulnerability, red flags or
// review predicate does not parse. The same bundle given twice counts once.
//
// Review attestations (attest.PredicateReview) are about commits: one is
// verified against the source commit ({"gitCommit": HEX}) of a provenance
// that verified here, or against the base commit of a review that verified
// (an earlier range that chains to it), and rejected when it names none.
//
// Signers: a key-signed bundle's signer is the key ID (lowercase hex
// SHA-256 of the PKIX public key) of the key tm returned for its key hint
// and that verified it, so trust material that finds keys by hint
// (trust.Root.TrustedMaterial, KeyMaterial) must be used when several keys
// are trusted. A certificate-signed bundle is accepted with any identity
// and issuer whose certificate chains to tm (the policy decides which
// identities it trusts) and needs a verified signing time.
//
// It returns an error only for a malformed digest, nil tm or a cancelled
// ctx.
func Gather(ctx context.Context, artifactDigest string, bundles [][]byte, tm root.TrustedMaterial) (*policy.Evidence, []Rejected, error) {
	if !sha256Re.MatchString(artifactDigest) {
		return nil, nil, fmt.Errorf("artifact digest %q is not sha256:HEX (64 lowercase hex digits)", artifactDigest)
	}
	if tm == nil {
		return nil, nil, errors.New("no trust material given")
	}
	g := &gatherer{ctx: ctx, tm: tm, bundles: bundles, ev: &policy.Evidence{Artifact: artifactDigest}}
	for _, step := range []func() error{g.nonReviews, g.reviewChain, g.rejectUnreached} {
		if err := step(); err != nil {
			return nil, nil, err
		}
	}
	return g.ev, g.rejected, nil
}

// gatherer holds Gather's state between its steps.
type gatherer struct {
	ctx      context.Context
	tm       root.TrustedMaterial
	bundles  [][]byte
	ev       *policy.Evidence
	rejected []Rejected
	reviews  []pendingReview // in bundle order
	done     []bool          // per review: verified or rejected
	sources  []string        // source commits of the verified provenance
}

// pendingReview is a review bundle waiting until the provenance has said
// which commits count.
type pendingReview struct {
	index int
	id    string
	st    *attest.Statement
}

// reject records bundle i as rejected, unless ctx is done.
func (g *gatherer) reject(i int, id, reason string) error {
	if err := g.ctx.Err(); err != nil {
		return err
	}
	g.rejected = append(g.rejected, Rejected{Index: i, SHA256: id, Reason: reason})
	return nil
}

// nonReviews verifies every distinct bundle but reviews, which it sets
// aside for reviewChain.
func (g *gatherer) nonReviews() error {
	seen := map[string]bool{}
	art := verify.Artifact{Digests: map[string]string{"sha256": strings.TrimPrefix(g.ev.Artifact, "sha256:")}}
	for i, b := range g.bundles {
		if err := g.ctx.Err(); err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		id := hex.EncodeToString(sum[:])
		if seen[id] {
			continue
		}
		seen[id] = true
		st, err := statementOf(b)
		if err != nil {
			if err := g.reject(i, id, err.Error()); err != nil {
				return err
			}
			continue
		}
		if st.PredicateType == attest.PredicateReview {
			g.reviews = append(g.reviews, pendingReview{i, id, st})
			continue
		}
		if reason := gatherOne(g.ctx, g.ev, b, id, st.PredicateType, art, g.tm); reason != "" {
			if err := g.reject(i, id, reason); err != nil {
				return err
			}
		}
	}
	return nil
}

// reviewChain verifies the reviews that count: a review counts when it
// names a source commit of the verified provenance, or the base of a review
// that verified (an earlier range that chains to it). It repeats until no
// more reviews verify.
func (g *gatherer) reviewChain() error {
	g.sources = SourceCommits(g.ev)
	wanted := map[string]bool{}
	for _, c := range g.sources {
		wanted[c] = true
	}
	g.done = make([]bool, len(g.reviews))
	for progress := true; progress; {
		progress = false
		for i, r := range g.reviews {
			if g.done[i] {
				continue
			}
			if err := g.ctx.Err(); err != nil {
				return err
			}
			commit := namedCommit(r.st, wanted)
			if commit == "" {
				continue
			}
			g.done[i] = true
			base, reason := gatherReview(g.ctx, g.ev, g.bundles[r.index], r.id, commit, g.tm)
			if reason != "" {
				if err := g.reject(r.index, r.id, reason); err != nil {
					return err
				}
				continue
			}
			if base != "" && !wanted[base] {
				wanted[base] = true
				progress = true
			}
		}
	}
	return nil
}

// rejectUnreached rejects the reviews reviewChain never reached, saying
// which source commits would have counted.
func (g *gatherer) rejectUnreached() error {
	for i, r := range g.reviews {
		if g.done[i] {
			continue
		}
		reason := "review attestation ignored: no verified provenance of the artifact records a source commit"
		if len(g.sources) > 0 {
			reason = fmt.Sprintf("review attestation is not about the artifact's source commit (%s, from its verified provenance) or a commit a verified review of it starts from", strings.Join(g.sources, ", "))
		}
		if err := g.reject(r.index, r.id, reason); err != nil {
			return err
		}
	}
	return nil
}

// namedCommit returns a commit of wanted that st names as a subject
// ({"gitCommit": HEX}), the smallest, or "".
func namedCommit(st *attest.Statement, wanted map[string]bool) string {
	out := ""
	for _, s := range st.Subject {
		if c := strings.ToLower(s.Digest["gitCommit"]); wanted[c] && (out == "" || c < out) {
			out = c
		}
	}
	return out
}

// SourceCommits returns the source commits (full lowercase hex) recorded
// by the verified provenance in ev, sorted, each once.
func SourceCommits(ev *policy.Evidence) []string {
	seen := map[string]bool{}
	var out []string
	for _, pv := range ev.Provenance {
		c := strings.ToLower(pv.Facts.SourceCommit)
		if commitRe.MatchString(c) && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

var commitRe = lazyre.New(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// gatherReview verifies a review attestation as a statement about commit
// and adds it to ev, returning its range's base commit, or returns why
// not.
func gatherReview(ctx context.Context, ev *policy.Evidence, b []byte, id, commit string, tm root.TrustedMaterial) (base, reason string) {
	art := verify.Artifact{Digests: map[string]string{"gitCommit": commit}}
	rep, sig, reason := verifyBundle(ctx, b, id, attest.PredicateReview, art, tm)
	if reason != "" {
		return "", reason
	}
	p, err := attest.ParseReview(rep.Statement.Predicate)
	if err != nil {
		return "", err.Error()
	}
	ev.Reviews = append(ev.Reviews, policy.Review{Signature: sig, ReviewPredicate: *p})
	return p.Range.Base, ""
}

// verifyBundle verifies b as a statement of predicate type pt about art
// and returns the report and what verification established about its
// signature, or why it does not verify.
func verifyBundle(ctx context.Context, b []byte, id, pt string, art verify.Artifact, tm root.TrustedMaterial) (*verify.Report, policy.Signature, string) {
	req := verify.Requirements{
		PredicateType:               pt,
		CertificateIdentityRegexp:   ".*",
		CertificateOIDCIssuerRegexp: ".*",
	}
	rep, err := verify.Verify(ctx, b, art, tm, req)
	if err != nil {
		return nil, policy.Signature{}, err.Error()
	}
	if !rep.Verified {
		// sigstore-go reports a key it could not find by its hint as
		// something else (a signing time outside the key's validity).
		if why := untrustedKey(b, tm); why != "" {
			return nil, policy.Signature{}, "does not verify: " + why
		}
		var why []string
		for _, c := range rep.Failed() {
			why = append(why, c.Name+": "+c.Reason)
		}
		return nil, policy.Signature{}, "does not verify: " + strings.Join(why, "; ")
	}
	sig, err := signatureOf(b, rep, tm)
	if err != nil {
		return nil, policy.Signature{}, err.Error()
	}
	sig.Bundle = id
	return rep, sig, ""
}

// untrustedKey says why a key-signed bundle cannot verify when tm holds
// no key for its key hint, or returns "" when tm has one (or the bundle is
// not key-signed).
func untrustedKey(b []byte, tm root.TrustedMaterial) string {
	var bu bundle.Bundle
	if err := bu.UnmarshalJSON(b); err != nil {
		return ""
	}
	vc, err := bu.VerificationContent()
	if err != nil || vc.PublicKey() == nil {
		return ""
	}
	hint := vc.PublicKey().Hint()
	if _, err := tm.PublicKeyVerifier(hint); err == nil {
		return ""
	}
	if hint == "" {
		return "signed by a key the bundle gives no key hint for, so no trusted key can be chosen to verify it"
	}
	return fmt.Sprintf("signed by key ID %s, which is not among the trusted keys", hintKeyID(hint))
}

// hintKeyID is the key ID (lowercase hex SHA-256 of the PKIX public key)
// a key hint names: custody and cosign write its base64. Any other hint
// is returned quoted.
func hintKeyID(hint string) string {
	if id, err := keyid.Parse(hint); err == nil {
		return id.String()
	}
	return strconv.Quote(hint)
}

// gatherOne verifies one bundle and adds it to ev, or returns why not.
func gatherOne(ctx context.Context, ev *policy.Evidence, b []byte, id, pt string, art verify.Artifact, tm root.TrustedMaterial) string {
	rep, sig, reason := verifyBundle(ctx, b, id, pt, art, tm)
	if reason != "" {
		return reason
	}
	st := rep.Statement
	switch {
	case rep.Provenance != nil:
		ev.Provenance = append(ev.Provenance, policy.Provenance{Signature: sig, Facts: *rep.Provenance})
	case pt == attest.PredicateApproval:
		a, err := attest.ParseApproval(st.Predicate)
		if err != nil {
			return err.Error()
		}
		ev.Approvals = append(ev.Approvals, policy.Approval{Signature: sig, ApprovalPredicate: *a})
	case pt == attest.PredicateRebuild:
		r, err := attest.ParseRebuild(st.Predicate)
		if err != nil {
			return err.Error()
		}
		ev.Rebuilds = append(ev.Rebuilds, policy.Rebuild{Signature: sig, Matched: r.Matched, BuildID: r.Original.BuildID, ProvenanceBundle: r.ProvenanceBundle()})
	case pt == attest.PredicateVulnsV01 || pt == attest.PredicateVulnsV02:
		v, err := attest.ParseVulns(st.Predicate)
		if err != nil {
			return err.Error()
		}
		ev.VulnScans = append(ev.VulnScans, policy.VulnScan{Signature: sig, PredicateType: pt, Scanner: v.Scanner.URI, Findings: policy.VulnFindings(v)})
	case pt == attest.PredicateRedFlags:
		r, err := attest.ParseRedFlags(st.Predicate)
		if err != nil {
			return err.Error()
		}
		ev.RedFlagReports = append(ev.RedFlagReports, policy.RedFlagReport{Signature: sig, RedFlagsPredicate: *r})
	default:
		ev.Attestations = append(ev.Attestations, policy.Attestation{Signature: sig, PredicateType: pt, Predicate: st.Predicate})
	}
	return ""
}

// statementOf reads a DSSE bundle's statement, unverified, to choose what
// Verify is asked to check (and, for a review, which commit).
func statementOf(b []byte) (*attest.Statement, error) {
	if len(b) > verify.MaxBundleBytes {
		return nil, fmt.Errorf("bundle is %d bytes, more than the limit of %d", len(b), verify.MaxBundleBytes)
	}
	var bu bundle.Bundle
	if err := bu.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	env := bu.GetDsseEnvelope()
	if env == nil {
		return nil, errors.New("not an attestation: the bundle signs a message, not an in-toto statement")
	}
	st, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("couldn't parse statement: %w", err)
	}
	return st, nil
}

// signatureOf derives the verified signer, log inclusion and signing time
// of a bundle that Verify accepted. Verify checks every log entry and RFC
// 3161 timestamp in the bundle when the trust material has logs or
// authorities (it fails otherwise), so their times are verified when its
// tlog and timestamp checks passed without the "not checked" caveat.
func signatureOf(b []byte, rep *verify.Report, tm root.TrustedMaterial) (policy.Signature, error) {
	var s policy.Signature
	var bu bundle.Bundle
	if err := bu.UnmarshalJSON(b); err != nil {
		return s, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	vc, err := bu.VerificationContent()
	if err != nil {
		return s, fmt.Errorf("couldn't read verification material: %w", err)
	}
	if vc.Certificate() != nil {
		s.Signer = policy.Principal{Identity: rep.Signer, Issuer: rep.Issuer}
		if e := rep.Extensions; e != nil {
			s.Certificate = &policy.CertificateFacts{SourceRepository: e.SourceRepositoryURI, Ref: e.SourceRepositoryRef, BuildSignerURI: e.BuildSignerURI}
		}
	} else {
		pk := vc.PublicKey()
		if pk == nil {
			return s, errors.New("bundle names neither a certificate nor a key")
		}
		v, err := tm.PublicKeyVerifier(pk.Hint())
		if err != nil {
			return s, fmt.Errorf("couldn't find the verifying key: %w", err)
		}
		pub, err := v.PublicKey()
		if err != nil {
			return s, fmt.Errorf("couldn't read the verifying key: %w", err)
		}
		if s.Signer.KeyID, err = KeyID(pub); err != nil {
			return s, err
		}
	}
	s.LogVerified = rep.Passed(verify.CheckTlog)
	s.TimestampVerified = (s.LogVerified || rep.Passed(verify.CheckTimestamp)) && !rep.SignedAt.IsZero()
	s.SignedAt = rep.SignedAt
	return s, nil
}

// KeyID returns the lowercase hex SHA-256 of pub's PKIX encoding, the key
// ID policies name signers and approvers by.
func KeyID(pub crypto.PublicKey) (string, error) {
	id, err := keyid.Of(pub)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// KeyMaterial returns trust material holding the given public keys, each
// found by its key hint: the base64 (as custody and cosign write it) or hex
// SHA-256 of its PKIX encoding. Unlike verify.PublicKeyMaterial it never
// answers for a hint that names another key, so several keys can be trusted
// at once and the signer of a bundle is known. Combine it with a trusted
// root in a root.TrustedMaterialCollection to check logs and timestamps.
func KeyMaterial(pubs ...crypto.PublicKey) (root.TrustedMaterial, error) {
	keys := map[string]root.TimeConstrainedVerifier{}
	for _, pub := range pubs {
		v, err := signature.LoadDefaultVerifier(pub)
		if err != nil {
			return nil, fmt.Errorf("couldn't use public key: %w", err)
		}
		id, err := KeyID(pub)
		if err != nil {
			return nil, err
		}
		raw, _ := hex.DecodeString(id)
		k := root.NewExpiringKey(v, time.Time{}, time.Time{})
		keys[id] = k
		keys[base64.StdEncoding.EncodeToString(raw)] = k
	}
	return root.NewTrustedPublicKeyMaterial(func(hint string) (root.TimeConstrainedVerifier, error) {
		if k, ok := keys[hint]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no trusted key has hint %q", hint)
	}), nil
}

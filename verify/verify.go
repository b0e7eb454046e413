// Package verify is custody's verification core: it turns a Sigstore bundle
// (https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto,
// media types v0.1, v0.2 and v0.3) carrying a DSSE envelope
// (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md) with an
// in-toto statement, or a plain message signature, into a Report of
// verified facts and named checks. Signatures, certificate chains, SCTs,
// transparency log entries and RFC 3161 timestamps are checked with
// sigstore-go; the artifact, identity and SLSA provenance
// (https://slsa.dev/spec/v1.0/verifying-artifacts) checks are custody's.
//
// The package does no I/O except reading the artifact file it is given and
// imports no database, HTTP server or cloud SDK.
package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/attest"
)

// ErrMalformed is wrapped by every error Verify returns for input that cannot
// be verified at all: an unparsable, truncated, oversized or wrong-media-type
// bundle, a DSSE payload that is not a valid in-toto statement or SLSA
// provenance, or Requirements with an invalid regular expression. A CLI maps
// it to exit code 2.
var ErrMalformed = errors.New("malformed input")

// MaxBundleBytes is the largest bundle Verify reads: a statement of
// attest.MaxStatementBytes, base64-encoded, plus verification material.
const MaxBundleBytes = attest.MaxStatementBytes/3*4 + 4<<20

// Names of the checks a Report can carry.
const (
	CheckBundle        = "bundle"
	CheckSignature     = "signature"
	CheckIdentity      = "identity"
	CheckTlog          = "tlog"
	CheckTimestamp     = "timestamp"
	CheckSubject       = "subject"
	CheckPredicateType = "predicate-type"
	CheckSourceURI     = "source-uri"
	CheckSourceRef     = "source-ref"
	CheckBuilderID     = "builder-id"
	CheckMaxAge        = "max-age"
)

// Artifact is what the bundle must be about: a file path (hashed lazily,
// streaming, only with the digest algorithms the statement's subjects use:
// sha256, sha384, sha512) and/or known digests. When both are given they must
// agree.
type Artifact struct {
	Path    string            // optional
	Digests map[string]string // optional, alg -> hex, e.g. {"sha256": "..."}
}

// Requirements is what the caller expects of the evidence. The zero value
// requires only a valid signature over a statement about the artifact that
// carries SLSA provenance (v1 or v0.2); keyless bundles additionally need an
// identity and an issuer.
type Requirements struct {
	// Keyless identity, cosign semantics: the certificate SAN must equal
	// CertificateIdentity or match CertificateIdentityRegexp (unanchored Go
	// regexp), and its OIDC issuer extension must equal CertificateOIDCIssuer
	// or match CertificateOIDCIssuerRegexp. One of each pair is required for
	// certificate-signed bundles; all are ignored for key-signed bundles.
	CertificateIdentity, CertificateIdentityRegexp     string
	CertificateOIDCIssuer, CertificateOIDCIssuerRegexp string

	// SourceURI matches the provenance source ignoring the scheme, a "git+"
	// prefix, a trailing ".git" or "/", any "@ref" and ASCII case:
	// "github.com/org/repo" matches "git+https://github.com/org/repo.git@refs/tags/v1".
	SourceURI string
	// SourceRef must equal the recorded ref exactly, e.g. "refs/tags/v1.2.0".
	SourceRef string
	// BuilderID must equal the builder ID exactly when it contains '@';
	// otherwise it must equal the part of the builder ID before its last '@'
	// (slsa-verifier semantics: "https://github.com/org/repo/.github/workflows/b.yml"
	// accepts any version of that workflow).
	BuilderID string
	// PredicateType is the required predicate type; "" accepts SLSA
	// provenance v1 or v0.2.
	PredicateType string
	// MaxAge limits the age of the build: measured from the provenance's
	// finish time, else its start time, else the earliest verified signature
	// time (log integration or RFC 3161). 0 means no limit.
	MaxAge time.Duration
	// Now is the time MaxAge is measured against; zero means time.Now().
	// Certificate and key validity are always checked at the verified
	// signature time (or the current time for key-signed bundles without
	// timestamps), never at Now.
	Now time.Time
}

// Check is the outcome of one named verification step.
type Check struct {
	Name string `json:"name"`
	// OK is true when the check did not fail verification: it passed, or
	// (NotChecked) it did not run and that is allowed.
	OK bool `json:"ok"`
	// NotChecked is true for a check that did not run: nothing was
	// required of it (no SourceURI, no BuilderID), or the trust material
	// cannot check what the bundle carries (log entries or timestamps with
	// a bare key). It is not a pass: Reason says what was not checked.
	NotChecked bool   `json:"notChecked,omitempty"`
	Reason     string `json:"reason"`
}

// Report is the result of Verify. Verified is true only when every check
// passed and at least the signature and subject checks ran. When the
// signature did not verify, the subject and provenance checks still run, for
// diagnosis, but on unauthenticated content.
type Report struct {
	Verified bool    `json:"verified"`
	Checks   []Check `json:"checks"`
	Signer   string  `json:"signer,omitempty"` // key hint or certificate SAN
	Issuer   string  `json:"issuer,omitempty"` // OIDC issuer of a certificate
	// Extensions are the Fulcio extensions of a certificate that verified
	// (nil otherwise): source repository, ref, build signer, ...
	Extensions *certificate.Extensions `json:"certificateExtensions,omitempty"`
	Statement  *attest.Statement       `json:"statement,omitempty"`
	Provenance *attest.ProvenanceFacts `json:"provenance,omitempty"`
	// SignedAt is the earliest signing time a verified transparency log
	// entry or RFC 3161 timestamp proves; zero when nothing proves one
	// (then the signature was checked at the current time).
	SignedAt time.Time `json:"signedAt,omitzero"`
}

// Failed returns the checks that did not pass.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) add(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Reason: oneLine(fmt.Sprintf(format, args...))})
}

// oneLine keeps a reason on one line: some sigstore-go errors span several.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// skip records a check that did not run and does not fail verification.
func (r *Report) skip(name string, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: true, NotChecked: true, Reason: fmt.Sprintf(format, args...)})
}

// NotChecked returns the names of the checks that did not run.
func (r *Report) NotChecked() []string {
	var out []string
	for _, c := range r.Checks {
		if c.NotChecked {
			out = append(out, c.Name)
		}
	}
	return out
}

// Passed reports whether the named check ran and passed.
func (r *Report) Passed(name string) bool {
	for _, c := range r.Checks {
		if c.Name == name && c.OK && !c.NotChecked {
			return true
		}
	}
	return false
}

func (r *Report) finish() {
	ran := map[string]bool{}
	ok := len(r.Checks) > 0
	for _, c := range r.Checks {
		ok = ok && c.OK
		if c.OK && !c.NotChecked {
			ran[c.Name] = true
		}
	}
	r.Verified = ok && ran[CheckSignature] && ran[CheckSubject]
}

// Verify checks bundleJSON against the trust material and requirements and
// that it is about art.
//
// Verify never returns (nil, nil). Input that cannot be verified at all
// returns an error wrapping ErrMalformed; a failure to read art.Path or a
// cancelled ctx returns that error. Everything else returns a Report whose
// Verified is false when any check failed.
//
// Decisions worth knowing:
//   - A DSSE envelope must carry exactly one signature (as sigstore-go
//     requires); an envelope with more fails the signature check.
//   - Transparency log entries and RFC 3161 timestamps present in the bundle
//     must all verify when the trust material has logs or timestamp
//     authorities. With trust material that has none (a bare public key from
//     PublicKeyMaterial), a key-signed bundle's entries and timestamps are
//     reported as not checked and are not used: the key is then checked at
//     the current time. A certificate-signed bundle always needs a verified
//     log integration time or RFC 3161 timestamp.
//   - Message-signature bundles carry no statement: the subject check compares
//     the artifact with the signed digest, and any provenance requirement
//     (PredicateType, SourceURI, SourceRef, BuilderID) fails.
func Verify(ctx context.Context, bundleJSON []byte, art Artifact, tm root.TrustedMaterial, req Requirements) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if tm == nil {
		return nil, errors.New("no trust material given")
	}
	idr, err := compileIdentity(req)
	if err != nil {
		return nil, err
	}
	ev, err := parseEvidence(bundleJSON)
	if err != nil {
		return nil, err
	}
	rep := &Report{Statement: ev.statement, Provenance: ev.facts}
	rep.add(CheckBundle, true, "%s", ev.describe())

	res := ev.verifyCrypto(tm, rep)
	rep.SignedAt = signatureTime(res)
	if res != nil {
		if sum := res.Signature.Certificate; sum != nil {
			rep.Signer, rep.Issuer = sum.SubjectAlternativeName, sum.Issuer
			ext := sum.Extensions
			rep.Extensions = &ext
			checkIdentity(rep, idr, sum)
		} else {
			rep.Signer = ev.keyHint
		}
	} else if ev.cert != nil {
		if sum, err := certificate.SummarizeCertificate(ev.cert); err == nil {
			rep.Signer, rep.Issuer = sum.SubjectAlternativeName, sum.Issuer
		}
	} else {
		rep.Signer = ev.keyHint
	}

	if err := ev.checkSubject(ctx, rep, art); err != nil {
		return nil, err
	}
	ev.checkProvenance(rep, req)
	checkMaxAge(rep, req, ev.facts, res)
	rep.finish()
	return rep, nil
}

// signatureTime is the earliest verified signature time, or zero.
func signatureTime(res *sgverify.VerificationResult) time.Time {
	var t time.Time
	if res == nil {
		return t
	}
	for _, ts := range res.VerifiedTimestamps {
		if ts.Type == "CurrentTime" {
			continue
		}
		if t.IsZero() || ts.Timestamp.Before(t) {
			t = ts.Timestamp
		}
	}
	return t
}

func checkMaxAge(rep *Report, req Requirements, f *attest.ProvenanceFacts, res *sgverify.VerificationResult) {
	if req.MaxAge <= 0 {
		return
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	var at time.Time
	what := ""
	switch {
	case f != nil && !f.FinishedOn.IsZero():
		at, what = f.FinishedOn, "build finished"
	case f != nil && !f.StartedOn.IsZero():
		at, what = f.StartedOn, "build started"
	default:
		at, what = signatureTime(res), "signed"
	}
	if at.IsZero() {
		rep.add(CheckMaxAge, false, "no build or verified signature time is recorded, so age can't be checked against max age %s", req.MaxAge)
		return
	}
	age := now.Sub(at)
	if age > req.MaxAge {
		rep.add(CheckMaxAge, false, "%s %s ago (%s), more than max age %s", what, age.Round(time.Second), at.UTC().Format(time.RFC3339), req.MaxAge)
		return
	}
	rep.add(CheckMaxAge, true, "%s %s ago (%s), within max age %s", what, age.Round(time.Second), at.UTC().Format(time.RFC3339), req.MaxAge)
}

// describe summarises the bundle for the bundle check.
func (ev *evidence) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bundle %s, ", ev.version)
	if ev.envelope {
		fmt.Fprintf(&b, "DSSE envelope with %d signature(s), ", ev.nSigs)
	} else {
		b.WriteString("message signature, ")
	}
	if ev.cert != nil {
		b.WriteString("signed with a certificate")
	} else {
		b.WriteString("signed with a public key")
	}
	fmt.Fprintf(&b, ", %s, %s", plural(ev.nTlog, "tlog entry", "tlog entries"), plural(ev.nTSA, "RFC 3161 timestamp", "RFC 3161 timestamps"))
	return b.String()
}

// plural is "1 ONE" or "N MANY".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

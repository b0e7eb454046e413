package verify

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
)

// SignerIdentity is the identity a keyless bundle's signing certificate
// names, read as verification reads it (sigstore-go's certificate summary:
// a URI, an email or Fulcio's otherName username), whether the bundle
// carries the certificate alone (v0.3) or as the first of an
// x509CertificateChain (v0.1, v0.2); "" for a key-signed bundle. It is
// what the bundle claims: Verify checks it.
func SignerIdentity(b *bundle.Bundle) string {
	vc, err := b.VerificationContent()
	if err != nil {
		return ""
	}
	cert := vc.Certificate()
	if cert == nil {
		return ""
	}
	if sum, err := certificate.SummarizeCertificate(cert); err == nil && sum.SubjectAlternativeName != "" {
		return sum.SubjectAlternativeName
	}
	switch {
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.EmailAddresses) > 0:
		return cert.EmailAddresses[0]
	}
	return ""
}

// SignerIssuer is the OIDC issuer a keyless bundle's signing certificate
// names (Fulcio's issuer extension), read as SignerIdentity reads the
// identity; "" for a key-signed bundle. It is what the bundle claims:
// Verify checks it.
func SignerIssuer(b *bundle.Bundle) string {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		return ""
	}
	sum, err := certificate.SummarizeCertificate(vc.Certificate())
	if err != nil {
		return ""
	}
	return sum.Issuer
}

// identityRequirement is the keyless identity requirement as sigstore-go's
// typed identity policy.
type identityRequirement struct {
	id              *sgverify.CertificateIdentity // nil when the SAN or issuer side is missing
	noSAN, noIssuer bool
}

func compileIdentity(req Requirements) (identityRequirement, error) {
	var r identityRequirement
	san, err := sgverify.NewSANMatcher(req.CertificateIdentity, req.CertificateIdentityRegexp)
	if err != nil {
		return r, malformed("invalid certificate identity regexp: %w", err)
	}
	issuer, err := sgverify.NewIssuerMatcher(req.CertificateOIDCIssuer, req.CertificateOIDCIssuerRegexp)
	if err != nil {
		return r, malformed("invalid certificate OIDC issuer regexp: %w", err)
	}
	r.noSAN = req.CertificateIdentity == "" && req.CertificateIdentityRegexp == ""
	r.noIssuer = req.CertificateOIDCIssuer == "" && req.CertificateOIDCIssuerRegexp == ""
	if r.noSAN || r.noIssuer {
		return r, nil
	}
	id, err := sgverify.NewCertificateIdentity(san, issuer, certificate.Extensions{})
	if err != nil {
		return r, malformed("invalid certificate identity requirement: %w", err)
	}
	r.id = &id
	return r, nil
}

// checkIdentity checks the verified certificate's summary against the
// requirement with sigstore-go's CertificateIdentity.Verify, and names the
// side (identity or issuer) that does not match.
func checkIdentity(rep *Report, r identityRequirement, sum *certificate.Summary) {
	switch {
	case r.noSAN:
		rep.add(CheckIdentity, false, "certificate identity %q was not checked: no identity required (set CertificateIdentity or CertificateIdentityRegexp)", sum.SubjectAlternativeName)
		return
	case r.noIssuer:
		rep.add(CheckIdentity, false, "certificate issuer %q was not checked: no issuer required (set CertificateOIDCIssuer or CertificateOIDCIssuerRegexp)", sum.Issuer)
		return
	}
	err := r.id.Verify(*sum)
	if err == nil {
		rep.add(CheckIdentity, true, "certificate identity %q, issuer %q", sum.SubjectAlternativeName, sum.Issuer)
		return
	}
	san, issuer := &r.id.SubjectAlternativeName, &r.id.Issuer
	if sanErr := san.Verify(*sum); sanErr != nil {
		rep.add(CheckIdentity, false, "%s", mismatch("identity", sum.SubjectAlternativeName, san.SubjectAlternativeName, &san.Regexp, sanErr))
	} else if issuerErr := issuer.Verify(*sum); issuerErr != nil {
		rep.add(CheckIdentity, false, "%s", mismatch("issuer", sum.Issuer, issuer.Issuer, &issuer.Regexp, issuerErr))
	} else {
		rep.add(CheckIdentity, false, "certificate does not match the required identity: %v", err)
	}
}

// mismatch words one side's sigstore-go mismatch error.
func mismatch(what, got, want string, re *regexp.Regexp, err error) string {
	var reErr *sgverify.ErrValueRegexMismatch
	if errors.As(err, &reErr) {
		return fmt.Sprintf("certificate %s %q does not match %q", what, got, re)
	}
	return fmt.Sprintf("certificate %s %q is not %q", what, got, want)
}

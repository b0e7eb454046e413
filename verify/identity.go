package verify

import (
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
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
